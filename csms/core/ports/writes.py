"""Write ops and the port that commits them.

Writes on the hot path are *units of work*: a short list of ops that one
station message produces (state changes plus the outbox events that report
them). ``UnitOfWork.commit`` makes one unit durable, atomically; adapters
group the units of many stations into one database transaction (group
commit) and answer each caller only after that transaction committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from csms.core.domain import (
    ChargingProfile,
    ChargingProfileCriteria,
    Command,
    CommandStatus,
    ConfigurationKey,
    ConnectorStatus,
    DeviceModelEntry,
    MeterSample,
    Reservation,
    Transaction,
)
from csms.core.events import Event
from csms.core.ports.presence import Presence
from csms.core.records import record

# --- write ops: one unit of work is a Sequence[WriteOp] ---------------------


@record
class StationBooted:
    """Update the station's boot facts (vendor, model, serials, firmware)."""

    station_id: str
    ocpp_version: str
    vendor: str | None
    model: str | None
    serial_number: str | None
    firmware_version: str | None
    boot_info: dict[str, Any]
    at: datetime


@record
class StationSeen:
    """The station spoke (connect, Heartbeat); record its protocol and time."""

    station_id: str
    ocpp_version: str
    at: datetime


@record
class ConnectionOpened:
    """A station's connection is open on a node (csms.core.ports.presence)."""

    presence: Presence


@record
class ConnectionClosed:
    """Remove the row of one connection (its epoch), never a newer one's. With
    ``must_exist`` the unit fails with ConflictError if the row is gone, so
    that two processes closing a dead node's connection report it once."""

    station_id: str
    epoch: int
    must_exist: bool = False


@record
class ConnectorStatusChanged:
    status: ConnectorStatus


@record
class TransactionStarted:
    transaction: Transaction


@record
class TransactionChanged:
    """Replace a stored transaction's mutable fields with these values."""

    transaction: Transaction


@record
class MeterSamplesRecorded:
    station_id: str
    transaction_id: str | None
    evse_id: int
    samples: tuple[MeterSample, ...]


@record
class StationNotified:
    """A notification kept as received (DataTransfer, firmware/diagnostics/log
    status, security events, device model reports...)."""

    station_id: str
    action: str
    payload: dict[str, Any]
    at: datetime


@record
class TransactionEventRecorded:
    """A 2.0.1 TransactionEvent's sequence number, kept to spot repeats and gaps."""

    station_id: str
    transaction_id: str
    seq_no: int
    event_type: str
    trigger_reason: str | None
    occurred_at: datetime
    offline: bool


@record
class DeviceModelReported:
    """Upsert device model entries (2.0.1 NotifyReport)."""

    station_id: str
    entries: tuple[DeviceModelEntry, ...]
    at: datetime


@record
class DeviceModelValuesSet:
    """Set the values of device model entries (2.0.1 Get/SetVariables answers),
    keeping what a report said about their mutability and characteristics."""

    station_id: str
    entries: tuple[DeviceModelEntry, ...]
    at: datetime


@record
class ConfigurationChanged:
    """Upsert 1.6 configuration keys; a ``readonly`` of None keeps the stored flag."""

    station_id: str
    keys: tuple[ConfigurationKey, ...]
    at: datetime


@record
class LocalListVersionSet:
    station_id: str
    version: int
    at: datetime


@record
class ReservationChanged:
    """Upsert a reservation by (station, reservation id)."""

    reservation: Reservation


@record
class ChargingProfileSet:
    """Store a profile, replacing one with its id or with its EVSE, purpose and
    stack level (the rule of both protocols)."""

    profile: ChargingProfile


@record
class ChargingProfilesCleared:
    station_id: str
    criteria: ChargingProfileCriteria


@record
class HeartbeatIntervalSet:
    """The station accepted this heartbeat interval through the CSMS."""

    station_id: str
    seconds: int


@record
class CommandRecorded:
    """Insert a command (``expected_status`` None) or update it, only if it is
    still in ``expected_status``; otherwise the unit fails with ConflictError,
    so that two writers cannot both move a command on (and both report it)."""

    command: Command
    expected_status: CommandStatus | None = None


@record
class CallAnswered:
    """The answer to a station's CALL, committed with the CALL's effects.

    The store keeps the last one per station and action. A unit whose
    ``CallAnswered`` finds the stored one with the same message id and
    request digest (the station resent a CALL whose answer it lost) is not
    applied: ``commit`` raises ``AlreadyAnsweredError`` with the stored answer
    (docs/adr/0012-durable-answers.md)."""

    station_id: str
    action: str
    message_id: str
    request_digest: str
    answer: dict[str, Any]


@record
class EventAppended:
    """An outbox row, committed with the state change it reports."""

    event: Event


WriteOp = (
    StationBooted
    | StationSeen
    | ConnectionOpened
    | ConnectionClosed
    | ConnectorStatusChanged
    | TransactionStarted
    | TransactionChanged
    | MeterSamplesRecorded
    | StationNotified
    | TransactionEventRecorded
    | DeviceModelReported
    | DeviceModelValuesSet
    | ConfigurationChanged
    | LocalListVersionSet
    | ReservationChanged
    | ChargingProfileSet
    | ChargingProfilesCleared
    | CommandRecorded
    | HeartbeatIntervalSet
    | EventAppended
    | CallAnswered
)


class UnitOfWork(Protocol):
    """The one way services write: a unit of ops, all or nothing."""

    async def commit(self, unit: Sequence[WriteOp]) -> None:
        """Make one unit of work durable, atomically (group-committed).

        Raises ``StorageError`` when it did not commit, ``ConflictError`` when
        a ``CommandRecorded`` found its command no longer in ``expected_status``
        or a ``ConnectionClosed(must_exist=True)`` found its row gone,
        ``AlreadyAnsweredError`` when a ``CallAnswered`` found its CALL answered.
        """
        ...
