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
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from csms.adapters.storage.batching import GroupCommitter, GroupedOps, group_ops, record_committed
from csms.adapters.storage.migrations import load_migrations
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
from csms.core.errors import ConflictError, StorageError, StorageUnavailableError
from csms.core.events import Event
from csms.core.ports import (
    UNCHANGED,
    ChargingProfileSet,
    CommandFilter,
    OutboxBacklog,
    OutboxRow,
    OutboxStats,
    PoolStats,
    StationNotified,
    TransactionFilter,
    WriteOp,
)
from csms.telemetry import metrics

if sys.platform != "win32":
    import fcntl

T = TypeVar("T")
Row = tuple[Any, ...]
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


class SqliteStorage:
    """The storage port on a SQLite file; open it with ``await SqliteStorage.open(path)``."""

    dialect: str = "sqlite"

    def __init__(self, path: str, executor: ThreadPoolExecutor, conn: sqlite3.Connection) -> None:
        self._path = path
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

    async def close(self) -> None:
        """Flush pending commits, then close the connection and its thread."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._committer.close()
        finally:
            await self.outbox_resign()
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

    async def commit(self, unit: Sequence[WriteOp]) -> None:
        if unit:
            await self._committer.submit(unit)

    async def _apply_batch(self, units: Sequence[Unit]) -> None:
        ops = group_ops(units)
        if await self._call("commit", lambda conn: _apply_batch(conn, ops)):
            for listener in self._outbox_listeners:
                listener()
        record_committed(ops)

    def pool_stats(self) -> PoolStats | None:
        return None

    # --- registry ----------------------------------------------------------

    async def find_station(self, station_id: str) -> Station | None:
        return await self._call("find station", lambda conn: _find_station(conn, station_id))

    async def find_station_ignoring_case(self, station_id: str) -> Station | None:
        # lower() folds ASCII only, as PostgreSQL's does in the C locale; ids are ASCII.
        sql = f"{_SELECT_STATIONS} WHERE lower(id) = lower(?) LIMIT 2"
        found = await self._call(
            "find station ignoring case", lambda conn: _all(conn, sql, (station_id,), _station)
        )
        return found[0] if len(found) == 1 else None

    async def register_station(
        self,
        station_id: str,
        *,
        password_hash: str | None = UNCHANGED,
        security_profile: int = UNCHANGED,
        at: datetime,
    ) -> Station:
        def register(conn: sqlite3.Connection) -> Station:
            keep_password = password_hash is UNCHANGED
            keep_profile = security_profile is UNCHANGED
            params = (
                station_id,
                None if keep_password else password_hash,
                1 if keep_profile else security_profile,
                _ts(at),
                keep_password,
                keep_profile,
            )
            with _write_transaction(conn):
                conn.execute(_REGISTER_STATION, params)
                station = _find_station(conn, station_id)
            assert station is not None  # just upserted in this transaction
            return station

        return await self._call(f"register station {station_id!r}", register)

    async def rotate_station_password(self, station_id: str, password_hash: str) -> bool:
        sql = (
            "UPDATE stations SET previous_password_hash = coalesce(previous_password_hash,"
            " password_hash), password_hash = ? WHERE id = ?"
        )
        params = (password_hash, station_id)

        def rotate(conn: sqlite3.Connection) -> bool:
            with _write_transaction(conn):
                return conn.execute(sql, params).rowcount == 1

        return await self._call("rotate station password", rotate)

    async def set_boot_status(self, station_id: str, status: str) -> bool:
        sql = "UPDATE stations SET boot_status = ? WHERE id = ?"

        def update(conn: sqlite3.Connection) -> bool:
            with _write_transaction(conn):
                return conn.execute(sql, (status, station_id)).rowcount == 1

        return await self._call("set boot status", update)

    async def retire_previous_password(self, station_id: str) -> None:
        sql = "UPDATE stations SET previous_password_hash = NULL WHERE id = ?"

        def retire(conn: sqlite3.Connection) -> None:
            with _write_transaction(conn):
                conn.execute(sql, (station_id,))

        await self._call("retire previous password", retire)

    async def list_stations(self) -> list[Station]:
        sql = f"{_SELECT_STATIONS} ORDER BY id"
        return await self._call("list stations", lambda conn: _all(conn, sql, (), _station))

    async def delete_station(self, station_id: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            with _write_transaction(conn):
                for table in _STATION_STATE_TABLES:
                    sql = f"DELETE FROM {table} WHERE station_id = ?"  # noqa: S608 - fixed names
                    conn.execute(sql, (station_id,))
                sql = "DELETE FROM stations WHERE id = ?"
                return conn.execute(sql, (station_id,)).rowcount == 1

        return await self._call(f"delete station {station_id!r}", delete)

    async def find_local_list_version(self, station_id: str) -> int | None:
        sql = "SELECT local_list_version FROM stations WHERE id = ?"
        return await self._call(
            "find local list version", lambda c: _one(c, sql, (station_id,), _first)
        )

    async def find_id_token(self, id_token: str) -> IdToken | None:
        sql = f"{_SELECT_ID_TOKENS} WHERE id_token = ?"
        return await self._call("find id token", lambda c: _one(c, sql, (id_token,), _id_token))

    async def put_id_token(self, token: IdToken) -> IdToken:
        row = (
            token.id_token,
            AuthorizationStatus(token.status).value,
            IdTokenType(token.type).value,
            _ts_or_none(token.expires_at),
            token.group_id,
            _ts(token.updated_at or datetime.now(UTC)),
        )
        select = f"{_SELECT_ID_TOKENS} WHERE id_token = ?"

        def put(conn: sqlite3.Connection) -> IdToken:
            with _write_transaction(conn):
                conn.execute(_PUT_ID_TOKEN, row)
                stored = _one(conn, select, (token.id_token,), _id_token)
            assert stored is not None  # just upserted in this transaction
            return stored

        return await self._call(f"store id token {token.id_token!r}", put)

    async def list_id_tokens(self) -> list[IdToken]:
        sql = f"{_SELECT_ID_TOKENS} ORDER BY id_token"
        return await self._call("list id tokens", lambda conn: _all(conn, sql, (), _id_token))

    async def delete_id_token(self, id_token: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            with _write_transaction(conn):
                sql = "DELETE FROM id_tokens WHERE id_token = ?"
                return conn.execute(sql, (id_token,)).rowcount == 1

        return await self._call("delete id token", delete)

    # --- charging state ----------------------------------------------------

    async def list_connectors(self, station_id: str) -> list[ConnectorStatus]:
        sql = f"{_SELECT_CONNECTORS} WHERE station_id = ? ORDER BY evse_id, connector_id"
        return await self._call(
            "list connectors", lambda c: _all(c, sql, (station_id,), _connector)
        )

    async def find_transaction(self, station_id: str, transaction_id: str) -> Transaction | None:
        sql = f"{_SELECT_TRANSACTIONS} WHERE station_id = ? AND transaction_id = ?"
        params = (station_id, transaction_id)
        return await self._call("find transaction", lambda c: _one(c, sql, params, _transaction))

    async def find_transaction_by_ocpp16_id(self, transaction_id: int) -> Transaction | None:
        # The literal '1.6' matches the partial index transactions_ocpp16_id.
        sql = (
            f"{_SELECT_TRANSACTIONS}"
            " WHERE transaction_id = ? AND ocpp_version = '1.6' ORDER BY id DESC LIMIT 1"
        )
        params = (str(transaction_id),)
        return await self._call("find transaction", lambda c: _one(c, sql, params, _transaction))

    async def find_open_transaction_like(
        self, station_id: str, evse_id: int, id_token: str, started_at: datetime
    ) -> Transaction | None:
        sql = (
            f"{_SELECT_TRANSACTIONS}"
            " WHERE station_id = ? AND evse_id = ? AND ended_at IS NULL"
            " AND id_token = ? AND started_at = ? ORDER BY id DESC LIMIT 1"
        )
        params = (station_id, evse_id, id_token, _ts(started_at))
        return await self._call("find transaction", lambda c: _one(c, sql, params, _transaction))

    async def next_transaction_number(self) -> int:
        return await self._call("allocate a 1.6 transaction id", _next_transaction_number)

    async def list_transactions(self, where: TransactionFilter) -> list[Transaction]:
        sql, params = _transactions_query(where)
        return await self._call("list transactions", lambda c: _all(c, sql, params, _transaction))

    async def count_active_transactions(self) -> int:
        sql = "SELECT count(*) FROM transactions WHERE ended_at IS NULL"
        count = await self._call("count active transactions", lambda c: _one(c, sql, (), _first))
        return int(count or 0)

    async def list_meter_samples(self, station_id: str, transaction_id: str) -> list[MeterSample]:
        sql = (
            "SELECT samples FROM meter_readings"
            " WHERE station_id = ? AND transaction_id = ? ORDER BY id"
        )
        params = (station_id, transaction_id)
        readings = await self._call("list meter samples", lambda c: _all(c, sql, params, _first))
        return [_sample(sample) for samples in readings for sample in orjson.loads(samples)]

    async def list_transaction_seq_nos(self, station_id: str, transaction_id: str) -> set[int]:
        sql = "SELECT seq_no FROM transaction_events WHERE station_id = ? AND transaction_id = ?"
        params = (station_id, transaction_id)
        rows = await self._call("list transaction seqNos", lambda c: _all(c, sql, params, _first))
        return set(rows)

    async def list_device_model(self, station_id: str) -> list[DeviceModelEntry]:
        sql = f"{_SELECT_DEVICE_MODEL} WHERE station_id = ? ORDER BY entry_key"
        params = (station_id,)
        return await self._call("list device model", lambda c: _all(c, sql, params, _entry))

    async def list_notifications(
        self, station_id: str, action: str | None = None
    ) -> list[StationNotified]:
        sql = (
            "SELECT station_id, action, payload, at FROM station_notifications WHERE station_id = ?"
        )
        params: tuple[str, ...] = (station_id,)
        if action is not None:
            sql += " AND action = ?"
            params += (action,)
        sql += " ORDER BY id"
        return await self._call("list notifications", lambda c: _all(c, sql, params, _notified))

    async def list_configuration(self, station_id: str) -> list[ConfigurationKey]:
        sql = (
            "SELECT key, value, readonly, updated_at FROM station_configuration"
            " WHERE station_id = ? ORDER BY key"
        )
        return await self._call(
            "list configuration", lambda c: _all(c, sql, (station_id,), _configuration_key)
        )

    async def list_reservations(self, station_id: str) -> list[Reservation]:
        sql = f"{_SELECT_RESERVATIONS} WHERE station_id = ? ORDER BY reservation_id"
        return await self._call(
            "list reservations", lambda c: _all(c, sql, (station_id,), _reservation)
        )

    async def list_charging_profiles(self, station_id: str) -> list[ChargingProfile]:
        sql = f"{_SELECT_CHARGING_PROFILES} WHERE station_id = ? ORDER BY evse_id, profile_id"
        return await self._call(
            "list charging profiles", lambda c: _all(c, sql, (station_id,), _charging_profile)
        )

    # --- commands ------------------------------------------------------------

    async def find_command(self, command_id: str) -> Command | None:
        sql = f"{_SELECT_COMMANDS} WHERE id = ?"
        return await self._call("find command", lambda c: _one(c, sql, (command_id,), _command))

    async def list_commands(self, where: CommandFilter) -> list[Command]:
        clauses: list[str] = []
        params: list[Any] = []
        if where.station_id is not None:
            clauses.append("station_id = ?")
            params.append(where.station_id)
        if where.status is not None:
            clauses.append("status = ?")
            params.append(CommandStatus(where.status).value)
        condition = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"{_SELECT_COMMANDS}{condition} ORDER BY created_at DESC, id LIMIT ? OFFSET ?"
        params += [where.limit, where.offset]
        return await self._call("list commands", lambda c: _all(c, sql, params, _command))

    async def list_queued_commands(self, station_id: str, limit: int = 100) -> list[Command]:
        sql = (
            f"{_SELECT_COMMANDS} WHERE station_id = ? AND status = 'queued'"
            " ORDER BY created_at, id LIMIT ?"
        )
        params = (station_id, limit)
        return await self._call("list queued commands", lambda c: _all(c, sql, params, _command))

    async def list_expired_commands(self, now: datetime, limit: int = 100) -> list[Command]:
        sql = (
            f"{_SELECT_COMMANDS} WHERE status = 'queued' AND expires_at <= ?"
            " ORDER BY expires_at LIMIT ?"
        )
        params = (_ts(now), limit)
        return await self._call("list expired commands", lambda c: _all(c, sql, params, _command))

    async def list_stations_with_queued_commands(self) -> list[str]:
        sql = "SELECT DISTINCT station_id FROM commands WHERE status = 'queued' ORDER BY station_id"
        return await self._call(
            "list stations with queued commands", lambda c: _all(c, sql, (), _first)
        )

    # --- outbox ------------------------------------------------------------

    async def outbox_pending(
        self, limit: int, skip: Sequence[tuple[int, int]] = ()
    ) -> list[OutboxRow]:
        params: list[object] = [limit]
        sql = _OUTBOX_PENDING
        if skip:
            sql, params = _OUTBOX_PENDING_SKIPPING, [orjson.dumps(list(skip)).decode(), limit]
        return await self._call("read the outbox", lambda c: _all(c, sql, params, _outbox_row))

    async def outbox_mark_delivered(self, seqs: Sequence[int], at: datetime) -> None:
        def mark(conn: sqlite3.Connection) -> None:
            at_text = _ts(at)
            with _write_transaction(conn):
                conn.executemany(_MARK_DELIVERED, ((at_text, seq) for seq in seqs))

        if seqs:
            await self._call("mark outbox rows delivered", mark)

    async def outbox_prune(self, delivered_before: datetime, limit: int = 10_000) -> int:
        params = (_ts(delivered_before), limit)

        def prune(conn: sqlite3.Connection) -> int:
            return conn.execute(_PRUNE_OUTBOX, params).rowcount

        return await self._call("prune the outbox", prune)

    async def outbox_backlog(self, cap: int = 1_000_000) -> OutboxBacklog:
        def backlog(conn: sqlite3.Connection) -> OutboxBacklog:
            (pending,) = conn.execute(_COUNT_PENDING, (cap,)).fetchone()
            oldest = conn.execute(_OLDEST_PENDING).fetchone()
            return OutboxBacklog(pending, _dt(oldest[0]) if oldest else None)

        return await self._call("measure the outbox backlog", backlog)

    async def outbox_stats(self) -> OutboxStats:
        return await self._call("count the outbox", _outbox_stats)

    async def outbox_list(self, limit: int, pending_only: bool) -> list[OutboxRow]:
        pending = " WHERE delivered_at IS NULL" if pending_only else ""
        sql = f"{_SELECT_OUTBOX}{pending} ORDER BY seq DESC LIMIT ?"
        return await self._call("list the outbox", lambda c: _all(c, sql, (limit,), _outbox_row))

    def outbox_subscribe(self, listener: Callable[[], None]) -> None:
        self._outbox_listeners.append(listener)

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


def _outbox_stats(conn: sqlite3.Connection) -> OutboxStats:
    # count(column) skips NULLs; FILTER clauses would need SQLite 3.30.
    pending, delivered = conn.execute(
        "SELECT count(*) - count(delivered_at), count(delivered_at) FROM outbox"
    ).fetchone()
    oldest = conn.execute(
        "SELECT recorded_at FROM outbox WHERE delivered_at IS NULL ORDER BY seq LIMIT 1"
    ).fetchone()
    return OutboxStats(pending, delivered, _dt(oldest[0]) if oldest else None)


def _one(
    conn: sqlite3.Connection, sql: str, params: Sequence[Any], decode: Callable[[Row], T]
) -> T | None:
    row = conn.execute(sql, params).fetchone()
    return None if row is None else decode(row)


def _all(
    conn: sqlite3.Connection, sql: str, params: Sequence[Any], decode: Callable[[Row], T]
) -> list[T]:
    return [decode(row) for row in conn.execute(sql, params)]


def _find_station(conn: sqlite3.Connection, station_id: str) -> Station | None:
    sql = f"{_SELECT_STATIONS} WHERE id = ?"
    return _one(conn, sql, (station_id,), _station)


def _transactions_query(where: TransactionFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for clause, value in (
        ("station_id = ?", where.station_id),
        ("transaction_id = ?", where.transaction_id),
        ("id_token = ?", where.id_token),
        ("started_at >= ?", _ts_or_none(where.started_after)),
        ("started_at < ?", _ts_or_none(where.started_before)),
    ):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    if where.active is not None:
        clauses.append("ended_at IS NULL" if where.active else "ended_at IS NOT NULL")
    condition = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = f"{_SELECT_TRANSACTIONS}{condition} ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?"
    return sql, [*params, where.limit, where.offset]


# --- the batch ------------------------------------------------------------------


def _apply_batch(conn: sqlite3.Connection, ops: GroupedOps) -> bool:
    """Apply a batch in one transaction, one ``executemany`` per kind, in GroupedOps order.

    Returns whether it appended outbox rows.
    """
    now = _ts(datetime.now(UTC))
    with _write_transaction(conn):
        for sql, rows in _batch_statements(ops, now):
            conn.executemany(sql, rows)
        _apply_ordered(conn, ops)
    return bool(ops.events)


def _apply_ordered(conn: sqlite3.Connection, ops: GroupedOps) -> None:
    """The rare ops that go one by one: charging profiles (set and clear in
    order) and commands (an update must find the command in its expected status)."""
    for change in ops.charging_profiles:
        if isinstance(change, ChargingProfileSet):
            p = change.profile
            conn.execute(
                _CHARGING_PROFILE_REPLACED,
                (p.station_id, p.profile_id, p.evse_id, p.purpose, p.stack_level),
            )
            conn.execute(_CHARGING_PROFILE_SET, _charging_profile_row(p))
        else:
            c = change.criteria
            conn.execute(
                _CHARGING_PROFILES_CLEARED,
                (change.station_id, c.profile_id, c.evse_id, c.purpose, c.stack_level),
            )
    for recorded in ops.commands:
        row = _command_row(recorded.command)
        if recorded.expected_status is None:
            conn.execute(_COMMAND_INSERTED, row)
            continue
        expected = CommandStatus(recorded.expected_status).value
        changed = conn.execute(_COMMAND_UPDATED, (*row[2:], row[0], expected)).rowcount
        if changed != 1:
            raise ConflictError(
                f"command {recorded.command.id} is no longer {expected}: another writer moved it on"
            )


def _batch_statements(ops: GroupedOps, now: str) -> Iterator[tuple[str, Iterable[Row]]]:
    # Rows are generators: executemany consumes them, no intermediate lists.
    if ops.booted:
        yield (
            _STATION_BOOTED,
            (
                (
                    op.station_id,
                    op.ocpp_version,
                    op.vendor,
                    op.model,
                    op.serial_number,
                    op.firmware_version,
                    _json(op.boot_info),
                    _ts(op.at),
                )
                for op in ops.booted
            ),
        )
    if ops.seen:
        yield _STATION_SEEN, ((op.station_id, op.ocpp_version, _ts(op.at)) for op in ops.seen)
    if ops.started:
        yield _TRANSACTION_STARTED, (_transaction_row(op.transaction, now) for op in ops.started)
    if ops.changed:
        yield _TRANSACTION_CHANGED, (_transaction_row(op.transaction, now) for op in ops.changed)
    if ops.statuses:
        yield _CONNECTOR_STATUS, (_connector_row(op.status) for op in ops.statuses)
    if ops.meter_samples:
        yield (
            _METER_READING,
            (
                (op.station_id, op.transaction_id, op.evse_id, _samples_json(op.samples))
                for op in ops.meter_samples
                if op.samples
            ),
        )
    if ops.notifications:
        yield (
            _STATION_NOTIFIED,
            ((op.station_id, op.action, _json(op.payload), _ts(op.at)) for op in ops.notifications),
        )
    if ops.transaction_events:
        yield (
            _TRANSACTION_EVENT,
            (
                (
                    op.station_id,
                    op.transaction_id,
                    op.seq_no,
                    op.event_type,
                    op.trigger_reason,
                    _ts(op.occurred_at),
                    int(op.offline),
                    now,
                )
                for op in ops.transaction_events
            ),
        )
    if ops.device_model:
        yield (
            _DEVICE_MODEL,
            (
                _device_model_row(op.station_id, e, op.at)
                for op in ops.device_model
                for e in op.entries
            ),
        )
    if ops.device_model_values:
        yield (
            _DEVICE_MODEL_VALUE,
            (
                _device_model_row(op.station_id, e, op.at)
                for op in ops.device_model_values
                for e in op.entries
            ),
        )
    if ops.configuration:
        yield (
            _CONFIGURATION,
            (
                (
                    op.station_id,
                    k.key,
                    k.value,
                    None if k.readonly is None else int(k.readonly),
                    _ts(op.at),
                )
                for op in ops.configuration
                for k in op.keys
            ),
        )
    if ops.local_list_versions:
        yield (
            _LOCAL_LIST_VERSION,
            ((op.version, op.station_id) for op in ops.local_list_versions),
        )
    if ops.reservations:
        yield _RESERVATION, (_reservation_row(op.reservation, now) for op in ops.reservations)
    if ops.events:
        yield _EVENT_APPENDED, (_event_row(op.event) for op in ops.events)


def _device_model_row(station_id: str, e: DeviceModelEntry, at: datetime) -> Row:
    return (
        station_id,
        e.key,
        e.component,
        e.component_instance,
        e.evse_id,
        e.connector_id,
        e.variable,
        e.variable_instance,
        e.attribute_type,
        e.value,
        e.mutability,
        _json(e.characteristics),
        _ts(at),
    )


def _reservation_row(r: Reservation, now: str) -> Row:
    return (
        r.station_id,
        r.reservation_id,
        r.evse_id,
        r.id_token,
        _ts(r.expires_at),
        r.status,
        now if r.updated_at is None else _ts(r.updated_at),
    )


def _charging_profile_row(p: ChargingProfile) -> Row:
    updated_at = _ts(p.updated_at or datetime.now(UTC))
    return (
        p.station_id, p.profile_id, p.evse_id, p.stack_level, p.purpose, _json(p.profile),
        updated_at,
    )  # fmt: skip


def _command_row(c: Command) -> Row:
    """In the column order of _COMMAND_INSERTED; _COMMAND_UPDATED takes row[2:] + (id, status)."""
    return (
        c.id,
        c.station_id,
        c.name,
        c.action,
        c.ocpp_version,
        _json(c.request),
        None if c.payload is None else _json(c.payload),
        CommandStatus(c.status).value,
        None if c.response is None else _json(c.response),
        None if c.error is None else _json(c.error),
        c.source,
        _ts(c.created_at),
        _ts_or_none(c.expires_at),
        _ts_or_none(c.sent_at),
        _ts_or_none(c.completed_at),
    )


def _transaction_row(t: Transaction, now: str) -> Row:
    return (
        t.station_id,
        t.transaction_id,
        t.evse_id,
        t.connector_id,
        t.id_token,
        t.meter_start_wh,
        t.meter_stop_wh,
        t.energy_wh,
        _ts(t.started_at),
        _ts_or_none(t.ended_at),
        t.stop_reason,
        t.charging_state,
        t.seq_no,
        t.last_meter_wh,
        _json(t.anomalies),
        t.ocpp_version,
        now if t.updated_at is None else _ts(t.updated_at),
    )


def _connector_row(s: ConnectorStatus) -> Row:
    return (
        s.station_id,
        s.evse_id,
        s.connector_id,
        s.status,
        s.error_code,
        s.info,
        s.vendor_id,
        s.vendor_error_code,
        _ts(s.updated_at),
    )


def _event_row(e: Event) -> Row:
    return (
        e.event_id,
        e.type,
        e.station_id,
        e.ocpp_version,
        _ts(e.occurred_at),
        _ts(e.recorded_at),
        _json(e.data),
    )


# --- values -------------------------------------------------------------------


def _ts(moment: datetime) -> str:
    """Fixed-width UTC text, so comparing texts compares times.

    A naive datetime is taken as local time, as asyncpg does for PostgreSQL.
    """
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _ts_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else _ts(moment)


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _dt_required(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


# --- rows -> domain -------------------------------------------------------------

_SELECT_STATIONS = (
    "SELECT id, password_hash, security_profile, ocpp_version, vendor, model, serial_number,"
    " firmware_version, boot_info, registered_at, last_boot_at, last_seen_at,"
    " previous_password_hash, boot_status FROM stations"
)
_SELECT_ID_TOKENS = "SELECT id_token, status, type, expires_at, group_id, updated_at FROM id_tokens"
_SELECT_CONNECTORS = (
    "SELECT station_id, evse_id, connector_id, status, error_code, info, vendor_id,"
    " vendor_error_code, updated_at FROM connectors"
)
# In the order of Transaction's fields.
_SELECT_TRANSACTIONS = (
    "SELECT station_id, transaction_id, evse_id, connector_id, id_token, meter_start_wh,"
    " started_at, ocpp_version, meter_stop_wh, energy_wh, ended_at, stop_reason,"
    " charging_state, seq_no, last_meter_wh, anomalies, updated_at FROM transactions"
)
_SELECT_OUTBOX = (
    "SELECT seq, event_id, type, station_id, ocpp_version, occurred_at, recorded_at, data,"
    " delivered_at FROM outbox"
)
_OUTBOX_PENDING = f"{_SELECT_OUTBOX} WHERE delivered_at IS NULL ORDER BY seq LIMIT ?"
# The skipped ranges as a JSON array of [low, high]: few (a batch's seqs are mostly consecutive).
_OUTBOX_PENDING_SKIPPING = f"""{_SELECT_OUTBOX} WHERE delivered_at IS NULL AND NOT EXISTS (
    SELECT 1 FROM json_each(?) AS skip
    WHERE seq BETWEEN json_extract(skip.value, '$[0]') AND json_extract(skip.value, '$[1]')
) ORDER BY seq LIMIT ?"""  # noqa: S608 - constant SQL text


def _station(r: Row) -> Station:
    boot_info = orjson.loads(r[8])
    registered_at, last_boot_at, last_seen_at = map(_dt, r[9:12])
    return Station(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        r[5],
        r[6],
        r[7],
        boot_info,
        registered_at,
        last_boot_at,
        last_seen_at,
        r[12],
        r[13],
    )


def _id_token(r: Row) -> IdToken:
    return IdToken(r[0], AuthorizationStatus(r[1]), IdTokenType(r[2]), _dt(r[3]), r[4], _dt(r[5]))


def _connector(r: Row) -> ConnectorStatus:
    return ConnectorStatus(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], _dt_required(r[8]))


def _transaction(r: Row) -> Transaction:
    return Transaction(
        station_id=r[0],
        transaction_id=r[1],
        evse_id=r[2],
        connector_id=r[3],
        id_token=r[4],
        meter_start_wh=r[5],
        started_at=_dt_required(r[6]),
        ocpp_version=r[7],
        meter_stop_wh=r[8],
        energy_wh=r[9],
        ended_at=_dt(r[10]),
        stop_reason=r[11],
        charging_state=r[12],
        seq_no=r[13],
        last_meter_wh=r[14],
        anomalies=tuple(orjson.loads(r[15])),
        updated_at=_dt(r[16]),
    )


def _samples_json(samples: Sequence[MeterSample]) -> str:
    """A meter_readings row's samples, in the order of migration 0007."""
    return _json(
        [
            (_ts(s.timestamp), s.measurand, s.value, s.unit, s.phase, s.context, s.location)
            for s in samples
        ]
    )


def _sample(s: list[Any]) -> MeterSample:
    return MeterSample(_dt_required(s[0]), s[1], float(s[2]), s[3], s[4], s[5], s[6])


def _first(r: Row) -> Any:
    return r[0]


def _entry(r: Row) -> DeviceModelEntry:
    return DeviceModelEntry(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], orjson.loads(r[9])
    )


def _configuration_key(r: Row) -> ConfigurationKey:
    return ConfigurationKey(r[0], r[1], None if r[2] is None else bool(r[2]), _dt(r[3]))


def _reservation(r: Row) -> Reservation:
    return Reservation(r[0], r[1], r[2], r[3], _dt_required(r[4]), r[5], _dt(r[6]))


def _charging_profile(r: Row) -> ChargingProfile:
    return ChargingProfile(r[0], r[1], r[2], r[3], r[4], orjson.loads(r[5]), _dt(r[6]))


def _json_or_none(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _command(r: Row) -> Command:
    return Command(
        id=r[0],
        station_id=r[1],
        name=r[2],
        action=r[3],
        ocpp_version=r[4],
        request=orjson.loads(r[5]),
        status=CommandStatus(r[6]),
        source=r[7],
        created_at=_dt_required(r[8]),
        payload=_json_or_none(r[9]),
        response=_json_or_none(r[10]),
        error=_json_or_none(r[11]),
        expires_at=_dt(r[12]),
        sent_at=_dt(r[13]),
        completed_at=_dt(r[14]),
    )


def _notified(r: Row) -> StationNotified:
    return StationNotified(r[0], r[1], orjson.loads(r[2]), _dt_required(r[3]))


def _outbox_row(r: Row) -> OutboxRow:
    event = Event(
        r[1], r[2], r[3], r[4], _dt_required(r[5]), _dt_required(r[6]), orjson.loads(r[7])
    )
    return OutboxRow(r[0], event, _dt(r[8]))


# --- statements -------------------------------------------------------------------

_REGISTER_STATION = """
INSERT INTO stations (id, password_hash, security_profile, registered_at) VALUES (?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    password_hash = CASE WHEN ? THEN password_hash ELSE excluded.password_hash END,
    security_profile = CASE WHEN ? THEN security_profile ELSE excluded.security_profile END,
    registered_at = coalesce(registered_at, excluded.registered_at)
"""

_PUT_ID_TOKEN = """
INSERT INTO id_tokens (id_token, status, type, expires_at, group_id, updated_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (id_token) DO UPDATE SET
    status = excluded.status, type = excluded.type, expires_at = excluded.expires_at,
    group_id = excluded.group_id, updated_at = excluded.updated_at
"""  # noqa: S105 - SQL text, not a secret

# SQLite's max() is NULL when an argument is; coalesce keeps the known time.
_STATION_BOOTED = """
INSERT INTO stations (id, ocpp_version, vendor, model, serial_number, firmware_version,
                      boot_info, last_boot_at, last_seen_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
ON CONFLICT (id) DO UPDATE SET
    ocpp_version = excluded.ocpp_version, vendor = excluded.vendor, model = excluded.model,
    serial_number = excluded.serial_number, firmware_version = excluded.firmware_version,
    boot_info = excluded.boot_info, last_boot_at = excluded.last_boot_at,
    last_seen_at = max(coalesce(last_seen_at, excluded.last_seen_at), excluded.last_seen_at)
"""

_STATION_SEEN = """
INSERT INTO stations (id, ocpp_version, last_seen_at) VALUES (?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    ocpp_version = excluded.ocpp_version,
    last_seen_at = max(coalesce(last_seen_at, excluded.last_seen_at), excluded.last_seen_at)
"""

_TRANSACTION_STARTED = """
INSERT INTO transactions (station_id, transaction_id, evse_id, connector_id, id_token,
                          meter_start_wh, meter_stop_wh, energy_wh, started_at, ended_at,
                          stop_reason, charging_state, seq_no, last_meter_wh, anomalies,
                          ocpp_version, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
    updated_at = excluded.updated_at
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

# Both conditions match the partial index outbox_delivered_at; LIMIT bounds the statement.
_PRUNE_OUTBOX = """
DELETE FROM outbox WHERE seq IN (
    SELECT seq FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ? LIMIT ?
)
"""

# Only pending rows are read (the partial index outbox_pending), never the history.
_COUNT_PENDING = "SELECT count(*) FROM (SELECT 1 FROM outbox WHERE delivered_at IS NULL LIMIT ?)"
_OLDEST_PENDING = "SELECT recorded_at FROM outbox WHERE delivered_at IS NULL ORDER BY seq LIMIT 1"

_TRANSACTION_EVENT = """
INSERT INTO transaction_events (station_id, transaction_id, seq_no, event_type, trigger_reason,
                                occurred_at, offline, recorded_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""

_DEVICE_MODEL = """
INSERT INTO device_model (station_id, entry_key, component, component_instance, evse_id,
                          connector_id, variable, variable_instance, attribute_type, value,
                          mutability, characteristics, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (station_id, entry_key) DO UPDATE SET
    value = excluded.value,
    mutability = excluded.mutability,
    characteristics = excluded.characteristics,
    updated_at = excluded.updated_at
"""

_SELECT_DEVICE_MODEL = """
SELECT component, component_instance, evse_id, connector_id, variable, variable_instance,
       attribute_type, value, mutability, characteristics
FROM device_model
"""

_DEVICE_MODEL_VALUE = """
INSERT INTO device_model (station_id, entry_key, component, component_instance, evse_id,
                          connector_id, variable, variable_instance, attribute_type, value,
                          mutability, characteristics, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (station_id, entry_key) DO UPDATE SET
    value = excluded.value,
    updated_at = excluded.updated_at
"""

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

# A new profile replaces the one with its id, or with its EVSE, purpose and stack level.
_CHARGING_PROFILE_REPLACED = """
DELETE FROM charging_profiles WHERE station_id = ?1
    AND (profile_id = ?2 OR (evse_id = ?3 AND purpose = ?4 AND stack_level = ?5))
"""

_CHARGING_PROFILE_SET = """
INSERT INTO charging_profiles (station_id, profile_id, evse_id, stack_level, purpose, profile,
                               updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""

_CHARGING_PROFILES_CLEARED = """
DELETE FROM charging_profiles WHERE station_id = ?1
    AND (?2 IS NULL OR profile_id = ?2) AND (?3 IS NULL OR evse_id = ?3)
    AND (?4 IS NULL OR purpose = ?4) AND (?5 IS NULL OR stack_level = ?5)
"""

_COMMAND_INSERTED = """
INSERT INTO commands (id, station_id, name, action, ocpp_version, request, payload, status,
                      response, error, source, created_at, expires_at, sent_at, completed_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

# station_id and id never change; the WHERE makes the update conditional on the status.
_COMMAND_UPDATED = """
UPDATE commands SET name = ?, action = ?, ocpp_version = ?, request = ?, payload = ?,
    status = ?, response = ?, error = ?, source = ?, created_at = ?, expires_at = ?,
    sent_at = ?, completed_at = ?
WHERE id = ? AND status = ?
"""

# In the order of Command's fields.
_SELECT_COMMANDS = (
    "SELECT id, station_id, name, action, ocpp_version, request, status, source, created_at,"
    " payload, response, error, expires_at, sent_at, completed_at FROM commands"
)
_SELECT_RESERVATIONS = (
    "SELECT station_id, reservation_id, evse_id, id_token, expires_at, status, updated_at"
    " FROM reservations"
)
_SELECT_CHARGING_PROFILES = (
    "SELECT station_id, evse_id, profile_id, stack_level, purpose, profile, updated_at"
    " FROM charging_profiles"
)

# What a station's deletion removes besides its row: its current state, not its history.
_STATION_STATE_TABLES = (
    "connectors",
    "station_configuration",
    "device_model",
    "reservations",
    "charging_profiles",
)
