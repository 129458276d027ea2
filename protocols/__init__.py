"""OCPP version adapters: the subprotocol -> adapter table."""

from __future__ import annotations

from protocols import ocpp16, ocpp201
from protocols.common import Adapter


def adapters() -> dict[str, Adapter]:
    """Every supported subprotocol, newest first (the handshake's preference)."""
    return {ocpp201.SUBPROTOCOL: ocpp201.adapter(), ocpp16.SUBPROTOCOL: ocpp16.adapter()}
