"""The operator edge's bounds, as plain numbers: the command dispatcher checks
some of them too, and must not import pydantic to do so."""

from __future__ import annotations

from datetime import timedelta

# A station's Basic-auth password: at most what OCPP carries to a station
# (2.0.1 BasicAuthPassword and 1.6 AuthorizationKey hold 40 characters). No
# minimum beyond one character: `csms stations add --password` always took any
# and the contract keeps that command as it is.
MIN_PASSWORD, MAX_PASSWORD = 1, 40
# How long a queued command may wait for its station.
DEFAULT_QUEUE_EXPIRY = timedelta(hours=24)
MAX_QUEUE_EXPIRY = timedelta(days=30)
MAX_PAGE, DEFAULT_PAGE = 1000, 100
MAX_ID_TOKEN_LENGTH = 36  # OCPP 2.0.1's IdToken string length
