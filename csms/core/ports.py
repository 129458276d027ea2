"""The ports the services depend on; storage and events implement them.

Writes on the hot path are *units of work*: a short list of ops that one
station message produces (state changes plus the outbox events that report
them). ``Storage.commit`` makes one unit durable, atomically; adapters group
the units of many stations into one database transaction (group commit) and
answer each caller only after that transaction committed.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
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
    IdToken,
    MeterSample,
    Reservation,
    Station,
    Transaction,
)
from csms.core.events import Event
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
class CommandRecorded:
    """Insert a command (``expected_status`` None) or update it, only if it is
    still in ``expected_status``; otherwise the unit fails with ConflictError,
    so that two writers cannot both move a command on (and both report it)."""

    command: Command
    expected_status: CommandStatus | None = None


@record
class EventAppended:
    """An outbox row, committed with the state change it reports."""

    event: Event


WriteOp = (
    StationBooted
    | StationSeen
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
    | EventAppended
)


@record
class TransactionFilter:
    station_id: str | None = None
    transaction_id: str | None = None
    id_token: str | None = None
    active: bool | None = None
    started_after: datetime | None = None
    started_before: datetime | None = None
    limit: int = 100
    offset: int = 0


@record
class CommandFilter:
    station_id: str | None = None
    status: CommandStatus | None = None
    limit: int = 100
    offset: int = 0


@record
class OutboxRow:
    seq: int
    event: Event
    delivered_at: datetime | None


@record
class OutboxStats:
    pending: int
    delivered: int
    oldest_pending_at: datetime | None


@record
class OutboxBacklog:
    """What waits to be published; ``pending`` is counted up to a cap."""

    pending: int
    oldest_pending_at: datetime | None


@record
class PoolStats:
    """A connection pool's use: connections open, of them idle, and the cap."""

    size: int
    idle: int
    max_size: int


UNCHANGED: Any = object()
"""Sentinel for ``register_station``: keep the stored value."""


class Storage(Protocol):
    """Everything the CSMS keeps. ``find_x`` returns None when absent."""

    dialect: str

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        ...

    def pool_stats(self) -> PoolStats | None:
        """The connection pool's use; None without a pool (SQLite's one thread)."""
        ...

    # hot path
    async def commit(self, unit: Sequence[WriteOp]) -> None:
        """Make one unit of work durable, atomically (group-committed)."""
        ...

    # registry
    async def find_station(self, station_id: str) -> Station | None: ...

    async def find_station_ignoring_case(self, station_id: str) -> Station | None:
        """The one station whose id equals ``station_id`` but for case; None
        if there is none or several (an interoperability tolerance)."""
        ...

    async def register_station(
        self,
        station_id: str,
        *,
        password_hash: str | None = UNCHANGED,
        security_profile: int = UNCHANGED,
        at: datetime,
    ) -> Station:
        """Create or update a registration; UNCHANGED keeps the stored value."""
        ...

    async def rotate_station_password(self, station_id: str, password_hash: str) -> bool:
        """Set a new password, keeping the one in use valid until retired.
        False if the station is not registered. A second rotation before the
        first was picked up keeps the oldest (the one the station still has)."""
        ...

    async def retire_previous_password(self, station_id: str) -> None: ...

    async def set_boot_status(self, station_id: str, status: str) -> bool:
        """What the station's BootNotification is answered; False if unknown."""
        ...

    async def list_stations(self) -> list[Station]: ...

    async def delete_station(self, station_id: str) -> bool:
        """Remove a registration and the station's current state (connectors,
        configuration, device model, reservations, charging profiles); keep its
        history (transactions, notifications, commands, events). False if unknown."""
        ...

    async def find_local_list_version(self, station_id: str) -> int | None: ...

    async def find_id_token(self, id_token: str) -> IdToken | None: ...

    async def put_id_token(self, token: IdToken) -> IdToken:
        """Create or replace a registry entry; returns it as stored."""
        ...

    async def list_id_tokens(self) -> list[IdToken]: ...

    async def delete_id_token(self, id_token: str) -> bool:
        """Remove a registry entry; False if there was none."""
        ...

    # charging state
    async def list_connectors(self, station_id: str) -> list[ConnectorStatus]: ...

    async def find_transaction(
        self, station_id: str, transaction_id: str
    ) -> Transaction | None: ...

    async def find_transaction_by_ocpp16_id(self, transaction_id: int) -> Transaction | None:
        """1.6 transaction ids are unique across the CSMS, not per station."""
        ...

    async def find_open_transaction_like(
        self, station_id: str, evse_id: int, id_token: str, started_at: datetime
    ) -> Transaction | None:
        """A transaction already started with these facts (a resent StartTransaction)."""
        ...

    async def next_transaction_number(self) -> int:
        """A fresh, never reused 1.6 transaction id (a positive int32)."""
        ...

    async def list_transactions(self, where: TransactionFilter) -> list[Transaction]: ...

    async def count_active_transactions(self) -> int: ...

    async def list_meter_samples(
        self, station_id: str, transaction_id: str
    ) -> list[MeterSample]: ...

    async def list_transaction_seq_nos(self, station_id: str, transaction_id: str) -> set[int]:
        """The TransactionEvent seqNos recorded for a transaction."""
        ...

    async def list_device_model(self, station_id: str) -> list[DeviceModelEntry]: ...

    async def list_notifications(
        self, station_id: str, action: str | None = None
    ) -> list[StationNotified]: ...

    async def list_configuration(self, station_id: str) -> list[ConfigurationKey]: ...

    async def list_reservations(self, station_id: str) -> list[Reservation]: ...

    async def list_charging_profiles(self, station_id: str) -> list[ChargingProfile]: ...

    # commands the CSMS sends to stations
    async def find_command(self, command_id: str) -> Command | None: ...

    async def list_commands(self, where: CommandFilter) -> list[Command]:
        """Newest first."""
        ...

    async def list_queued_commands(self, station_id: str, limit: int = 100) -> list[Command]:
        """A station's queued commands, oldest first (the order they are sent in)."""
        ...

    async def list_expired_commands(self, now: datetime, limit: int = 100) -> list[Command]:
        """Queued commands whose expiry is at or before ``now``, oldest expiry first."""
        ...

    async def list_stations_with_queued_commands(self) -> list[str]: ...

    # outbox: events committed with the state they report, published by one relay
    async def outbox_pending(
        self, limit: int, skip: Sequence[tuple[int, int]] = ()
    ) -> list[OutboxRow]:
        """Undelivered events, oldest first (by commit sequence), leaving out
        those whose seq lies in one of the inclusive ``skip`` ranges (rows the
        relay has in flight).

        Reads every undelivered row, not "after the last seq seen": a row
        whose transaction committed late (a lower seq) must not be skipped.
        """
        ...

    async def outbox_mark_delivered(self, seqs: Sequence[int], at: datetime) -> None:
        """Mark rows the broker confirmed; a row already marked keeps its time."""
        ...

    async def outbox_prune(self, delivered_before: datetime, limit: int = 10_000) -> int:
        """Delete up to ``limit`` rows delivered before ``delivered_before``
        (never a pending one); return how many went. Call again while it
        returns ``limit``: one bounded batch keeps each statement short."""
        ...

    async def outbox_backlog(self, cap: int = 1_000_000) -> OutboxBacklog:
        """Pending rows (counted up to ``cap``) and the oldest one's ``recorded_at``.

        Cheap: reads only pending rows (a partial index), so a relay may
        call it every few seconds whatever the size of the delivered history.
        """
        ...

    async def outbox_stats(self) -> OutboxStats:
        """Pending and delivered counts and the oldest pending time.

        Counts the whole table, delivered history included: for an operator's
        occasional look (``csms events stats``), not for a loop.
        """
        ...

    async def outbox_list(self, limit: int, pending_only: bool) -> list[OutboxRow]:
        """The newest ``limit`` rows (pending only when asked), newest first."""
        ...

    def outbox_subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` on the event loop after each commit that appended
        outbox rows in this process, so a relay wakes without polling for them."""
        ...

    async def outbox_lead(self) -> bool:
        """Become, or confirm that this process still is, the one relay that
        publishes; False while another holds that role.

        Processes sharing a database compete for it: PostgreSQL with an
        advisory lock on a dedicated connection (released when that
        connection ends), SQLite with an exclusive lock on a file next to the
        database (released when the process ends). Cheap enough to call
        every second.
        """
        ...

    async def outbox_resign(self) -> None:
        """Give the relay role up (idempotent), so a standby may take it."""
        ...


class Clock(Protocol):
    def __call__(self) -> datetime: ...


# --- the link to stations ------------------------------------------------------


class StationLink(Protocol):
    """The CSMS's line to connected stations, keyed by station id.

    The WebSocket server implements it for its own sockets; a cluster
    implements it across processes. ``call`` raises a ``StationLinkError``:
    ``StationNotConnectedError`` (not sent), ``StationDisconnectedError``
    (sent, the connection closed before the answer), ``CallTimeoutError``,
    ``CallErrorReceived``. Never ``CancelledError`` for the station's doing.
    """

    def is_connected(self, station_id: str) -> bool: ...

    def ocpp_version(self, station_id: str) -> str | None:
        """The version spoken on the station's open connection; None if none."""
        ...

    async def call(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        answer_timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send a CALL and return the CALLRESULT payload; one CALL at a time per
        station (a second caller waits its turn)."""
        ...

    async def disconnect(self, station_id: str, reason: str) -> bool:
        """Close the station's connection and wait until its disconnection is
        recorded; False if it had none."""
        ...


@record
class LinkOpened:
    """A station's connection is set up (registered and recorded)."""

    station_id: str
    ocpp_version: str
    # It was admitted with its previous password: a rotated one waits for it.
    uses_previous_password: bool


ConnectListener = Callable[[LinkOpened], Coroutine[Any, Any, None]]
