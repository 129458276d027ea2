"""Rows <-> domain values, the SELECT column lists and the SQL both dialects
run, shared by the SQLite and PostgreSQL adapters (docs/storage.md).

Both dialects keep the same columns in the same order (the migrations of
each), so one function per table turns domain values into rows and back.
Where the drivers differ is how a timestamp, a JSON value and a boolean
travel:

- writing, not at all here: a row holds datetimes, dicts, lists and bools as
  they are. asyncpg takes them natively (jsonb through orjson, see
  postgres.py); SQLite's adapters (registered in sqlite.py) bind them as
  fixed-width UTC text, JSON text and integers. The group-commit path builds
  the same tuples for both, one comprehension per kind of op (no call per
  row, no conversion in Python for PostgreSQL).
- reading, by a ``Decoding``: what a dialect's driver hands back becomes the
  domain's types (identity for PostgreSQL, parsing for SQLite's text).

SQL that is the same in both dialects is written once, with PostgreSQL's
``$n`` placeholders; ``sqlite_placeholders`` renders SQLite's numbered ``?n``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from csms.core.domain import (
    AuthorizationStatus,
    ChargingProfile,
    Command,
    CommandStatus,
    ConfigurationKey,
    ConnectorStatus,
    DeviceModelEntry,
    IdToken,
    IdTokenType,
    MeterSample,
    Reservation,
    Station,
    Transaction,
)
from csms.core.events import Event
from csms.core.ports import (
    CallAnswered,
    CommandFilter,
    ConfigurationChanged,
    ConnectorStatusChanged,
    DeviceModelReported,
    DeviceModelValuesSet,
    EventAppended,
    MeterSamplesRecorded,
    OutboxRow,
    Presence,
    ReservationChanged,
    StationBooted,
    StationNotified,
    TransactionChanged,
    TransactionEventRecorded,
    TransactionFilter,
    TransactionStarted,
)

Row = tuple[Any, ...]
"""A row to write, in its table's column order."""


class Columns(Protocol):
    """A fetched row, read by position: SQLite's tuple or asyncpg's Record."""

    def __getitem__(self, index: int, /) -> Any: ...


# --- reading: what differs between the drivers --------------------------------


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class Decoding:
    """How one dialect's driver returns timestamps, JSON and booleans.

    Each function receives the column's value, None included (a NULL)."""

    timestamp: Callable[[Any], datetime | None] = _same
    json: Callable[[Any], Any] = _same
    flag: Callable[[Any], bool | None] = _same


T = TypeVar("T")
Decode = Callable[[Columns, Decoding], T]
"""A row decoder: the fetched columns and the dialect's ``Decoding`` in, a value out."""

NATIVE = Decoding()
"""asyncpg: timestamptz as datetime, jsonb as Python values, boolean as bool."""


# --- SELECT column lists, each in the order of its decoder --------------------

STATION_COLUMNS = (
    "id, password_hash, security_profile, ocpp_version, vendor, model, serial_number,"
    " firmware_version, boot_info, registered_at, last_boot_at, last_seen_at,"
    " previous_password_hash, boot_status, heartbeat_interval"
)
SELECT_STATIONS = f"SELECT {STATION_COLUMNS} FROM stations"  # noqa: S608 - constant SQL text
ID_TOKEN_COLUMNS = "id_token, status, type, expires_at, group_id, updated_at"  # noqa: S105 - SQL
SELECT_ID_TOKENS = f"SELECT {ID_TOKEN_COLUMNS} FROM id_tokens"  # noqa: S608 - constant SQL text
SELECT_CONNECTORS = (
    "SELECT station_id, evse_id, connector_id, status, error_code, info, vendor_id,"
    " vendor_error_code, updated_at FROM connectors"
)
# In the order of Transaction's fields.
SELECT_TRANSACTIONS = (
    "SELECT station_id, transaction_id, evse_id, connector_id, id_token, meter_start_wh,"
    " started_at, ocpp_version, meter_stop_wh, energy_wh, ended_at, stop_reason,"
    " charging_state, seq_no, last_meter_wh, anomalies, updated_at, id_token_status,"
    " remote_start_id FROM transactions"
)
SELECT_DEVICE_MODEL = (
    "SELECT component, component_instance, evse_id, connector_id, variable, variable_instance,"
    " attribute_type, value, mutability, characteristics FROM device_model"
)
SELECT_CONFIGURATION = "SELECT key, value, readonly, updated_at FROM station_configuration"
SELECT_NOTIFICATIONS = "SELECT station_id, action, payload, at FROM station_notifications"
# In the order of Command's fields.
SELECT_COMMANDS = (
    "SELECT id, station_id, name, action, ocpp_version, request, status, source, created_at,"
    " payload, response, error, expires_at, sent_at, completed_at FROM commands"
)
SELECT_RESERVATIONS = (
    "SELECT station_id, reservation_id, evse_id, id_token, expires_at, status, updated_at"
    " FROM reservations"
)
SELECT_CHARGING_PROFILES = (
    "SELECT station_id, evse_id, profile_id, stack_level, purpose, profile, updated_at"
    " FROM charging_profiles"
)
SELECT_OUTBOX = (
    "SELECT seq, event_id, type, station_id, ocpp_version, occurred_at, recorded_at, data,"
    " delivered_at FROM outbox"
)


# --- rows -> domain -------------------------------------------------------------


def station(r: Columns, d: Decoding) -> Station:
    ts = d.timestamp
    return Station(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], d.json(r[8]),
        ts(r[9]), ts(r[10]), ts(r[11]), r[12], r[13], r[14],
    )  # fmt: skip


def presence(r: Columns, d: Decoding) -> Presence:
    return Presence(r[0], r[1], int(r[2]), r[3], _required(d.timestamp(r[4])))


def id_token(r: Columns, d: Decoding) -> IdToken:
    return IdToken(
        r[0], AuthorizationStatus(r[1]), IdTokenType(r[2]), d.timestamp(r[3]), r[4],
        d.timestamp(r[5]),
    )  # fmt: skip


def connector(r: Columns, d: Decoding) -> ConnectorStatus:
    return ConnectorStatus(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], _required(d.timestamp(r[8]))
    )


def transaction(r: Columns, d: Decoding) -> Transaction:
    ts = d.timestamp
    return Transaction(
        station_id=r[0],
        transaction_id=r[1],
        evse_id=r[2],
        connector_id=r[3],
        id_token=r[4],
        meter_start_wh=r[5],
        started_at=_required(ts(r[6])),
        ocpp_version=r[7],
        meter_stop_wh=r[8],
        energy_wh=r[9],
        ended_at=ts(r[10]),
        stop_reason=r[11],
        charging_state=r[12],
        seq_no=r[13],
        last_meter_wh=r[14],
        anomalies=tuple(d.json(r[15])),
        updated_at=ts(r[16]),
        id_token_status=r[17],
        remote_start_id=r[18],
    )


def samples(column: Any, d: Decoding) -> list[MeterSample]:
    """A meter_readings row's samples (a JSON array; each sample's timestamp as
    ISO 8601 text in both dialects, written by orjson or migration 0007)."""
    return [
        MeterSample(
            datetime.fromisoformat(s[0]),
            s[1],
            float(s[2]),
            s[3],
            s[4],
            s[5],
            s[6],
            s[7] if len(s) > 7 else None,
        )
        for s in d.json(column)
    ]


def device_model_entry(r: Columns, d: Decoding) -> DeviceModelEntry:
    return DeviceModelEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], d.json(r[9]))


def configuration_key(r: Columns, d: Decoding) -> ConfigurationKey:
    return ConfigurationKey(r[0], r[1], d.flag(r[2]), d.timestamp(r[3]))


def reservation(r: Columns, d: Decoding) -> Reservation:
    return Reservation(
        r[0], r[1], r[2], r[3], _required(d.timestamp(r[4])), r[5], d.timestamp(r[6])
    )


def charging_profile(r: Columns, d: Decoding) -> ChargingProfile:
    return ChargingProfile(r[0], r[1], r[2], r[3], r[4], d.json(r[5]), d.timestamp(r[6]))


def command(r: Columns, d: Decoding) -> Command:
    ts, json = d.timestamp, d.json
    return Command(
        id=r[0],
        station_id=r[1],
        name=r[2],
        action=r[3],
        ocpp_version=r[4],
        request=json(r[5]),
        status=CommandStatus(r[6]),
        source=r[7],
        created_at=_required(ts(r[8])),
        payload=json(r[9]),
        response=json(r[10]),
        error=json(r[11]),
        expires_at=ts(r[12]),
        sent_at=ts(r[13]),
        completed_at=ts(r[14]),
    )


def notified(r: Columns, d: Decoding) -> StationNotified:
    return StationNotified(r[0], r[1], d.json(r[2]), _required(d.timestamp(r[3])))


def outbox_row(r: Columns, d: Decoding) -> OutboxRow:
    ts = d.timestamp
    # str(): PostgreSQL returns the uuid column as a UUID.
    event = Event(
        str(r[1]), r[2], r[3], r[4], _required(ts(r[5])), _required(ts(r[6])), d.json(r[7])
    )
    return OutboxRow(r[0], event, ts(r[8]))


def first(r: Columns, _: Decoding) -> Any:
    """The first column as the driver returned it."""
    return r[0]


def _required(moment: datetime | None) -> datetime:
    assert moment is not None  # a NOT NULL column
    return moment


# --- domain -> rows -------------------------------------------------------------
#
# The group-commit path: one call per kind of op in a batch, building plain
# tuples in a comprehension (no call per row), in the column order of the
# SQLite INSERTs and of csms_apply_batch (migration 0008).


def booted_row(op: StationBooted) -> Row:
    return (
        op.station_id, op.ocpp_version, op.vendor, op.model, op.serial_number,
        op.firmware_version, op.boot_info, op.at,
    )  # fmt: skip


def presence_row(p: Presence) -> Row:
    return (p.station_id, p.epoch, p.node_id, p.ocpp_version, p.opened_at)


def transaction_rows(
    ops: Iterable[TransactionStarted | TransactionChanged], now: datetime
) -> list[Row]:
    return [
        (
            t.station_id, t.transaction_id, t.evse_id, t.connector_id, t.id_token,
            t.meter_start_wh, t.meter_stop_wh, t.energy_wh, t.started_at, t.ended_at,
            t.stop_reason, t.charging_state, t.seq_no, t.last_meter_wh, t.anomalies,
            t.ocpp_version, t.updated_at or now, t.id_token_status, t.remote_start_id,
        )
        for t in (op.transaction for op in ops)
    ]  # fmt: skip


def connector_rows(ops: Iterable[ConnectorStatusChanged]) -> list[Row]:
    return [
        (
            s.station_id, s.evse_id, s.connector_id, s.status, s.error_code, s.info,
            s.vendor_id, s.vendor_error_code, s.updated_at,
        )
        for s in (op.status for op in ops)
    ]  # fmt: skip


def reading_rows(ops: Iterable[MeterSamplesRecorded]) -> list[Row]:
    """One row per message with samples; each sample as a list in the column
    order of migration 0007, with the signed data as an eighth element only
    where the station signed the reading (older rows have seven)."""
    return [
        (
            op.station_id, op.transaction_id, op.evse_id,
            [
                (s.timestamp, s.measurand, s.value, s.unit, s.phase, s.context, s.location)
                if s.signed_data is None
                else (
                    s.timestamp, s.measurand, s.value, s.unit, s.phase, s.context, s.location,
                    s.signed_data,
                )
                for s in op.samples
            ],
        )
        for op in ops
        if op.samples
    ]  # fmt: skip


def notified_rows(ops: Iterable[StationNotified]) -> list[Row]:
    return [(op.station_id, op.action, op.payload, op.at) for op in ops]


def transaction_event_rows(ops: Iterable[TransactionEventRecorded], now: datetime) -> list[Row]:
    return [
        (
            op.station_id, op.transaction_id, op.seq_no, op.event_type, op.trigger_reason,
            op.occurred_at, op.offline, now,
        )
        for op in ops
    ]  # fmt: skip


def device_model_rows(ops: Iterable[DeviceModelReported | DeviceModelValuesSet]) -> list[Row]:
    return [
        (
            op.station_id, e.key, e.component, e.component_instance, e.evse_id, e.connector_id,
            e.variable, e.variable_instance, e.attribute_type, e.value, e.mutability,
            e.characteristics, op.at,
        )
        for op in ops
        for e in op.entries
    ]  # fmt: skip


def configuration_row(op: ConfigurationChanged, k: ConfigurationKey) -> Row:
    return (op.station_id, k.key, k.value, k.readonly, op.at)


def reservation_rows(ops: Iterable[ReservationChanged], now: datetime) -> list[Row]:
    return [
        (
            r.station_id, r.reservation_id, r.evse_id, r.id_token, r.expires_at, r.status,
            r.updated_at or now,
        )
        for r in (op.reservation for op in ops)
    ]  # fmt: skip


def event_rows(ops: Iterable[EventAppended]) -> list[Row]:
    return [
        (e.event_id, e.type, e.station_id, e.ocpp_version, e.occurred_at, e.recorded_at, e.data)
        for e in (op.event for op in ops)
    ]


def answer_rows(ops: Iterable[CallAnswered], now: datetime) -> list[Row]:
    """In the column order of CALL_ANSWERED and of csms_apply_answered_batch (migration 0010)."""
    return [
        (op.station_id, op.action, op.message_id, op.request_digest, op.answer, now) for op in ops
    ]


def call_answered(r: Columns, d: Decoding) -> CallAnswered:
    return CallAnswered(r[0], r[1], r[2], r[3], d.json(r[4]))


def charging_profile_row(p: ChargingProfile, now: datetime) -> Row:
    """In the column order of CHARGING_PROFILE_SET."""
    return (
        p.station_id, p.profile_id, p.evse_id, p.stack_level, p.purpose, p.profile,
        p.updated_at or now,
    )  # fmt: skip


def command_row(c: Command) -> Row:
    """In the column order of COMMAND_INSERTED; COMMAND_UPDATED takes row[2:] + (id, status)."""
    return (
        c.id, c.station_id, c.name, c.action, c.ocpp_version, c.request, c.payload,
        CommandStatus(c.status).value, c.response, c.error, c.source, c.created_at,
        c.expires_at, c.sent_at, c.completed_at,
    )  # fmt: skip


def id_token_row(token: IdToken, now: datetime) -> Row:
    """In the column order of PUT_ID_TOKEN."""
    return (
        token.id_token, AuthorizationStatus(token.status).value, IdTokenType(token.type).value,
        token.expires_at, token.group_id, token.updated_at or now,
    )  # fmt: skip


# --- SQL the dialects share (PostgreSQL's placeholders) ---------------------------


def sqlite_placeholders(sql: str) -> str:
    """``sql`` with PostgreSQL's ``$n`` placeholders as SQLite's numbered ``?n``."""
    return re.sub(r"\$(\d+)", r"?\1", sql)


ROTATE_CREDENTIAL = (
    "UPDATE stations SET previous_password_hash = coalesce(previous_password_hash,"
    " password_hash), password_hash = $1 WHERE id = $2"
)
SET_BOOT_STATUS = "UPDATE stations SET boot_status = $1 WHERE id = $2"
RETIRE_PREVIOUS_CREDENTIAL = (
    "UPDATE stations SET previous_password_hash = NULL, pending_password = NULL WHERE id = $1"
)
SET_PENDING_PASSWORD = "UPDATE stations SET pending_password = $1 WHERE id = $2"  # noqa: S105 - SQL
FIND_PENDING_PASSWORD = "SELECT pending_password FROM stations WHERE id = $1"  # noqa: S105 - SQL
# The first offer of a shared key is kept (table ``secrets``).
SHARED_KEY_OFFERED = "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING"
FIND_SHARED_KEY = "SELECT value FROM secrets WHERE name = $1"
FIND_STATION = f"{SELECT_STATIONS} WHERE id = $1"
FIND_STATION_IGNORING_CASE = f"{SELECT_STATIONS} WHERE lower(id) = lower($1) LIMIT 2"
LIST_STATIONS = f"{SELECT_STATIONS} ORDER BY id"
# --- presence (migration 0009) ---
SELECT_PRESENCE = """SELECT c.station_id, c.node_id, c.epoch, c.ocpp_version, c.opened_at
FROM connections c"""
CONNECTION_OPENED = """INSERT INTO connections (station_id, epoch, node_id, ocpp_version, opened_at)
VALUES ($1, $2, $3, $4, $5)"""
# The new epoch on every row, the station's open connections (if any) beside it.
BEGIN_CONNECTION = """WITH e AS (SELECT nextval('connection_epochs') AS epoch)
SELECT e.epoch, c.station_id, c.node_id, c.epoch, c.ocpp_version, c.opened_at
FROM e LEFT JOIN connections c ON c.station_id = $1 ORDER BY c.epoch"""
OPEN_CONNECTIONS = f"{SELECT_PRESENCE} WHERE c.station_id = $1 ORDER BY c.epoch"
NODE_CONNECTIONS = f"{SELECT_PRESENCE} WHERE c.node_id = $1"
CONNECTION_CLOSED = "DELETE FROM connections WHERE station_id = $1 AND epoch = $2"
# The newest connection of each station held by a live node comes last.
FIND_PRESENCE = f"""{SELECT_PRESENCE} JOIN nodes n ON n.node_id = c.node_id
WHERE c.station_id = $1 AND n.seen_at >= $2 ORDER BY c.epoch DESC LIMIT 1"""
LIST_PRESENCES = f"""{SELECT_PRESENCE} JOIN nodes n ON n.node_id = c.node_id
WHERE n.seen_at >= $1 ORDER BY c.epoch"""
STALE_CONNECTIONS = f"""{SELECT_PRESENCE} LEFT JOIN nodes n ON n.node_id = c.node_id
WHERE n.node_id IS NULL OR n.seen_at < $1 OR c.node_id = $2 ORDER BY c.epoch"""
NODE_RENEWED = """INSERT INTO nodes (node_id, started_at, seen_at) VALUES ($1, $2, $3)
ON CONFLICT (node_id) DO UPDATE SET started_at = excluded.started_at, seen_at = excluded.seen_at"""
NODES_FORGOTTEN = """DELETE FROM nodes WHERE seen_at < $1
AND NOT EXISTS (SELECT 1 FROM connections c WHERE c.node_id = nodes.node_id)"""

HEARTBEAT_INTERVAL_SET = "UPDATE stations SET heartbeat_interval = $1 WHERE id = $2"
FIND_LOCAL_LIST_VERSION = "SELECT local_list_version FROM stations WHERE id = $1"
FIND_ID_TOKEN = f"{SELECT_ID_TOKENS} WHERE id_token = $1"
LIST_ID_TOKENS = f"{SELECT_ID_TOKENS} ORDER BY id_token"
DELETE_ID_TOKEN = "DELETE FROM id_tokens WHERE id_token = $1"  # noqa: S105 - SQL, not a secret
LIST_CONNECTORS = f"{SELECT_CONNECTORS} WHERE station_id = $1 ORDER BY evse_id, connector_id"
FIND_TRANSACTION = f"{SELECT_TRANSACTIONS} WHERE station_id = $1 AND transaction_id = $2"
# The literal '1.6' matches the partial index transactions_ocpp16_id.
FIND_OCPP16_TRANSACTION = (
    f"{SELECT_TRANSACTIONS}"
    " WHERE transaction_id = $1 AND ocpp_version = '1.6' ORDER BY id DESC LIMIT 1"
)
FIND_OPEN_TRANSACTION_LIKE = (
    f"{SELECT_TRANSACTIONS}"
    " WHERE station_id = $1 AND evse_id = $2 AND ended_at IS NULL"
    " AND id_token = $3 AND started_at = $4 ORDER BY id DESC LIMIT 1"
)
# Both read through the partial index transactions_active.
LIST_OPEN_TRANSACTIONS = (
    f"{SELECT_TRANSACTIONS} WHERE station_id = $1 AND ended_at IS NULL ORDER BY id"
)
LIST_OPEN_TRANSACTIONS_ON_EVSE = (
    f"{SELECT_TRANSACTIONS} WHERE station_id = $1 AND evse_id = $2 AND ended_at IS NULL ORDER BY id"
)
COUNT_ACTIVE_TRANSACTIONS = "SELECT count(*) FROM transactions WHERE ended_at IS NULL"
LIST_METER_READINGS = (
    "SELECT samples FROM meter_readings WHERE station_id = $1 AND transaction_id = $2 ORDER BY id"
)
LIST_SEQ_NOS = "SELECT seq_no FROM transaction_events WHERE station_id = $1 AND transaction_id = $2"
LIST_DEVICE_MODEL = f"{SELECT_DEVICE_MODEL} WHERE station_id = $1 ORDER BY entry_key"
LIST_CONFIGURATION = f"{SELECT_CONFIGURATION} WHERE station_id = $1 ORDER BY key"
LIST_RESERVATIONS = f"{SELECT_RESERVATIONS} WHERE station_id = $1 ORDER BY reservation_id"
LIST_CHARGING_PROFILES = (
    f"{SELECT_CHARGING_PROFILES} WHERE station_id = $1 ORDER BY evse_id, profile_id"
)
FIND_COMMAND = f"{SELECT_COMMANDS} WHERE id = $1"
LIST_QUEUED_COMMANDS = (
    f"{SELECT_COMMANDS} WHERE station_id = $1 AND status = 'queued'"
    " ORDER BY created_at, id LIMIT $2"
)
LIST_EXPIRED_COMMANDS = (
    f"{SELECT_COMMANDS} WHERE status = 'queued' AND expires_at <= $1 ORDER BY expires_at LIMIT $2"
)
LIST_STATIONS_WITH_QUEUED_COMMANDS = (
    "SELECT DISTINCT station_id FROM commands WHERE status = 'queued' ORDER BY station_id"
)
OUTBOX_PENDING = f"{SELECT_OUTBOX} WHERE delivered_at IS NULL ORDER BY seq LIMIT $1"
# Both conditions match the partial index outbox_delivered_at; LIMIT bounds the statement.
PRUNE_OUTBOX = """
DELETE FROM outbox WHERE seq IN (
    SELECT seq FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < $1 LIMIT $2
)
"""
OLDEST_PENDING = "SELECT recorded_at FROM outbox WHERE delivered_at IS NULL ORDER BY seq LIMIT 1"
# Only pending rows are read (the partial index outbox_pending), never the history.
COUNT_PENDING = (
    "SELECT count(*) FROM (SELECT 1 FROM outbox WHERE delivered_at IS NULL LIMIT $1) AS p"
)

# The last answer per station and action; a row with the same message id and
# digest is left as it is (the WHERE), which tells the CALL was answered before.
CALL_ANSWERED = """
INSERT INTO call_answers (station_id, action, message_id, request_digest, answer, answered_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (station_id, action) DO UPDATE SET
    message_id = excluded.message_id, request_digest = excluded.request_digest,
    answer = excluded.answer, answered_at = excluded.answered_at
WHERE call_answers.message_id <> excluded.message_id
    OR call_answers.request_digest <> excluded.request_digest
"""
SELECT_CALL_ANSWERS = (
    "SELECT station_id, action, message_id, request_digest, answer FROM call_answers"
)
FIND_CALL_ANSWER = f"{SELECT_CALL_ANSWERS} WHERE station_id = $1 AND action = $2"
PRUNE_CALL_ANSWERS = """
DELETE FROM call_answers WHERE (station_id, action) IN (
    SELECT station_id, action FROM call_answers WHERE answered_at < $1 LIMIT $2
)
"""

# CASE WHEN $5/$6: keep the stored value (UNCHANGED); the original row by its table's name.
REGISTER_STATION = """
INSERT INTO stations (id, password_hash, security_profile, registered_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO UPDATE SET
    password_hash = CASE WHEN $5 THEN stations.password_hash ELSE excluded.password_hash END,
    security_profile = CASE WHEN $6 THEN stations.security_profile
                            ELSE excluded.security_profile END,
    registered_at = coalesce(stations.registered_at, excluded.registered_at)
"""

PUT_ID_TOKEN = """
INSERT INTO id_tokens (id_token, status, type, expires_at, group_id, updated_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id_token) DO UPDATE SET
    status = excluded.status, type = excluded.type, expires_at = excluded.expires_at,
    group_id = excluded.group_id, updated_at = excluded.updated_at
"""  # noqa: S105 - SQL text, not a secret

# A new profile replaces the one with its id, or with its EVSE, purpose and stack level.
CHARGING_PROFILE_REPLACED = """
DELETE FROM charging_profiles WHERE station_id = $1
    AND (profile_id = $2 OR (evse_id = $3 AND purpose = $4 AND stack_level = $5))
"""

CHARGING_PROFILE_SET = """
INSERT INTO charging_profiles (station_id, profile_id, evse_id, stack_level, purpose, profile,
                               updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""

COMMAND_INSERTED = """
INSERT INTO commands (id, station_id, name, action, ocpp_version, request, payload, status,
                      response, error, source, created_at, expires_at, sent_at, completed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
"""

# station_id and id never change; the WHERE makes the update conditional on the status.
COMMAND_UPDATED = """
UPDATE commands SET name = $1, action = $2, ocpp_version = $3, request = $4, payload = $5,
    status = $6, response = $7, error = $8, source = $9, created_at = $10, expires_at = $11,
    sent_at = $12, completed_at = $13
WHERE id = $14 AND status = $15
"""

# What a station's deletion removes besides its row: its current state, not its history.
STATION_STATE_TABLES = (
    "connectors",
    "station_configuration",
    "device_model",
    "reservations",
    "charging_profiles",
    "call_answers",
)


def notifications_query(station_id: str, action: str | None) -> tuple[str, list[Any]]:
    """The SELECT of ``list_notifications``: in the order received."""
    if action is None:
        return f"{SELECT_NOTIFICATIONS} WHERE station_id = $1 ORDER BY id", [station_id]
    sql = f"{SELECT_NOTIFICATIONS} WHERE station_id = $1 AND action = $2 ORDER BY id"
    return sql, [station_id, action]


def outbox_list_query(pending_only: bool) -> str:
    """The SELECT of ``outbox_list`` (one parameter, the limit): newest first."""
    pending = " WHERE delivered_at IS NULL" if pending_only else ""
    return f"{SELECT_OUTBOX}{pending} ORDER BY seq DESC LIMIT $1"


def transactions_query(where: TransactionFilter) -> tuple[str, list[Any]]:
    """The SELECT of ``list_transactions`` and its parameters, newest start first."""
    clauses: list[str] = []
    params: list[Any] = []
    for column_test, value in (
        ("station_id =", where.station_id),
        ("transaction_id =", where.transaction_id),
        ("id_token =", where.id_token),
        ("started_at >=", where.started_after),
        ("started_at <", where.started_before),
    ):
        if value is not None:
            params.append(value)
            clauses.append(f"{column_test} ${len(params)}")
    if where.active is not None:
        clauses.append("ended_at IS NULL" if where.active else "ended_at IS NOT NULL")
    order = "ORDER BY started_at DESC, id DESC"
    return _paged(SELECT_TRANSACTIONS, clauses, order, params, where.limit, where.offset)


def commands_query(where: CommandFilter) -> tuple[str, list[Any]]:
    """The SELECT of ``list_commands`` and its parameters, newest first."""
    clauses: list[str] = []
    params: list[Any] = []
    if where.station_id is not None:
        params.append(where.station_id)
        clauses.append(f"station_id = ${len(params)}")
    if where.status is not None:
        params.append(CommandStatus(where.status).value)
        clauses.append(f"status = ${len(params)}")
    order = "ORDER BY created_at DESC, id"
    return _paged(SELECT_COMMANDS, clauses, order, params, where.limit, where.offset)


def _paged(
    select: str, clauses: list[str], order: str, params: list[Any], limit: int, offset: int
) -> tuple[str, list[Any]]:
    condition = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    n = len(params)
    return f"{select}{condition} {order} LIMIT ${n + 1} OFFSET ${n + 2}", [*params, limit, offset]
