"""The storage port in memory: the stores of csms.core.ports with the semantics
of the SQLite and PostgreSQL adapters (the storage contract suite runs on all
three), for fast tests of the services.

Nothing is durable and nothing is shared between processes: one
``MemoryStorage`` is one database. ``commit`` applies a unit to a copy of
the tables and keeps the copy only when every op succeeded, so a unit is
atomic, and applies its ops in the order the database adapters do
(``GroupedOps``); a failing op raises what the database adapters raise (``StorageError``
for a broken constraint or a value that cannot be stored, ``ConflictError``
for a command moved on by another writer).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from csms.adapters.storage.batching import group_ops
from csms.core.domain import (
    ChargingProfile,
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
from csms.core.errors import AlreadyAnsweredError, ConflictError, StorageError
from csms.core.ports import (
    UNCHANGED,
    CallAnswered,
    ChargingProfilesCleared,
    ChargingProfileSet,
    CommandFilter,
    CommandRecorded,
    ConfigurationChanged,
    ConnectionClosed,
    ConnectionOpened,
    ConnectorStatusChanged,
    DeviceModelReported,
    DeviceModelValuesSet,
    EventAppended,
    HeartbeatIntervalSet,
    LocalListVersionSet,
    MeterSamplesRecorded,
    OutboxBacklog,
    OutboxRow,
    OutboxStats,
    PoolStats,
    Presence,
    ReservationChanged,
    StationBooted,
    StationNotified,
    StationSeen,
    TransactionChanged,
    TransactionEventRecorded,
    TransactionFilter,
    TransactionStarted,
    WriteOp,
)

INT32_MAX = 2**31 - 1
V = TypeVar("V")


@dataclass(slots=True)
class _Tables:
    """The tables of one database; every key is a row's primary key."""

    stations: dict[str, Station] = field(default_factory=dict)
    local_list_versions: dict[str, int] = field(default_factory=dict)
    id_tokens: dict[str, IdToken] = field(default_factory=dict)
    # (station, transaction id) -> (insertion number, transaction): lists break ties by it.
    transactions: dict[tuple[str, str], tuple[int, Transaction]] = field(default_factory=dict)
    readings: list[tuple[str, str | None, tuple[MeterSample, ...]]] = field(default_factory=list)
    seq_nos: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    notifications: list[StationNotified] = field(default_factory=list)
    connectors: dict[tuple[str, int, int], ConnectorStatus] = field(default_factory=dict)
    device_model: dict[tuple[str, str], DeviceModelEntry] = field(default_factory=dict)
    configuration: dict[tuple[str, str], ConfigurationKey] = field(default_factory=dict)
    reservations: dict[tuple[str, int], Reservation] = field(default_factory=dict)
    charging_profiles: list[ChargingProfile] = field(default_factory=list)
    # id -> (insertion number, command)
    commands: dict[str, tuple[int, Command]] = field(default_factory=dict)
    # [seq, event, delivered_at], by seq
    outbox: list[OutboxRow] = field(default_factory=list)
    # node id -> (started_at, seen_at); (station, epoch) -> open connection
    nodes: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    pending_passwords: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    connections: dict[tuple[str, int], Presence] = field(default_factory=dict)
    # (station, action) -> (the last answer, when it was committed)
    answers: dict[tuple[str, str], tuple[CallAnswered, datetime]] = field(default_factory=dict)

    def copy(self) -> _Tables:
        """A copy whose containers may change without touching these (rows are immutable)."""
        tables = _Tables(**{f.name: copy.copy(getattr(self, f.name)) for f in fields(self)})
        tables.seq_nos = {key: set(seqs) for key, seqs in self.seq_nos.items()}
        return tables


class MemoryStorage:
    """``Storage`` in memory; construct it directly (no database to open)."""

    dialect: str = "memory"

    def __init__(self) -> None:
        self._tables = _Tables()
        self._closed = False
        self._row_numbers = itertools.count(1)
        self._outbox_seqs = itertools.count(1)
        self._transaction_numbers = itertools.count(1)
        self._connection_epochs = itertools.count(1)
        self._outbox_listeners: list[Callable[[], None]] = []

    # --- health ------------------------------------------------------------

    async def ping(self) -> bool:
        return not self._closed

    def wait_out_outages(self, seconds: float) -> None:
        """Memory is never unreachable."""

    def pool_stats(self) -> PoolStats | None:
        return None

    async def close(self) -> None:
        self._closed = True

    # --- units of work -----------------------------------------------------

    async def commit(self, unit: Sequence[WriteOp]) -> None:
        self._check_open("commit")
        if not unit:
            return
        staged = self._tables.copy()
        now = datetime.now(UTC)
        # In the database adapters' order (by kind: a unit may start a transaction
        # after changing it). Numbers a failed unit drew are not reused, as a
        # database sequence's are not.
        grouped = group_ops([unit])
        for kind in fields(grouped):
            for op in getattr(grouped, kind.name):
                self._apply(staged, op, now)
        self._tables = staged
        if any(isinstance(op, EventAppended) for op in unit):
            for listener in self._outbox_listeners:
                listener()

    def _apply(self, t: _Tables, op: WriteOp, now: datetime) -> None:
        """Apply the ops of stations' messages; the rest goes to ``_apply_state``."""
        match op:
            case StationBooted():
                _storable(op.boot_info)
                old = t.stations.get(op.station_id)
                if old is None:  # deleted while connected: not created again
                    return
                t.stations[op.station_id] = replace(
                    old,
                    ocpp_version=op.ocpp_version,
                    vendor=op.vendor,
                    model=op.model,
                    serial_number=op.serial_number,
                    firmware_version=op.firmware_version,
                    boot_info=op.boot_info,
                    last_boot_at=op.at,
                    last_seen_at=_latest(old.last_seen_at, op.at),
                )
            case StationSeen():
                old = t.stations.get(op.station_id)
                if old is None:
                    return
                t.stations[op.station_id] = replace(
                    old, ocpp_version=op.ocpp_version, last_seen_at=_latest(old.last_seen_at, op.at)
                )
            case TransactionStarted():
                tx = _stamped(op.transaction, now)
                key = (tx.station_id, tx.transaction_id)
                if key in t.transactions:
                    raise StorageError(f"cannot commit: transaction {key} already exists")
                t.transactions[key] = (next(self._row_numbers), tx)
            case TransactionChanged():
                tx = _stamped(op.transaction, now)
                key = (tx.station_id, tx.transaction_id)
                number = (
                    t.transactions[key][0] if key in t.transactions else next(self._row_numbers)
                )
                t.transactions[key] = (number, tx)
            case ConnectorStatusChanged():
                s = op.status
                t.connectors[(s.station_id, s.evse_id, s.connector_id)] = s
            case MeterSamplesRecorded():
                if op.samples:
                    t.readings.append((op.station_id, op.transaction_id, op.samples))
            case StationNotified():
                _storable(op.payload)
                t.notifications.append(op)
            case TransactionEventRecorded():
                seqs = t.seq_nos.setdefault((op.station_id, op.transaction_id), set())
                if op.seq_no in seqs:
                    raise StorageError(
                        f"cannot commit: seqNo {op.seq_no} of {op.transaction_id} already recorded"
                    )
                seqs.add(op.seq_no)
            case CallAnswered():
                _storable(op.answer)
                key = (op.station_id, op.action)
                known = t.answers.get(key)
                if known is not None and (known[0].message_id, known[0].request_digest) == (
                    op.message_id,
                    op.request_digest,
                ):
                    raise AlreadyAnsweredError(op.station_id, op.action, known[0].answer)
                t.answers[key] = (op, now)
            case EventAppended():
                _storable(op.event.data)
                if any(row.event.event_id == op.event.event_id for row in t.outbox):
                    raise StorageError(f"cannot commit: event {op.event.event_id} already exists")
                t.outbox.append(OutboxRow(next(self._outbox_seqs), op.event, None))
            case _:
                self._apply_state(t, op, now)

    def _apply_state(self, t: _Tables, op: WriteOp, now: datetime) -> None:
        """Apply the ops that set a station's state: device model, configuration,
        local list, reservations, charging profiles, commands."""
        match op:
            case DeviceModelReported():
                for e in op.entries:
                    _storable(e.characteristics)
                    t.device_model[(op.station_id, e.key)] = e
            case DeviceModelValuesSet():
                for e in op.entries:
                    known = t.device_model.get((op.station_id, e.key))
                    kept = e if known is None else replace(known, value=e.value)
                    t.device_model[(op.station_id, e.key)] = kept
            case ConfigurationChanged():
                for k in op.keys:
                    known_key = t.configuration.get((op.station_id, k.key))
                    readonly = k.readonly
                    if readonly is None and known_key is not None:
                        readonly = known_key.readonly
                    t.configuration[(op.station_id, k.key)] = ConfigurationKey(
                        k.key, k.value, readonly, op.at
                    )
            case LocalListVersionSet():
                if op.station_id in t.stations:  # an UPDATE of the station's row
                    t.local_list_versions[op.station_id] = op.version
            case ReservationChanged():
                r = op.reservation
                t.reservations[(r.station_id, r.reservation_id)] = replace(
                    r, updated_at=r.updated_at or now
                )
            case ChargingProfileSet():
                p = op.profile
                _storable(p.profile)
                t.charging_profiles = [q for q in t.charging_profiles if not _replaced_by(q, p)] + [
                    replace(p, updated_at=p.updated_at or now)
                ]
            case ChargingProfilesCleared():
                t.charging_profiles = [q for q in t.charging_profiles if not _cleared(q, op)]
            case CommandRecorded():
                self._record_command(t, op)
            case HeartbeatIntervalSet():
                station = t.stations.get(op.station_id)
                if station is not None:
                    t.stations[op.station_id] = replace(station, heartbeat_interval=op.seconds)
            case ConnectionOpened():
                opened = op.presence
                t.connections[(opened.station_id, opened.epoch)] = opened
            case ConnectionClosed():
                gone = t.connections.pop((op.station_id, op.epoch), None)
                if gone is None and op.must_exist:
                    raise ConflictError(
                        f"connection {op.epoch} of {op.station_id!r} is closed already"
                    )

    def _record_command(self, t: _Tables, op: CommandRecorded) -> None:
        c = op.command
        for value in (c.request, c.payload, c.response, c.error):
            _storable(value)
        known = t.commands.get(c.id)
        if op.expected_status is None:
            if known is not None:
                raise StorageError(f"cannot commit: command {c.id} already exists")
            t.commands[c.id] = (next(self._row_numbers), c)
            return
        expected = CommandStatus(op.expected_status)
        if known is None or known[1].status != expected:
            raise ConflictError(
                f"command {c.id} is no longer {expected.value}: another writer moved it on"
            )
        # station_id never changes.
        t.commands[c.id] = (known[0], replace(c, station_id=known[1].station_id))

    # --- registry ----------------------------------------------------------

    async def find_station(self, station_id: str) -> Station | None:
        self._check_open("find station")
        return self._tables.stations.get(station_id)

    async def find_station_ignoring_case(self, station_id: str) -> Station | None:
        self._check_open("find station ignoring case")
        wanted = station_id.lower()
        found = [s for s in self._tables.stations.values() if s.id.lower() == wanted]
        return found[0] if len(found) == 1 else None

    async def register_station(
        self,
        station_id: str,
        *,
        password_hash: str | None = UNCHANGED,
        security_profile: int = UNCHANGED,
        at: datetime,
    ) -> Station:
        self._check_open(f"register station {station_id!r}")
        old = self._tables.stations.get(station_id)
        station = old or Station(station_id, registered_at=at)
        if password_hash is not UNCHANGED:
            station = replace(station, password_hash=password_hash)
        if security_profile is not UNCHANGED:
            station = replace(station, security_profile=security_profile)
        if station.registered_at is None:
            station = replace(station, registered_at=at)
        self._tables.stations[station_id] = station
        return station

    async def rotate_station_password(self, station_id: str, password_hash: str) -> bool:
        self._check_open("rotate station password")
        old = self._tables.stations.get(station_id)
        if old is None:
            return False
        previous = old.previous_password_hash or old.password_hash
        self._tables.stations[station_id] = replace(
            old, password_hash=password_hash, previous_password_hash=previous
        )
        return True

    async def retire_previous_password(self, station_id: str) -> None:
        self._check_open("retire previous password")
        old = self._tables.stations.get(station_id)
        if old is not None:
            self._tables.stations[station_id] = replace(old, previous_password_hash=None)
        self._tables.pending_passwords.pop(station_id, None)

    async def set_pending_password(self, station_id: str, sealed: str) -> bool:
        self._check_open("keep the pending password")
        if station_id not in self._tables.stations:
            return False
        self._tables.pending_passwords[station_id] = sealed
        return True

    async def find_pending_password(self, station_id: str) -> str | None:
        self._check_open("read the pending password")
        return self._tables.pending_passwords.get(station_id)

    async def secret(self, name: str, candidate: str) -> str:
        self._check_open(f"read secret {name!r}")
        return self._tables.secrets.setdefault(name, candidate)

    async def set_boot_status(self, station_id: str, status: str) -> bool:
        self._check_open("set boot status")
        old = self._tables.stations.get(station_id)
        if old is None:
            return False
        self._tables.stations[station_id] = replace(old, boot_status=status)
        return True

    async def list_stations(self) -> list[Station]:
        self._check_open("list stations")
        return [self._tables.stations[key] for key in sorted(self._tables.stations)]

    async def delete_station(self, station_id: str) -> bool:
        self._check_open(f"delete station {station_id!r}")
        t = self._tables
        for table in (t.connectors, t.device_model, t.configuration, t.reservations):
            for key in [k for k in table if k[0] == station_id]:
                del table[key]  # type: ignore[arg-type]
        t.charging_profiles = [p for p in t.charging_profiles if p.station_id != station_id]
        t.answers = {key: a for key, a in t.answers.items() if key[0] != station_id}
        t.local_list_versions.pop(station_id, None)
        t.pending_passwords.pop(station_id, None)
        return t.stations.pop(station_id, None) is not None

    # --- id tokens ---------------------------------------------------------

    async def find_id_token(self, id_token: str) -> IdToken | None:
        self._check_open("find id token")
        return self._tables.id_tokens.get(id_token)

    async def put_id_token(self, token: IdToken) -> IdToken:
        self._check_open(f"store id token {token.id_token!r}")
        stored = replace(token, updated_at=token.updated_at or datetime.now(UTC))
        self._tables.id_tokens[token.id_token] = stored
        return stored

    async def list_id_tokens(self) -> list[IdToken]:
        self._check_open("list id tokens")
        return [self._tables.id_tokens[key] for key in sorted(self._tables.id_tokens)]

    async def delete_id_token(self, id_token: str) -> bool:
        self._check_open("delete id token")
        return self._tables.id_tokens.pop(id_token, None) is not None

    # --- transactions ------------------------------------------------------

    async def find_transaction(self, station_id: str, transaction_id: str) -> Transaction | None:
        self._check_open("find transaction")
        found = self._tables.transactions.get((station_id, transaction_id))
        return None if found is None else found[1]

    async def find_transaction_by_ocpp16_id(self, transaction_id: int) -> Transaction | None:
        wanted = str(transaction_id)
        return self._newest(lambda tx: tx.transaction_id == wanted and tx.ocpp_version == "1.6")

    async def find_open_transaction_like(
        self, station_id: str, evse_id: int, id_token: str, started_at: datetime
    ) -> Transaction | None:
        return self._newest(
            lambda tx: (
                tx.station_id == station_id
                and tx.evse_id == evse_id
                and tx.ended_at is None
                and tx.id_token == id_token
                and tx.started_at == started_at
            )
        )

    async def list_open_transactions(
        self, station_id: str, evse_id: int | None = None
    ) -> list[Transaction]:
        self._check_open("list open transactions")
        found = [
            (n, tx)
            for n, tx in self._tables.transactions.values()
            if tx.station_id == station_id
            and tx.ended_at is None
            and (evse_id is None or tx.evse_id == evse_id)
        ]
        return [tx for _, tx in sorted(found, key=lambda pair: pair[0])]

    def _newest(self, matches: Callable[[Transaction], bool]) -> Transaction | None:
        self._check_open("find transaction")
        found = [(n, tx) for n, tx in self._tables.transactions.values() if matches(tx)]
        return max(found, key=lambda pair: pair[0])[1] if found else None

    # --- presence ----------------------------------------------------------

    async def begin_connection(self, station_id: str) -> tuple[int, list[Presence]]:
        self._check_open(f"open a connection of {station_id!r}")
        others = [p for p in self._tables.connections.values() if p.station_id == station_id]
        return next(self._connection_epochs), sorted(others, key=lambda p: p.epoch)

    async def renew_node(self, node_id: str, started_at: datetime, at: datetime) -> None:
        self._check_open("renew the node lease")
        self._tables.nodes[node_id] = (started_at, at)

    async def forget_nodes(self, seen_before: datetime) -> None:
        self._check_open("forget stopped nodes")
        t = self._tables
        holding = {p.node_id for p in t.connections.values()}
        for node_id, (_, seen_at) in list(t.nodes.items()):
            if seen_at < seen_before and node_id not in holding:
                del t.nodes[node_id]

    def _alive(self, node_id: str, alive_since: datetime) -> bool:
        lease = self._tables.nodes.get(node_id)
        return lease is not None and lease[1] >= alive_since

    async def find_presence(self, station_id: str, alive_since: datetime) -> Presence | None:
        return (await self.presences(alive_since)).get(station_id)

    async def presences(self, alive_since: datetime) -> dict[str, Presence]:
        self._check_open("list open connections")
        found: dict[str, Presence] = {}
        for p in sorted(self._tables.connections.values(), key=lambda p: p.epoch):
            if self._alive(p.node_id, alive_since):
                found[p.station_id] = p
        return found

    async def connections_of(self, node_id: str) -> list[Presence]:
        self._check_open("list this process's connections")
        return [p for p in self._tables.connections.values() if p.node_id == node_id]

    async def stale_connections(
        self, alive_since: datetime, node_id: str | None = None
    ) -> list[Presence]:
        self._check_open("find connections of stopped processes")
        return sorted(
            (
                p
                for p in self._tables.connections.values()
                if p.node_id == node_id or not self._alive(p.node_id, alive_since)
            ),
            key=lambda p: p.epoch,
        )

    async def next_transaction_number(self) -> int:
        self._check_open("allocate a 1.6 transaction id")
        number = next(self._transaction_numbers)
        if number > INT32_MAX:
            raise StorageError("cannot allocate a 1.6 transaction id: int32 exhausted")
        return number

    async def list_transactions(self, where: TransactionFilter) -> list[Transaction]:
        self._check_open("list transactions")

        def matches(tx: Transaction) -> bool:
            return (
                (where.station_id is None or tx.station_id == where.station_id)
                and (where.transaction_id is None or tx.transaction_id == where.transaction_id)
                and (where.id_token is None or tx.id_token == where.id_token)
                and (where.active is None or tx.is_active == where.active)
                and (where.started_after is None or tx.started_at >= where.started_after)
                and (where.started_before is None or tx.started_at < where.started_before)
            )

        found = [(n, tx) for n, tx in self._tables.transactions.values() if matches(tx)]
        found.sort(key=lambda pair: (pair[1].started_at, pair[0]), reverse=True)
        return [tx for _, tx in found[where.offset : where.offset + where.limit]]

    async def count_active_transactions(self) -> int:
        self._check_open("count active transactions")
        return sum(1 for _, tx in self._tables.transactions.values() if tx.is_active)

    async def list_meter_samples(self, station_id: str, transaction_id: str) -> list[MeterSample]:
        self._check_open("list meter samples")
        return [
            sample
            for station, transaction, samples in self._tables.readings
            if station == station_id and transaction == transaction_id
            for sample in samples
        ]

    async def list_transaction_seq_nos(self, station_id: str, transaction_id: str) -> set[int]:
        self._check_open("list transaction seqNos")
        return set(self._tables.seq_nos.get((station_id, transaction_id), ()))

    # --- station state -----------------------------------------------------

    async def list_connectors(self, station_id: str) -> list[ConnectorStatus]:
        self._check_open("list connectors")
        return _of_station(self._tables.connectors, station_id)

    async def find_local_list_version(self, station_id: str) -> int | None:
        self._check_open("find local list version")
        return self._tables.local_list_versions.get(station_id)

    async def list_device_model(self, station_id: str) -> list[DeviceModelEntry]:
        self._check_open("list device model")
        return _of_station(self._tables.device_model, station_id)

    async def list_notifications(
        self, station_id: str, action: str | None = None
    ) -> list[StationNotified]:
        self._check_open("list notifications")
        return [
            n
            for n in self._tables.notifications
            if n.station_id == station_id and (action is None or n.action == action)
        ]

    async def list_configuration(self, station_id: str) -> list[ConfigurationKey]:
        self._check_open("list configuration")
        return _of_station(self._tables.configuration, station_id)

    async def list_reservations(self, station_id: str) -> list[Reservation]:
        self._check_open("list reservations")
        return _of_station(self._tables.reservations, station_id)

    async def list_charging_profiles(self, station_id: str) -> list[ChargingProfile]:
        self._check_open("list charging profiles")
        found = [p for p in self._tables.charging_profiles if p.station_id == station_id]
        return sorted(found, key=lambda p: (p.evse_id, p.profile_id))

    # --- commands ----------------------------------------------------------

    async def find_command(self, command_id: str) -> Command | None:
        self._check_open("find command")
        found = self._tables.commands.get(command_id)
        return None if found is None else found[1]

    async def list_commands(self, where: CommandFilter) -> list[Command]:
        self._check_open("list commands")
        found = [
            c
            for _, c in self._tables.commands.values()
            if (where.station_id is None or c.station_id == where.station_id)
            and (where.status is None or c.status == CommandStatus(where.status))
        ]
        # Newest first, ties by id ascending (ORDER BY created_at DESC, id).
        found.sort(key=lambda c: c.id)
        found.sort(key=lambda c: c.created_at, reverse=True)
        return found[where.offset : where.offset + where.limit]

    async def list_queued_commands(self, station_id: str, limit: int = 100) -> list[Command]:
        self._check_open("list queued commands")
        found = [c for c in self._queued() if c.station_id == station_id]
        return sorted(found, key=lambda c: (c.created_at, c.id))[:limit]

    async def list_expired_commands(self, now: datetime, limit: int = 100) -> list[Command]:
        self._check_open("list expired commands")
        found = [c for c in self._queued() if c.expires_at is not None and c.expires_at <= now]
        return sorted(found, key=lambda c: c.expires_at or now)[:limit]

    async def list_stations_with_queued_commands(self) -> list[str]:
        self._check_open("list stations with queued commands")
        return sorted({c.station_id for c in self._queued()})

    def _queued(self) -> list[Command]:
        return [c for _, c in self._tables.commands.values() if c.status == CommandStatus.QUEUED]

    # --- answers -----------------------------------------------------------

    async def find_call_answer(self, station_id: str, action: str) -> CallAnswered | None:
        self._check_open("find call answer")
        found = self._tables.answers.get((station_id, action))
        return None if found is None else found[0]

    async def prune_call_answers(self, answered_before: datetime, limit: int = 10_000) -> int:
        self._check_open("prune call answers")
        doomed = [key for key, (_, at) in self._tables.answers.items() if at < answered_before]
        for key in doomed[:limit]:
            del self._tables.answers[key]
        return len(doomed[:limit])

    # --- outbox ------------------------------------------------------------

    async def outbox_pending(
        self, limit: int, skip: Sequence[tuple[int, int]] = ()
    ) -> list[OutboxRow]:
        self._check_open("read the outbox")
        pending = [
            row
            for row in self._tables.outbox
            if row.delivered_at is None and not any(lo <= row.seq <= hi for lo, hi in skip)
        ]
        return pending[:limit]

    async def outbox_mark_delivered(self, seqs: Sequence[int], at: datetime) -> None:
        self._check_open("mark outbox rows delivered")
        marked = set(seqs)
        self._tables.outbox = [
            replace(row, delivered_at=at) if row.seq in marked and row.delivered_at is None else row
            for row in self._tables.outbox
        ]

    async def outbox_prune(self, delivered_before: datetime, limit: int = 10_000) -> int:
        self._check_open("prune the outbox")
        doomed = {
            row.seq
            for row in self._tables.outbox
            if row.delivered_at is not None and row.delivered_at < delivered_before
        }
        doomed = set(sorted(doomed)[:limit])
        self._tables.outbox = [row for row in self._tables.outbox if row.seq not in doomed]
        return len(doomed)

    async def outbox_backlog(self, cap: int = 1_000_000) -> OutboxBacklog:
        self._check_open("measure the outbox backlog")
        pending = [row for row in self._tables.outbox if row.delivered_at is None]
        oldest = pending[0].event.recorded_at if pending else None
        return OutboxBacklog(min(len(pending), cap), oldest)

    async def outbox_stats(self) -> OutboxStats:
        self._check_open("count the outbox")
        pending = [row for row in self._tables.outbox if row.delivered_at is None]
        delivered = len(self._tables.outbox) - len(pending)
        oldest = pending[0].event.recorded_at if pending else None
        return OutboxStats(len(pending), delivered, oldest)

    async def outbox_list(self, limit: int, pending_only: bool) -> list[OutboxRow]:
        self._check_open("list the outbox")
        rows = [r for r in self._tables.outbox if not pending_only or r.delivered_at is None]
        return rows[::-1][:limit]

    def outbox_subscribe(self, listener: Callable[[], None]) -> None:
        self._outbox_listeners.append(listener)

    async def outbox_lead(self) -> bool:
        # One process holds the one database: it always leads.
        self._check_open("lead the outbox relay")
        return True

    async def outbox_resign(self) -> None:
        return None

    # --- plumbing ----------------------------------------------------------

    def _check_open(self, action: str) -> None:
        if self._closed:
            raise StorageError(f"cannot {action}: the storage is closed")


def _latest(known: datetime | None, seen: datetime) -> datetime:
    return seen if known is None else max(known, seen)


def _stamped(tx: Transaction, now: datetime) -> Transaction:
    return tx if tx.updated_at is not None else replace(tx, updated_at=now)


def _storable(value: Any) -> None:
    """Raise StorageError for a value a JSON column cannot hold, as the databases do."""
    try:
        orjson.dumps(value)
    except (orjson.JSONEncodeError, OverflowError) as exc:
        raise StorageError(f"cannot commit: a value cannot be stored: {exc}") from exc


def _of_station(table: dict[Any, V], station_id: str) -> list[V]:
    """The rows of ``station_id`` in key order (the ORDER BY of the SQL adapters)."""
    return [table[key] for key in sorted(k for k in table if k[0] == station_id)]


def _replaced_by(stored: ChargingProfile, new: ChargingProfile) -> bool:
    """The rule of both protocols: same id, or same EVSE, purpose and stack level."""
    return stored.station_id == new.station_id and (
        stored.profile_id == new.profile_id
        or (
            stored.evse_id == new.evse_id
            and stored.purpose == new.purpose
            and stored.stack_level == new.stack_level
        )
    )


def _cleared(stored: ChargingProfile, op: ChargingProfilesCleared) -> bool:
    c = op.criteria
    return (
        stored.station_id == op.station_id
        and (c.profile_id is None or stored.profile_id == c.profile_id)
        and (c.evse_id is None or stored.evse_id == c.evse_id)
        and (c.purpose is None or stored.purpose == c.purpose)
        and (c.stack_level is None or stored.stack_level == c.stack_level)
    )
