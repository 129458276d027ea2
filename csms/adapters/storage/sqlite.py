"""The embedded adapter: the standard library's ``sqlite3`` on one dedicated thread.

Every read and every group-committed batch is one function run on that
thread, so the event loop never blocks on SQLite and the connection is
never shared between threads. WAL lets other processes (the CLI) read
while the server writes; ``synchronous=FULL`` makes each commit survive a
power loss (billing data).

The outbox relay role is an exclusive ``flock`` on ``<database>-relay.lock``:
the kernel drops it when the holder exits, even by SIGKILL, so a restarted
or standby process takes over at once (a lease row would make it wait for
the lease to expire). A separate file, because closing any descriptor of
the database file would drop SQLite's own POSIX locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from csms.adapters.storage import rows
from csms.adapters.storage.batching import (
    GroupCommitter,
    GroupedOps,
    group_ops,
    refuse_answered,
)
from csms.adapters.storage.migrations import load_migrations
from csms.adapters.storage.rows import Decode, Decoding, Row
from csms.adapters.storage.shared import SqlStorage
from csms.core.domain import CommandStatus, IdToken, Station
from csms.core.errors import (
    ConflictError,
    StorageError,
    StorageUnavailableError,
)
from csms.core.ports import (
    ChargingProfileSet,
    ConnectionOpened,
    OutboxBacklog,
    OutboxRow,
    OutboxStats,
    PoolStats,
    Presence,
    WriteOp,
)
from csms.telemetry import metrics

if sys.platform != "win32":
    import fcntl

T = TypeVar("T")
Unit = Sequence[WriteOp]

BUSY_TIMEOUT_MS = 5_000
PING_TIMEOUT_S = 2.0
# UPSERT (INSERT ... ON CONFLICT DO UPDATE) arrived in SQLite 3.24.
MIN_SQLITE_VERSION = (3, 24, 0)
# Primary result codes meaning "the database cannot take writes now", as
# opposed to "this statement is wrong": retrying units one by one cannot help.
_UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_NOTADB,
    }
)


class SqliteStorage(SqlStorage):
    """The storage port on a SQLite file; open it with ``await SqliteStorage.open(path)``."""

    dialect: str = "sqlite"

    def __init__(self, path: str, executor: ThreadPoolExecutor, conn: sqlite3.Connection) -> None:
        self._path = path
        self.decoding = TEXT
        self._executor = executor
        self._conn: sqlite3.Connection | None = conn
        self._closed = False
        self._committer: GroupCommitter[Unit] = GroupCommitter(self._apply_batch)
        self._outbox_listeners: list[Callable[[], None]] = []
        self._relay_lock: int | None = None  # the descriptor holding the flock

    @classmethod
    async def open(cls, path: str) -> SqliteStorage:
        """Open the database file, creating it if needed.

        Raises ``StorageUnavailableError`` when the file cannot be opened as a database.
        """
        if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
            raise StorageUnavailableError(
                f"SQLite {sqlite3.sqlite_version} is too old: the CSMS needs 3.24 or newer"
            )
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="csms-sqlite")
        try:
            conn = await asyncio.get_running_loop().run_in_executor(executor, _connect, path)
        except sqlite3.Error as exc:
            executor.shutdown(wait=False)
            raise StorageUnavailableError(
                f"cannot open the SQLite database {path!r} (CSMS_DATABASE_URL): {exc}"
            ) from exc
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(path, executor, conn)

    async def _release(self) -> None:
        """Close the connection and its thread."""
        conn, self._conn = self._conn, None
        assert conn is not None  # only close() clears it, once
        with contextlib.suppress(sqlite3.Error):
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=False)

    async def migrate(self) -> list[str]:
        """Apply pending migrations in one write transaction; return their names."""
        return await self._call("migrate", _migrate)

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(PING_TIMEOUT_S):
                await self._call("ping", _ping)
        except (StorageError, TimeoutError):
            return False
        return True

    # --- hot path ----------------------------------------------------------

    async def _apply_batch(self, units: Sequence[Unit]) -> None:
        ops = group_ops(units)
        try:
            await self._call("commit", lambda conn: _apply_batch(conn, ops))
        except _AlreadyAnswered as exc:
            raise refuse_answered(units, exc.answers) from None
        self._committed(ops)

    def pool_stats(self) -> PoolStats | None:
        return None

    # --- registry ----------------------------------------------------------

    async def find_station(self, station_id: str) -> Station | None:
        return await self._call("find station", lambda conn: _find_station(conn, station_id))

    async def _register_station(self, station_id: str, params: Row) -> Station:
        def register(conn: sqlite3.Connection) -> Station:
            with _write_transaction(conn):
                conn.execute(_sql(rows.REGISTER_STATION), params)
                station = _find_station(conn, station_id)
            assert station is not None  # just upserted in this transaction
            return station

        return await self._call(f"register station {station_id!r}", register)

    async def rotate_station_password(self, station_id: str, password_hash: str) -> bool:
        return await self._write(
            "rotate station password", rows.ROTATE_CREDENTIAL, (password_hash, station_id)
        )

    async def set_boot_status(self, station_id: str, status: str) -> bool:
        return await self._write("set boot status", rows.SET_BOOT_STATUS, (status, station_id))

    async def retire_previous_password(self, station_id: str) -> None:
        sql = rows.RETIRE_PREVIOUS_CREDENTIAL
        await self._write("retire previous password", sql, (station_id,))

    async def set_pending_password(self, station_id: str, sealed: str) -> bool:
        sql = rows.SET_PENDING_PASSWORD
        return await self._write("keep the pending password", sql, (sealed, station_id))

    async def _offer_secret(self, name: str, candidate: str) -> None:
        await self._write(f"store secret {name!r}", rows.SHARED_KEY_OFFERED, (name, candidate))

    async def delete_station(self, station_id: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            with _write_transaction(conn):
                for table in rows.STATION_STATE_TABLES:
                    sql = f"DELETE FROM {table} WHERE station_id = ?"  # noqa: S608 - fixed names
                    conn.execute(sql, (station_id,))
                sql = "DELETE FROM stations WHERE id = ?"
                return conn.execute(sql, (station_id,)).rowcount == 1

        return await self._call(f"delete station {station_id!r}", delete)

    async def put_id_token(self, token: IdToken) -> IdToken:
        row = rows.id_token_row(token, datetime.now(UTC))

        def put(conn: sqlite3.Connection) -> IdToken:
            with _write_transaction(conn):
                conn.execute(_sql(rows.PUT_ID_TOKEN), row)
                stored = _one(conn, rows.FIND_ID_TOKEN, (token.id_token,), rows.id_token)
            assert stored is not None  # just upserted in this transaction
            return stored

        return await self._call(f"store id token {token.id_token!r}", put)

    async def delete_id_token(self, id_token: str) -> bool:
        return await self._write("delete id token", rows.DELETE_ID_TOKEN, (id_token,))

    # --- charging state (its reads are SqlStorage's) --------------------------

    async def begin_connection(self, station_id: str) -> tuple[int, list[Presence]]:
        return await self._call(
            f"open a connection of {station_id!r}",
            functools.partial(_begin_connection, station_id=station_id),
        )

    async def renew_node(self, node_id: str, started_at: datetime, at: datetime) -> None:
        await self._write("renew the node lease", rows.NODE_RENEWED, (node_id, started_at, at))

    async def forget_nodes(self, seen_before: datetime) -> None:
        await self._write("forget stopped nodes", rows.NODES_FORGOTTEN, (seen_before,))

    async def next_transaction_number(self) -> int:
        return await self._call("allocate a 1.6 transaction id", _next_transaction_number)

    # --- outbox ------------------------------------------------------------

    async def outbox_pending(
        self, limit: int, skip: Sequence[tuple[int, int]] = ()
    ) -> list[OutboxRow]:
        if skip:
            # The ranges as a JSON array of [low, high] pairs (the list adapter).
            params: Sequence[object] = ([list(r) for r in skip], limit)
            return await self._all(
                "read the outbox", _OUTBOX_PENDING_SKIPPING, params, rows.outbox_row
            )
        return await self._all("read the outbox", rows.OUTBOX_PENDING, (limit,), rows.outbox_row)

    async def outbox_mark_delivered(self, seqs: Sequence[int], at: datetime) -> None:
        def mark(conn: sqlite3.Connection) -> None:
            with _write_transaction(conn):
                conn.executemany(_MARK_DELIVERED, ((at, seq) for seq in seqs))

        if seqs:
            await self._call("mark outbox rows delivered", mark)

    async def prune_call_answers(self, answered_before: datetime, limit: int = 10_000) -> int:
        params = (answered_before, limit)

        def prune(conn: sqlite3.Connection) -> int:
            return conn.execute(_sql(rows.PRUNE_CALL_ANSWERS), params).rowcount

        return await self._call("prune call answers", prune)

    async def outbox_prune(self, delivered_before: datetime, limit: int = 10_000) -> int:
        params = (delivered_before, limit)

        def prune(conn: sqlite3.Connection) -> int:
            return conn.execute(_sql(rows.PRUNE_OUTBOX), params).rowcount

        return await self._call("prune the outbox", prune)

    async def outbox_backlog(self, cap: int = 1_000_000) -> OutboxBacklog:
        def backlog(conn: sqlite3.Connection) -> OutboxBacklog:
            (pending,) = conn.execute(_sql(rows.COUNT_PENDING), (cap,)).fetchone()
            return OutboxBacklog(pending, _oldest_pending(conn))

        return await self._call("measure the outbox backlog", backlog)

    async def outbox_stats(self) -> OutboxStats:
        return await self._call("count the outbox", _outbox_stats)

    async def outbox_lead(self) -> bool:
        if self._relay_lock is not None:
            return True
        if sys.platform == "win32":  # no flock: one process per database file there
            self._relay_lock = -1
            return True
        path = f"{self._path}-relay.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot open the relay lock file {path!r}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError as exc:
            os.close(fd)
            raise StorageError(f"cannot lock the relay lock file {path!r}: {exc}") from exc
        self._relay_lock = fd
        return True

    async def outbox_resign(self) -> None:
        fd, self._relay_lock = self._relay_lock, None
        if fd is not None and fd >= 0:
            os.close(fd)  # closing the descriptor releases the flock

    # --- plumbing ----------------------------------------------------------

    def wait_out_outages(self, seconds: float) -> None:
        self._committer.wait_out_outages(seconds)

    async def _one(
        self, action: str, sql: str, params: Sequence[Any], decode: Decode[T]
    ) -> T | None:
        return await self._call(action, lambda conn: _one(conn, sql, params, decode))

    async def _all(
        self, action: str, sql: str, params: Sequence[Any], decode: Decode[T]
    ) -> list[T]:
        return await self._call(action, lambda conn: _all(conn, sql, params, decode))

    async def _write(self, action: str, sql: str, params: Sequence[Any]) -> bool:
        """Run one statement in its own write transaction; True if it changed one row."""

        def write(conn: sqlite3.Connection) -> bool:
            with _write_transaction(conn):
                return conn.execute(_sql(sql), params).rowcount == 1

        return await self._call(action, write)

    async def _call(self, action: str, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on the database thread; translate sqlite3 errors."""
        conn = self._conn
        if conn is None:
            raise StorageError(f"cannot {action}: the storage is closed")
        started = time.perf_counter()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, conn)
        except sqlite3.Error as exc:
            message = f"cannot {action} in SQLite {self._path!r}: {exc}"
            if _primary_code(exc) in _UNAVAILABLE_CODES:
                raise StorageUnavailableError(message) from exc
            raise StorageError(message) from exc
        except (orjson.JSONEncodeError, OverflowError) as exc:
            # A value SQLite cannot hold (asyncpg reports these as its DataError).
            raise StorageError(f"cannot {action}: a value cannot be stored: {exc}") from exc
        finally:
            metrics.STORAGE_QUERY_SECONDS.observe(time.perf_counter() - started)


# --- on the database thread ---------------------------------------------------


def _connect(path: str) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; we BEGIN/COMMIT ourselves.
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        _enable_wal(conn)
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    except BaseException:
        conn.close()
        raise
    return conn


def _enable_wal(conn: sqlite3.Connection) -> None:
    # Switching a new file to WAL needs an exclusive lock and SQLite answers
    # BUSY at once, without the busy handler, when another process (a second
    # CSMS, the CLI) is switching it too: retry until the busy timeout.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            if _primary_code(exc) != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
        else:
            return


def _primary_code(exc: sqlite3.Error) -> int:
    # Extended codes (SQLITE_IOERR_FSYNC...) carry the primary code in the low byte;
    # errors raised by the sqlite3 module itself carry none.
    return (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF


@contextlib.contextmanager
def _write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front, so a busy database waits
    # (busy_timeout) at BEGIN instead of failing halfway through.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _ping(conn: sqlite3.Connection) -> None:
    conn.execute("SELECT 1").fetchone()


def _migrate(conn: sqlite3.Connection) -> list[str]:
    applied: list[str] = []
    with _write_transaction(conn):
        # Read under the write lock: a second process starting now waits, then sees our rows.
        done = _applied_versions(conn)
        for migration in load_migrations("sqlite"):
            if migration.version in done:
                continue
            for statement in _split_statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, _ts(datetime.now(UTC))),
            )
            applied.append(migration.name)
    return applied


def _applied_versions(conn: sqlite3.Connection) -> set[int]:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if exists is None:
        return set()
    return {version for (version,) in conn.execute("SELECT version FROM schema_migrations")}


def _split_statements(script: str) -> Iterator[str]:
    """The statements of ``script``: ``executescript`` would commit our transaction."""
    statement = ""
    for piece in script.split(";"):
        statement += piece + ";"
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""


def _next_transaction_number(conn: sqlite3.Connection) -> int:
    with _write_transaction(conn):
        conn.execute("UPDATE ocpp16_transaction_numbers SET last_value = last_value + 1")
        row = conn.execute("SELECT last_value FROM ocpp16_transaction_numbers").fetchone()
    return int(row[0])


def _begin_connection(conn: sqlite3.Connection, station_id: str) -> tuple[int, list[Presence]]:
    with _write_transaction(conn):
        conn.execute("UPDATE connection_epochs SET last_value = last_value + 1")
        row = conn.execute("SELECT last_value FROM connection_epochs").fetchone()
    others = _all(conn, rows.OPEN_CONNECTIONS, (station_id,), rows.presence)
    return int(row[0]), others


def _outbox_stats(conn: sqlite3.Connection) -> OutboxStats:
    # count(column) skips NULLs; FILTER clauses would need SQLite 3.30.
    pending, delivered = conn.execute(
        "SELECT count(*) - count(delivered_at), count(delivered_at) FROM outbox"
    ).fetchone()
    return OutboxStats(pending, delivered, _oldest_pending(conn))


def _oldest_pending(conn: sqlite3.Connection) -> datetime | None:
    oldest = conn.execute(rows.OLDEST_PENDING).fetchone()
    return None if oldest is None else _dt(oldest[0])


def _one(
    conn: sqlite3.Connection,
    sql: str,
    params: Sequence[Any],
    decode: Decode[T],
) -> T | None:
    row = conn.execute(_sql(sql), params).fetchone()
    return None if row is None else decode(row, TEXT)


def _all(
    conn: sqlite3.Connection,
    sql: str,
    params: Sequence[Any],
    decode: Decode[T],
) -> list[T]:
    return [decode(row, TEXT) for row in conn.execute(_sql(sql), params)]


def _find_station(conn: sqlite3.Connection, station_id: str) -> Station | None:
    return _one(conn, rows.FIND_STATION, (station_id,), rows.station)


# --- the batch ------------------------------------------------------------------


class _AlreadyAnswered(Exception):
    """Some CALLs of the batch were answered before: (station, action) -> answer."""

    def __init__(self, answers: dict[tuple[str, str], dict[str, Any]]) -> None:
        super().__init__(f"{len(answers)} calls answered before")
        self.answers = answers


def _apply_batch(conn: sqlite3.Connection, ops: GroupedOps) -> None:
    """Apply a batch in one transaction, one ``executemany`` per kind, in GroupedOps order;
    answers first, one by one, each telling whether its CALL was answered before."""
    now = datetime.now(UTC)
    with _write_transaction(conn):
        if ops.answers:
            _record_answers(conn, rows.answer_rows(ops.answers, now))
        for sql, batch in _batch_statements(ops, now):
            conn.executemany(sql, batch)
        _apply_ordered(conn, ops, now)


def _record_answers(conn: sqlite3.Connection, answers: list[Row]) -> None:
    """Upsert each answer; one left unchanged was answered before: raise
    _AlreadyAnswered with the stored answers (the transaction rolls back)."""
    answered: dict[tuple[str, str], dict[str, Any]] = {}
    upsert = _sql(rows.CALL_ANSWERED)
    for row in answers:
        if conn.execute(upsert, row).rowcount == 0:
            found = _one(conn, rows.FIND_CALL_ANSWER, row[:2], rows.call_answered)
            assert found is not None  # the upsert just found it
            answered[(row[0], row[1])] = found.answer
    if answered:
        raise _AlreadyAnswered(answered)


def _apply_ordered(conn: sqlite3.Connection, ops: GroupedOps, now: datetime) -> None:
    """The rare ops that go one by one: charging profiles (set and clear in
    order) and commands (an update must find the command in its expected status)."""
    for change in ops.charging_profiles:
        if isinstance(change, ChargingProfileSet):
            p = change.profile
            conn.execute(
                _sql(rows.CHARGING_PROFILE_REPLACED),
                (p.station_id, p.profile_id, p.evse_id, p.purpose, p.stack_level),
            )
            conn.execute(_sql(rows.CHARGING_PROFILE_SET), rows.charging_profile_row(p, now))
        else:
            c = change.criteria
            conn.execute(
                _CHARGING_PROFILES_CLEARED,
                (change.station_id, c.profile_id, c.evse_id, c.purpose, c.stack_level),
            )
    for recorded in ops.commands:
        row = rows.command_row(recorded.command)
        if recorded.expected_status is None:
            conn.execute(_sql(rows.COMMAND_INSERTED), row)
            continue
        expected = CommandStatus(recorded.expected_status).value
        changed = conn.execute(_sql(rows.COMMAND_UPDATED), (*row[2:], row[0], expected)).rowcount
        if changed != 1:
            raise ConflictError(
                f"command {recorded.command.id} is no longer {expected}: another writer moved it on"
            )
    for interval in ops.heartbeat_intervals:
        conn.execute(_sql(rows.HEARTBEAT_INTERVAL_SET), (interval.seconds, interval.station_id))
    for link in ops.connections:
        if isinstance(link, ConnectionOpened):
            conn.execute(_sql(rows.CONNECTION_OPENED), rows.presence_row(link.presence))
            continue
        closed = conn.execute(_sql(rows.CONNECTION_CLOSED), (link.station_id, link.epoch))
        if link.must_exist and closed.rowcount != 1:
            raise ConflictError(f"connection {link.epoch} of {link.station_id!r} is closed already")


def _batch_statements(ops: GroupedOps, now: datetime) -> Iterator[tuple[str, Iterable[Row]]]:
    # The rows' datetimes, dicts, lists and tuples are bound by the adapters below.
    if ops.booted:
        yield _STATION_BOOTED, [rows.booted_row(op) for op in ops.booted]
    if ops.seen:
        yield _STATION_SEEN, [(op.station_id, op.ocpp_version, op.at) for op in ops.seen]
    if ops.started:
        yield _TRANSACTION_STARTED, rows.transaction_rows(ops.started, now)
    if ops.changed:
        yield _TRANSACTION_CHANGED, rows.transaction_rows(ops.changed, now)
    if ops.statuses:
        yield _CONNECTOR_STATUS, rows.connector_rows(ops.statuses)
    if ops.meter_samples:
        yield _METER_READING, rows.reading_rows(ops.meter_samples)
    if ops.notifications:
        yield _STATION_NOTIFIED, rows.notified_rows(ops.notifications)
    if ops.transaction_events:
        yield _TRANSACTION_EVENT, rows.transaction_event_rows(ops.transaction_events, now)
    if ops.device_model:
        yield _DEVICE_MODEL, rows.device_model_rows(ops.device_model)
    if ops.device_model_values:
        yield _DEVICE_MODEL_VALUE, rows.device_model_rows(ops.device_model_values)
    if ops.configuration:
        yield (
            _CONFIGURATION,
            [rows.configuration_row(op, k) for op in ops.configuration for k in op.keys],
        )
    if ops.local_list_versions:
        yield _LOCAL_LIST_VERSION, [(op.version, op.station_id) for op in ops.local_list_versions]
    if ops.reservations:
        yield _RESERVATION, rows.reservation_rows(ops.reservations, now)
    if ops.events:
        yield _EVENT_APPENDED, rows.event_rows(ops.events)


# --- values -------------------------------------------------------------------


def _ts(moment: datetime) -> str:
    """Fixed-width UTC text, so comparing texts compares times.

    A naive datetime is taken as local time, as asyncpg does for PostgreSQL.
    """
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _json(value: Any) -> str:
    # Naive datetimes inside JSON as UTC, as the PostgreSQL adapter's jsonb codec does.
    return orjson.dumps(value, option=orjson.OPT_NAIVE_UTC).decode()


# A row binds datetimes as _ts text and dicts, lists and tuples (JSON columns) as
# JSON text: the sqlite3 module calls these as it binds each value, so the rows
# themselves are the dialect-free tuples of rows.py. Process-wide, as sqlite3's
# adapters are; nothing else in the CSMS binds these types.
sqlite3.register_adapter(datetime, _ts)
for _json_type in (dict, list, tuple):
    sqlite3.register_adapter(_json_type, _json)


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _json_or_none(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _flag(value: int | None) -> bool | None:
    return None if value is None else bool(value)


TEXT = Decoding(timestamp=_dt, json=_json_or_none, flag=_flag)
"""SQLite's values: timestamps and JSON as text, booleans as integers."""

_sql = functools.cache(rows.sqlite_placeholders)
"""Shared SQL text (``$n`` placeholders) as SQLite runs it, rendered once per text."""


# --- statements -------------------------------------------------------------------

# The skipped ranges as a JSON array of [low, high]: few (a batch's seqs are mostly consecutive).
_OUTBOX_PENDING_SKIPPING = f"""{rows.SELECT_OUTBOX} WHERE delivered_at IS NULL AND NOT EXISTS (
    SELECT 1 FROM json_each(?1) AS skip
    WHERE seq BETWEEN json_extract(skip.value, '$[0]') AND json_extract(skip.value, '$[1]')
) ORDER BY seq LIMIT ?2"""  # noqa: S608 - constant SQL text


# SQLite's max() is NULL when an argument is; coalesce keeps the known time.
# Only a registered row is updated: a station deleted while connected is not
# created again by its next write (migration 0009).
_STATION_BOOTED = """
UPDATE stations SET
    ocpp_version = ?2, vendor = ?3, model = ?4, serial_number = ?5, firmware_version = ?6,
    boot_info = ?7, last_boot_at = ?8,
    last_seen_at = max(coalesce(last_seen_at, ?8), ?8)
WHERE id = ?1
"""

_STATION_SEEN = """
UPDATE stations SET
    ocpp_version = ?2,
    last_seen_at = max(coalesce(last_seen_at, ?3), ?3)
WHERE id = ?1
"""

_TRANSACTION_STARTED = """
INSERT INTO transactions (station_id, transaction_id, evse_id, connector_id, id_token,
                          meter_start_wh, meter_stop_wh, energy_wh, started_at, ended_at,
                          stop_reason, charging_state, seq_no, last_meter_wh, anomalies,
                          ocpp_version, updated_at, id_token_status, remote_start_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

# An upsert: a change of a transaction the store lacks still lands.
_TRANSACTION_CHANGED = (
    _TRANSACTION_STARTED
    + """
ON CONFLICT (station_id, transaction_id) DO UPDATE SET
    evse_id = excluded.evse_id, connector_id = excluded.connector_id,
    id_token = excluded.id_token, meter_start_wh = excluded.meter_start_wh,
    meter_stop_wh = excluded.meter_stop_wh, energy_wh = excluded.energy_wh,
    started_at = excluded.started_at, ended_at = excluded.ended_at,
    stop_reason = excluded.stop_reason, charging_state = excluded.charging_state,
    seq_no = excluded.seq_no, last_meter_wh = excluded.last_meter_wh,
    anomalies = excluded.anomalies, ocpp_version = excluded.ocpp_version,
    updated_at = excluded.updated_at, id_token_status = excluded.id_token_status,
    remote_start_id = excluded.remote_start_id
"""
)

_CONNECTOR_STATUS = """
INSERT INTO connectors (station_id, evse_id, connector_id, status, error_code, info,
                        vendor_id, vendor_error_code, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (station_id, evse_id, connector_id) DO UPDATE SET
    status = excluded.status, error_code = excluded.error_code, info = excluded.info,
    vendor_id = excluded.vendor_id, vendor_error_code = excluded.vendor_error_code,
    updated_at = excluded.updated_at
"""

_METER_READING = """
INSERT INTO meter_readings (station_id, transaction_id, evse_id, samples) VALUES (?, ?, ?, ?)
"""

_STATION_NOTIFIED = """
INSERT INTO station_notifications (station_id, action, payload, at) VALUES (?, ?, ?, ?)
"""

_EVENT_APPENDED = """
INSERT INTO outbox (event_id, type, station_id, ocpp_version, occurred_at, recorded_at, data)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""

_MARK_DELIVERED = "UPDATE outbox SET delivered_at = ? WHERE seq = ? AND delivered_at IS NULL"


_TRANSACTION_EVENT = """
INSERT INTO transaction_events (station_id, transaction_id, seq_no, event_type, trigger_reason,
                                occurred_at, offline, recorded_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""

_DEVICE_MODEL_INSERT = """
INSERT INTO device_model (station_id, entry_key, component, component_instance, evse_id,
                          connector_id, variable, variable_instance, attribute_type, value,
                          mutability, characteristics, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (station_id, entry_key) DO UPDATE SET
"""

# A report sets what it says; a Get/SetVariables answer only the value.
_DEVICE_MODEL = (
    _DEVICE_MODEL_INSERT
    + """    value = excluded.value, mutability = excluded.mutability,
    characteristics = excluded.characteristics, updated_at = excluded.updated_at
"""
)


_DEVICE_MODEL_VALUE = (
    _DEVICE_MODEL_INSERT + "    value = excluded.value, updated_at = excluded.updated_at\n"
)

_CONFIGURATION = """
INSERT INTO station_configuration (station_id, key, value, readonly, updated_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (station_id, key) DO UPDATE SET
    value = excluded.value,
    readonly = coalesce(excluded.readonly, station_configuration.readonly),
    updated_at = excluded.updated_at
"""

_LOCAL_LIST_VERSION = "UPDATE stations SET local_list_version = ? WHERE id = ?"

_RESERVATION = """
INSERT INTO reservations (station_id, reservation_id, evse_id, id_token, expires_at, status,
                          updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (station_id, reservation_id) DO UPDATE SET
    evse_id = excluded.evse_id, id_token = excluded.id_token,
    expires_at = excluded.expires_at, status = excluded.status,
    updated_at = excluded.updated_at
"""


_CHARGING_PROFILES_CLEARED = """
DELETE FROM charging_profiles WHERE station_id = ?1
    AND (?2 IS NULL OR profile_id = ?2) AND (?3 IS NULL OR evse_id = ?3)
    AND (?4 IS NULL OR purpose = ?4) AND (?5 IS NULL OR stack_level = ?5)
"""
