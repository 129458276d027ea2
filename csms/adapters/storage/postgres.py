"""The PostgreSQL adapter: an ``asyncpg`` pool, JSON columns as jsonb via orjson.

Batches are group-committed like SQLite's, a batch in one statement,
``csms_apply_batch`` (migration 0008, ADR 0007; with charging profiles or
commands, which go one by one, in one transaction with them), up to
COMMITS_IN_FLIGHT at once (ADR 0006). asyncpg's errors are translated at this
boundary; connections are released by ``pool.acquire()``'s context, which
shields the release from cancellation.

The outbox relay role is a session advisory lock held on a dedicated
connection (outside the pool): PostgreSQL drops it when that connection
ends, also when the process is killed. TCP keepalives on that session let
the server notice a vanished holder within about half a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeAlias, TypeVar

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from csms.adapters.storage import rows
from csms.adapters.storage.batching import (
    OUTAGE_FIRST_RETRY,
    OUTAGE_RETRY_CAP,
    GroupCommitter,
    GroupedOps,
    LookupBatcher,
    group_ops,
    refuse_answered,
)
from csms.adapters.storage.migrations import load_migrations
from csms.adapters.storage.rows import NATIVE, Decode, Row
from csms.adapters.storage.shared import SqlStorage
from csms.adapters.storage.urls import mask_password
from csms.core.domain import CommandStatus, IdToken, Station
from csms.core.errors import (
    ConfigurationError,
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

T = TypeVar("T")
R = TypeVar("R")
Unit = Sequence[WriteOp]

CONNECT_TIMEOUT_S = 10.0
# No statement of ours takes seconds; one that does has lost its server.
COMMAND_TIMEOUT_S = 10.0
MIGRATION_TIMEOUT_S = 3600.0
PING_TIMEOUT_S = 2.0
LOOKUP_TIMEOUT_S = 5.0
# Group-commit batches in flight at once, each on its own pooled connection, so
# the next batch is built and sent while PostgreSQL commits the previous ones
# (ADR 0006; 2 and 4 measured alike, docs/benchmarks.md).
COMMITS_IN_FLIGHT = 4
CLOSE_TIMEOUT_S = 5.0
# pg_advisory_xact_lock key serialising migrations ("CSMS" in ASCII).
MIGRATION_LOCK_KEY = 0x43534D53
# pg_try_advisory_lock key of the one publishing outbox relay ("CSMSRELA").
RELAY_LOCK_KEY = 0x43534D5352454C41
# The relay lock's session: the server probes a silent client after 10 s,
# every 5 s, 3 times, then ends the session and so frees the lock.
_RELAY_SESSION_SETTINGS = {
    "application_name": "csms-relay-lock",
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}

# Errors meaning "the server is gone or refuses us", as opposed to "this statement failed".
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)
_FAILED: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


class PostgresStorage(SqlStorage):
    """The storage port on PostgreSQL; open it with ``await PostgresStorage.open(dsn)``."""

    dialect: str = "postgresql"
    decoding = NATIVE

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record], dsn: str) -> None:
        self._pool = pool
        self._guarded = _GuardedPool(pool)
        self._dsn = dsn
        self._committer: GroupCommitter[Unit] = GroupCommitter(
            self._apply_batch, max_in_flight=COMMITS_IN_FLIGHT
        )
        self._closed = False
        self._outage_wait = 0.0
        self._outbox_listeners: list[Callable[[], None]] = []
        self._relay_lock: asyncpg.Connection[asyncpg.Record] | None = None
        # Handshakes look their station up; at once, many share one query.
        self._station_lookups: LookupBatcher[str, Station] = LookupBatcher(self._find_stations)

    @classmethod
    async def open(cls, dsn: str, *, pool_size: int = 10) -> PostgresStorage:
        """Connect a pool of up to ``pool_size``; ``StorageUnavailableError`` if unreachable."""
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=pool_size,
                init=_init_connection,
                reset=_keep_session,
                timeout=CONNECT_TIMEOUT_S,
                # A primary that stops answering without resetting the connection
                # (a failover) must fail the statement, so that it is waited out.
                command_timeout=COMMAND_TIMEOUT_S,
            )
        except ValueError as exc:  # asyncpg.ClientConfigurationError among them
            raise ConfigurationError(
                f"CSMS_DATABASE_URL={mask_password(dsn)!r}: {_one_line(exc)}"
            ) from exc
        except (*_UNAVAILABLE, *_FAILED) as exc:
            raise StorageUnavailableError(
                f"cannot connect to PostgreSQL at {mask_password(dsn)} (CSMS_DATABASE_URL): "
                f"{_one_line(exc) or type(exc).__name__}"
            ) from exc
        return cls(pool, dsn)

    async def _release(self) -> None:
        """Close the pool, terminating it if that hangs."""
        await self._station_lookups.close()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._pool.close()
        except TimeoutError:
            self._pool.terminate()

    async def migrate(self) -> list[str]:
        """Apply pending migrations in one transaction under an advisory lock."""
        applied: list[str] = []
        with _translate("apply migrations"):
            async with self._pool.acquire() as conn, conn.transaction():
                # Two processes starting together: the second waits here, then sees our rows.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
                done = await _applied_versions(conn)
                for migration in load_migrations("postgresql"):
                    if migration.version in done:
                        continue
                    await conn.execute(migration.sql, timeout=MIGRATION_TIMEOUT_S)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        migration.version,
                        migration.name,
                    )
                    applied.append(migration.name)
        return applied

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(PING_TIMEOUT_S):
                await self._guarded.fetchval("SELECT 1")
        except (*_UNAVAILABLE, *_FAILED):
            return False
        return True

    # --- hot path ----------------------------------------------------------

    async def _apply_batch(self, units: Sequence[Unit]) -> None:
        ops = group_ops(units)
        now = datetime.now(UTC)
        document = _batch_document(ops, now)
        await self._commit_batch(units, ops, document, now)
        self._committed(ops)

    async def _commit_batch(
        self, units: Sequence[Unit], ops: GroupedOps, document: dict[str, list[Row]], now: datetime
    ) -> None:
        # With answers, the function that records them first (migration 0010).
        apply = _APPLY_ANSWERED_BATCH if ops.answers else _APPLY_BATCH
        with _translate("commit"):
            ordered = bool(
                ops.charging_profiles or ops.commands or ops.connections or ops.heartbeat_intervals
            )
            # Without ordered ops the one statement is its own transaction:
            # one round trip per batch.
            async with (
                self._pool.acquire() as conn,
                _dropped_if_broken(conn),
                conn.transaction() if ordered else contextlib.nullcontext(),
            ):
                if document:
                    try:
                        await conn.execute(apply, document)
                    except asyncpg.RaiseError as exc:
                        if exc.message != _ANSWERED_BEFORE:
                            raise
                        # Nothing was applied (the statement failed): refuse the resends.
                        raise refuse_answered(units, _answered(exc.detail)) from None
                if ordered:
                    await _apply_ordered(conn, ops, now)

    def pool_stats(self) -> PoolStats | None:
        pool = self._pool
        return PoolStats(pool.get_size(), pool.get_idle_size(), pool.get_max_size())

    # --- registry ----------------------------------------------------------

    async def find_station(self, station_id: str) -> Station | None:
        return await self._station_lookups.get(station_id)

    async def _find_stations(self, station_ids: Sequence[str]) -> dict[str, Station]:
        sql = f"{rows.SELECT_STATIONS} WHERE id = ANY($1::text[])"
        what = f"find station {station_ids[0]!r}" if len(station_ids) == 1 else "find stations"
        # Bounded: every handshake's lookup waits on this one query.
        found = await self._patiently(
            what, lambda conn: conn.fetch(sql, station_ids, timeout=LOOKUP_TIMEOUT_S)
        )
        return {row[0]: rows.station(row, NATIVE) for row in found}

    async def _register_station(self, station_id: str, params: Row) -> Station:
        # The upsert is safe to repeat: it waits out an outage like a read.
        row = await self._patiently(
            f"register station {station_id!r}", lambda c: c.fetchrow(_REGISTER_STATION, *params)
        )
        assert row is not None  # an upsert always returns its row
        return rows.station(row, NATIVE)

    async def rotate_station_password(self, station_id: str, password_hash: str) -> bool:
        action = f"rotate password of {station_id!r}"
        return await self._write(action, rows.ROTATE_CREDENTIAL, password_hash, station_id)

    async def set_boot_status(self, station_id: str, status: str) -> bool:
        action = f"set boot status of {station_id!r}"
        return await self._write(action, rows.SET_BOOT_STATUS, status, station_id)

    async def retire_previous_password(self, station_id: str) -> None:
        action = f"retire previous password of {station_id!r}"
        await self._write(action, rows.RETIRE_PREVIOUS_CREDENTIAL, station_id)

    async def set_pending_password(self, station_id: str, sealed: str) -> bool:
        action = f"keep the pending password of {station_id!r}"
        return await self._write(action, rows.SET_PENDING_PASSWORD, sealed, station_id)

    async def _offer_secret(self, name: str, candidate: str) -> None:
        await self._write(f"store secret {name!r}", rows.SHARED_KEY_OFFERED, name, candidate)

    async def delete_station(self, station_id: str) -> bool:
        with _translate(f"delete station {station_id!r}"):
            async with self._pool.acquire() as conn, _dropped_if_broken(conn), conn.transaction():
                for table in rows.STATION_STATE_TABLES:
                    sql = f"DELETE FROM {table} WHERE station_id = $1"  # noqa: S608 - fixed names
                    await conn.execute(sql, station_id)
                status = await conn.execute("DELETE FROM stations WHERE id = $1", station_id)
        return bool(status == "DELETE 1")

    async def put_id_token(self, token: IdToken) -> IdToken:
        with _translate(f"store id token {token.id_token!r}"):
            row = await self._guarded.fetchrow(
                _PUT_ID_TOKEN, *rows.id_token_row(token, datetime.now(UTC))
            )
        assert row is not None  # an upsert always returns its row
        return rows.id_token(row, NATIVE)

    async def delete_id_token(self, id_token: str) -> bool:
        return await self._write("delete id token", rows.DELETE_ID_TOKEN, id_token)

    # --- charging state (its reads are SqlStorage's) --------------------------

    async def begin_connection(self, station_id: str) -> tuple[int, list[Presence]]:
        # A sequence number lost to a retry is a gap, never a duplicate: safe to repeat.
        found = await self._patiently(
            f"open a connection of {station_id!r}",
            lambda c: c.fetch(rows.BEGIN_CONNECTION, station_id),
        )
        others = [rows.presence(row[1:], NATIVE) for row in found if row[1] is not None]
        return int(found[0][0]), others

    async def renew_node(self, node_id: str, started_at: datetime, at: datetime) -> None:
        await self._write("renew the node lease", rows.NODE_RENEWED, node_id, started_at, at)

    async def forget_nodes(self, seen_before: datetime) -> None:
        await self._write("forget stopped nodes", rows.NODES_FORGOTTEN, seen_before)

    async def next_transaction_number(self) -> int:
        number = await self._patiently(
            "allocate a 1.6 transaction id",
            lambda c: c.fetchval("SELECT nextval('ocpp16_transaction_numbers')"),
        )
        return int(number)

    # --- outbox ------------------------------------------------------------

    async def outbox_pending(
        self, limit: int, skip: Sequence[tuple[int, int]] = ()
    ) -> list[OutboxRow]:
        if skip:
            lows, highs = [lo for lo, _ in skip], [hi for _, hi in skip]
            params: Sequence[object] = (limit, lows, highs)
            return await self._all(
                "read the outbox", _OUTBOX_PENDING_SKIPPING, params, rows.outbox_row
            )
        return await self._all("read the outbox", rows.OUTBOX_PENDING, (limit,), rows.outbox_row)

    async def outbox_mark_delivered(self, seqs: Sequence[int], at: datetime) -> None:
        if not seqs:
            return
        # Committed asynchronously: a mark lost in a crash means a duplicate (migration 0008).
        sql = "SELECT csms_mark_delivered($1::bigint[], $2)"
        with _translate("mark outbox rows delivered"):
            await self._guarded.execute(sql, list(seqs), at)

    async def prune_call_answers(self, answered_before: datetime, limit: int = 10_000) -> int:
        with _translate("prune call answers"):
            status = await self._guarded.execute(rows.PRUNE_CALL_ANSWERS, answered_before, limit)
        return int(status.rsplit(" ", 1)[-1])  # "DELETE <count>"

    async def outbox_prune(self, delivered_before: datetime, limit: int = 10_000) -> int:
        with _translate("prune the outbox"):
            status = await self._guarded.execute(rows.PRUNE_OUTBOX, delivered_before, limit)
        return int(status.rsplit(" ", 1)[-1])  # "DELETE <count>"

    async def outbox_backlog(self, cap: int = 1_000_000) -> OutboxBacklog:
        with _translate("measure the outbox backlog"):
            row = await self._guarded.fetchrow(_OUTBOX_BACKLOG, cap)
        assert row is not None  # scalar subqueries always return one row
        return OutboxBacklog(row[0], row[1])

    async def outbox_stats(self) -> OutboxStats:
        sql = (
            "SELECT count(*) FILTER (WHERE delivered_at IS NULL),"
            " count(*) FILTER (WHERE delivered_at IS NOT NULL),"
            " (SELECT recorded_at FROM outbox WHERE delivered_at IS NULL ORDER BY seq LIMIT 1)"
            " FROM outbox"
        )
        with _translate("count the outbox"):
            row = await self._guarded.fetchrow(sql)
        assert row is not None  # an aggregate always returns one row
        return OutboxStats(row[0], row[1], row[2])

    async def outbox_lead(self) -> bool:
        conn = self._relay_lock
        if conn is not None:
            try:
                async with asyncio.timeout(PING_TIMEOUT_S):
                    await conn.fetchval("SELECT 1")
            except (*_UNAVAILABLE, *_FAILED):
                # The session is gone or going, and the server frees its lock with it.
                await self.outbox_resign()
                return False
            return True
        try:
            conn = await asyncpg.connect(
                self._dsn, timeout=CONNECT_TIMEOUT_S, server_settings=_RELAY_SESSION_SETTINGS
            )
        except (*_UNAVAILABLE, *_FAILED) as exc:
            raise StorageUnavailableError(
                f"cannot open the relay lock session: {_one_line(exc)}"
            ) from exc
        try:
            async with asyncio.timeout(PING_TIMEOUT_S):
                leading = await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK_KEY)
        except BaseException:
            conn.terminate()
            raise
        if not leading:
            await _close_quietly(conn)
            return False
        self._relay_lock = conn
        return True

    async def outbox_resign(self) -> None:
        conn, self._relay_lock = self._relay_lock, None
        if conn is not None:
            await _close_quietly(conn)  # ending the session releases the lock

    async def _one(
        self, action: str, sql: str, params: Sequence[Any], decode: Decode[T]
    ) -> T | None:
        row = await self._patiently(action, lambda conn: conn.fetchrow(sql, *params))
        return None if row is None else decode(row, NATIVE)

    async def _all(
        self, action: str, sql: str, params: Sequence[Any], decode: Decode[T]
    ) -> list[T]:
        found = await self._patiently(action, lambda conn: conn.fetch(sql, *params))
        return [decode(row, NATIVE) for row in found]

    def wait_out_outages(self, seconds: float) -> None:
        self._outage_wait = seconds
        self._committer.wait_out_outages(seconds)

    async def _patiently(self, action: str, read: Callable[[Connection], Awaitable[R]]) -> R:
        """Run a read on a pooled connection; while PostgreSQL cannot be reached,
        try again for up to the outage wait (a restart or failover takes seconds)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._outage_wait
        delay = OUTAGE_FIRST_RETRY
        while True:
            try:
                with _translate(action):
                    async with self._pool.acquire() as conn, _dropped_if_broken(conn):
                        return await read(conn)
            except StorageUnavailableError:
                if loop.time() + delay > give_up:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, OUTAGE_RETRY_CAP)

    async def _write(self, action: str, sql: str, *params: Any) -> bool:
        """Run one statement; True if it changed one row."""
        with _translate(action):
            status = await self._guarded.execute(sql, *params)
        return bool(status.endswith(" 1"))  # "UPDATE 1", "DELETE 1"


# --- plumbing -------------------------------------------------------------------


async def _close_quietly(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Close ``conn``, terminating it when the server does not answer."""
    try:
        await conn.close(timeout=PING_TIMEOUT_S)
    except (*_UNAVAILABLE, *_FAILED):
        conn.terminate()


async def _init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    # jsonb's binary format is a version byte (1) and the JSON text: orjson
    # reads and writes it without a detour through str.
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        format="binary",
    )


def _encode_jsonb(value: Any) -> bytes:
    return b"\x01" + orjson.dumps(value, option=orjson.OPT_NAIVE_UTC)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(memoryview(data)[1:])


Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"


@contextlib.asynccontextmanager
async def _dropped_if_broken(conn: Connection) -> AsyncIterator[None]:
    """Close a connection that lost the database instead of returning it to
    the pool: it may still be consuming the error, and our reset (no round
    trip, ``_keep_session``) would not notice, so the next caller would get
    "cannot switch to state 12; another operation (2) is in progress"."""
    try:
        yield
    except _UNAVAILABLE:
        # A connection that was lost outright is released by asyncpg already.
        with contextlib.suppress(asyncpg.InterfaceError):
            conn.terminate()
        raise
    except asyncpg.InterfaceError as exc:
        # "connection is closed": the database went away under it, as above.
        if _closed(conn):
            raise asyncpg.ConnectionDoesNotExistError(str(exc)) from exc
        # Any other (an operation still in progress on it): it is not pooled again.
        with contextlib.suppress(asyncpg.InterfaceError):
            conn.terminate()
        raise


def _closed(conn: Connection) -> bool:
    try:
        return bool(conn.is_closed())
    except (asyncpg.InterfaceError, AttributeError):  # released already: it was lost
        return True


class _GuardedPool:
    """The pool's one-statement calls, each on a connection that is closed
    rather than pooled again if it lost the database (``_dropped_if_broken``)."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record]) -> None:
        self._pool = pool

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        async with self._pool.acquire() as conn, _dropped_if_broken(conn):
            return await conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        async with self._pool.acquire() as conn, _dropped_if_broken(conn):
            return await conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self._pool.acquire() as conn, _dropped_if_broken(conn):
            return await conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        async with self._pool.acquire() as conn, _dropped_if_broken(conn):
            return await conn.execute(sql, *args)


@contextlib.contextmanager
def _translate(action: str) -> Iterator[None]:
    """Turn asyncpg's and the OS's errors into ``StorageError`` (CancelledError passes),
    and time the call."""
    started = time.perf_counter()
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StorageUnavailableError(
            f"cannot {action}: PostgreSQL is unavailable: {_one_line(exc)}"
        ) from exc
    except _FAILED as exc:
        raise StorageError(f"cannot {action}: {_one_line(exc)}") from exc
    finally:
        metrics.STORAGE_QUERY_SECONDS.observe(time.perf_counter() - started)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


async def _applied_versions(conn: PoolConnectionProxy[asyncpg.Record]) -> set[int]:
    if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
        return set()
    return {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}


# --- the batch ------------------------------------------------------------------


def _batch_document(ops: GroupedOps, now: datetime) -> dict[str, list[Row]]:
    """The batch for ``csms_apply_batch`` (migration 0008): each non-empty kind
    as a list of rows in the column order that function reads.

    Built before the statement is sent, to keep the transaction short. Upsert
    rows are one per key (``_last_by_key``): a set-based INSERT .. ON CONFLICT
    may touch a row only once.
    """
    kinds: dict[str, list[Row]] = {
        # Not deduplicated: two answers to one station's action fail the batch
        # (then each unit goes alone), as applying them in turn would differ.
        "answers": _by_key(rows.answer_rows(ops.answers, now), 2),
        "booted": _booted_rows(ops),
        # One per station already: group_ops keeps each station's latest.
        "seen": _by_key([(op.station_id, op.ocpp_version, op.at) for op in ops.seen], 1),
        # Plain inserts: a second start of one transaction fails as it always did.
        "started": _by_key(rows.transaction_rows(ops.started, now), 2),
        "changed": _last_by_key(rows.transaction_rows(ops.changed, now), 2),
        "statuses": _last_by_key(rows.connector_rows(ops.statuses), 3),
        "readings": rows.reading_rows(ops.meter_samples),
        "notified": rows.notified_rows(ops.notifications),
        "transaction_events": rows.transaction_event_rows(ops.transaction_events, now),
        "device_model": _last_by_key(rows.device_model_rows(ops.device_model), 2),
        "device_model_values": _last_by_key(rows.device_model_rows(ops.device_model_values), 2),
        "configuration": _configuration_rows(ops),
        "local_list_versions": _last_by_key(
            [(op.station_id, op.version) for op in ops.local_list_versions], 1
        ),
        "reservations": _last_by_key(rows.reservation_rows(ops.reservations, now), 2),
        "events": rows.event_rows(ops.events),
    }
    return {kind: batch for kind, batch in kinds.items() if batch}


def _by_key(batch: list[Row], width: int) -> list[Row]:
    """``rows`` sorted by their first ``width`` columns (the key), stably.

    Batches commit concurrently (GroupCommitter max_in_flight): taking row
    locks in one order in every batch keeps two of them from deadlocking.
    """
    if len(batch) > 1:
        batch.sort(key=lambda row: row[:width])
    return batch


def _last_by_key(batch: list[Row], width: int) -> list[Row]:
    """The last row of each key (the first ``width`` columns), sorted by key.

    Applying only the last of several upserts of one row gives what applying
    them in turn gave: each sets every column it carries from the new row.
    """
    if len(batch) < 2:
        return batch
    return _in_key_order({row[:width]: row for row in batch})


def _in_key_order(merged: dict[Any, Row]) -> list[Row]:
    """The rows of ``merged`` (one per key) in key order, for the reason ``_by_key`` gives."""
    return [merged[key] for key in sorted(merged)]


def _booted_rows(ops: GroupedOps) -> list[Row]:
    """One row per station: the last boot's, and as last seen the latest time of
    them all (applied in turn, the upsert kept the greatest)."""
    merged: dict[str, Row] = {}
    for op in ops.booted:
        earlier = merged.get(op.station_id)
        seen = op.at if earlier is None else max(op.at, earlier[-1])
        merged[op.station_id] = (*rows.booted_row(op), seen)
    return _in_key_order(merged)


def _configuration_rows(ops: GroupedOps) -> list[Row]:
    """Configuration rows, one per key: the last value, and the last ``readonly``
    that was known (the upsert keeps the stored one when a report lacks it)."""
    merged: dict[tuple[str, str], Row] = {}
    for op in ops.configuration:
        for k in op.keys:
            row = rows.configuration_row(op, k)
            earlier = merged.get(row[:2])
            if k.readonly is None and earlier is not None and earlier[3] is not None:
                row = (*row[:3], earlier[3], row[4])
            merged[row[:2]] = row
    return _in_key_order(merged)


async def _apply_ordered(
    conn: PoolConnectionProxy[asyncpg.Record], ops: GroupedOps, now: datetime
) -> None:
    """The rare ops that go one by one: charging profiles (set and clear in
    order) and commands (an update must find the command in its expected status)."""
    for change in ops.charging_profiles:
        if isinstance(change, ChargingProfileSet):
            p = change.profile
            await conn.execute(
                rows.CHARGING_PROFILE_REPLACED, p.station_id, p.profile_id, p.evse_id, p.purpose,
                p.stack_level,
            )  # fmt: skip
            await conn.execute(rows.CHARGING_PROFILE_SET, *rows.charging_profile_row(p, now))
        else:
            c = change.criteria
            await conn.execute(
                _CHARGING_PROFILES_CLEARED, change.station_id, c.profile_id, c.evse_id,
                c.purpose, c.stack_level,
            )  # fmt: skip
    for recorded in ops.commands:
        row = rows.command_row(recorded.command)
        if recorded.expected_status is None:
            await conn.execute(rows.COMMAND_INSERTED, *row)
            continue
        expected = CommandStatus(recorded.expected_status).value
        status = await conn.execute(rows.COMMAND_UPDATED, *row[2:], row[0], expected)
        if status != "UPDATE 1":
            raise ConflictError(
                f"command {recorded.command.id} is no longer {expected}: another writer moved it on"
            )
    for interval in ops.heartbeat_intervals:
        await conn.execute(rows.HEARTBEAT_INTERVAL_SET, interval.seconds, interval.station_id)
    for link in ops.connections:
        if isinstance(link, ConnectionOpened):
            await conn.execute(rows.CONNECTION_OPENED, *rows.presence_row(link.presence))
            continue
        status = await conn.execute(rows.CONNECTION_CLOSED, link.station_id, link.epoch)
        if link.must_exist and status != "DELETE 1":
            raise ConflictError(f"connection {link.epoch} of {link.station_id!r} is closed already")


async def _keep_session(_: asyncpg.Connection) -> None:
    """Skip asyncpg's reset round trip on every release (about a quarter of a
    reconnect storm's CPU): pool connections hold no session state here; the
    relay's session lock lives on its own connection, migrations use
    transaction-scoped locks, nothing LISTENs."""


# --- statements -------------------------------------------------------------------

_REGISTER_STATION = f"{rows.REGISTER_STATION} RETURNING {rows.STATION_COLUMNS}"

# A group-commit batch, one round trip (migration 0008, _batch_document).
_APPLY_BATCH = "SELECT csms_apply_batch($1::jsonb)"
# The same with its CALLs' answers recorded first (migration 0010): it raises
# _ANSWERED_BEFORE, DETAIL [[station, action, answer], ...], for CALLs answered before.
_APPLY_ANSWERED_BATCH = "SELECT csms_apply_answered_batch($1::jsonb)"
_ANSWERED_BEFORE = "csms_calls_answered_before"


def _answered(detail: str | None) -> dict[tuple[str, str], dict[str, Any]]:
    """The stored answers a refused batch's DETAIL carries, by station and action."""
    return {(station, action): answer for station, action, answer in orjson.loads(detail or "[]")}


_PUT_ID_TOKEN = f"{rows.PUT_ID_TOKEN} RETURNING {rows.ID_TOKEN_COLUMNS}"


# The skipped ranges are few (a batch's seqs are mostly consecutive).
_OUTBOX_PENDING_SKIPPING = f"""{rows.SELECT_OUTBOX} WHERE delivered_at IS NULL AND NOT EXISTS (
    SELECT 1 FROM unnest($2::bigint[], $3::bigint[]) AS skip (lo, hi)
    WHERE seq BETWEEN skip.lo AND skip.hi
) ORDER BY seq LIMIT $1"""  # noqa: S608 - constant SQL text

_OUTBOX_BACKLOG = f"SELECT ({rows.COUNT_PENDING}), ({rows.OLDEST_PENDING})"


_CHARGING_PROFILES_CLEARED = """
DELETE FROM charging_profiles WHERE station_id = $1
    AND ($2::integer IS NULL OR profile_id = $2) AND ($3::integer IS NULL OR evse_id = $3)
    AND ($4::text IS NULL OR purpose = $4) AND ($5::integer IS NULL OR stack_level = $5)
"""
