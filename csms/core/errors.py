"""Errors the CSMS raises on purpose.

::

    CsmsError
    ├── ConfigurationError        bad settings: one line on stderr, exit 2
    ├── StorageError              the database failed us (our side)
    │   ├── StorageUnavailableError   cannot reach it at all
    │   └── ConflictError             a conditional write found the row changed
    ├── NotFoundError             get_x() of something that does not exist
    ├── InvalidRequestError       an operator's request cannot be carried out as asked
    ├── OcppError                 an OCPP rule broken, with its OCPP-J error code
    ├── AlreadyAnsweredError      a unit answering a CALL that was handled before
    └── StationLinkError          a CALL to a station got no CALLRESULT (ports.StationLink)
        ├── StationNotConnectedError   no open connection to the station
        ├── StationDisconnectedError   its connection closed before it answered
        ├── CallTimeoutError           no answer within the call timeout
        └── CallErrorReceived          it answered with a CALLERROR

A business "no" (a blocked token, a rejected boot) is a value, not one of
these.
"""

from __future__ import annotations

from typing import Any


class CsmsError(Exception):
    """Base of every error the CSMS raises on purpose."""


class ConfigurationError(CsmsError):
    """The configuration cannot work; the message names the setting."""


class StorageError(CsmsError):
    """A database operation failed."""


class StorageUnavailableError(StorageError):
    """The database does not answer."""


class ConflictError(StorageError):
    """A write conditional on a row's state found it changed meanwhile (a lost race)."""


class NotFoundError(CsmsError):
    """A looked-up entity does not exist."""


class InvalidRequestError(CsmsError):
    """An operator's request (a command's fields) cannot be carried out as asked;
    the message says which field and why."""


class OcppError(CsmsError):
    """A payload or frame breaks an OCPP rule; ``code`` is the OCPP-J error code
    (the peer's fault unless it is InternalError)."""

    def __init__(self, code: str, description: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details = details or {}


class AlreadyAnsweredError(CsmsError):
    """The unit of work answers a station's CALL that an earlier unit already
    answered (same station, action, message id and request digest: a resend
    after a lost answer, docs/adr/0012-durable-answers.md). Nothing of the
    unit was applied; ``answer`` is the CALLRESULT payload the CALL got then."""

    def __init__(self, station_id: str, action: str, answer: dict[str, Any]) -> None:
        super().__init__(f"{action} of {station_id!r} was answered before")
        self.answer = answer


class StationLinkError(CsmsError):
    """A CALL the CSMS sent (or meant to send) to a station got no CALLRESULT."""


class StationNotConnectedError(StationLinkError):
    """The station has no open connection: the CALL was not sent."""

    def __init__(self, station_id: str) -> None:
        super().__init__(f"station {station_id!r} is not connected")
        self.station_id = station_id


class StationDisconnectedError(StationLinkError):
    """The station's connection closed after the CALL went out, before its answer."""

    def __init__(self, station_id: str) -> None:
        super().__init__(f"station {station_id!r} disconnected before answering")
        self.station_id = station_id


class CallTimeoutError(StationLinkError):
    """The station did not answer the CALL in time."""

    def __init__(self, action: str) -> None:
        super().__init__(f"no answer to {action} in time")
        self.action = action


class CallErrorReceived(StationLinkError):
    """The station answered the CALL with a CALLERROR."""

    def __init__(self, code: str, description: str, details: dict[str, Any]) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details = details


class ClusterUnavailableError(StationLinkError):
    """The station is held by another process and the broker that links the
    processes cannot be reached: the CALL was not sent."""


class NodeUnreachableError(CsmsError):
    """No process of that node id listens on the cluster bus (it stopped)."""
