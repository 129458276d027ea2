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
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from csms.adapters.storage.batching import (
    GroupCommitter,
    GroupedOps,
    LookupBatcher,
    group_ops,
    record_committed,
)
from csms.adapters.storage.migrations import load_migrations
from csms.adapters.storage.urls import mask_password
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
from csms.core.errors import (
    ConfigurationError,
    ConflictError,
    StorageError,
    StorageUnavailableError,
)
from csms.core.events import Event
from csms.core.ports import (
    UNCHANGED,
    ChargingProfileSet,
    CommandFilter,
    MeterSamplesRecorded,
    OutboxBacklog,
    OutboxRow,
    OutboxStats,
    PoolStats,
    StationBooted,
    StationNotified,
    TransactionFilter,
    WriteOp,
)
from csms.telemetry import metrics

Row = tuple[Any, ...]
Unit = Sequence[WriteOp]

CONNECT_TIMEOUT_S = 10.0
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


class PostgresStorage:
    """The storage port on PostgreSQL; open it with ``await PostgresStorage.open(dsn)``."""

    dialect: str = "postgresql"

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record], dsn: str) -> None:
        self._pool = pool
        self._dsn = dsn
        self._committer: GroupCommitter[Unit] = GroupCommitter(
            self._apply_batch, max_in_flight=COMMITS_IN_FLIGHT
        )
        self._closed = False
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

    async def close(self) -> None:
        """Flush pending commits, then close the pool (terminating it if that hangs)."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._committer.close()
        finally:
            await self._station_lookups.close()
            await self.outbox_resign()
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
                    await conn.execute(migration.sql)
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
                await self._pool.fetchval("SELECT 1")
        except (*_UNAVAILABLE, *_FAILED):
            return False
        return True

    # --- hot path ----------------------------------------------------------

    async def commit(self, unit: Sequence[WriteOp]) -> None:
        if unit:
            await self._committer.submit(unit)

    async def _apply_batch(self, units: Sequence[Unit]) -> None:
        ops = group_ops(units)
        now = datetime.now(UTC)
        document = _batch_document(ops, now)
        with _translate("commit"):
            ordered = bool(ops.charging_profiles or ops.commands)
            # Without ordered ops the one statement is its own transaction:
            # one round trip per batch.
            async with (
                self._pool.acquire() as conn,
                conn.transaction() if ordered else contextlib.nullcontext(),
            ):
                if document:
                    await conn.execute(_APPLY_BATCH, document)
                if ordered:
                    await _apply_ordered(conn, ops, now)
        if ops.events:
            for listener in self._outbox_listeners:
                listener()
        record_committed(ops)

    def pool_stats(self) -> PoolStats | None:
        pool = self._pool
        return PoolStats(pool.get_size(), pool.get_idle_size(), pool.get_max_size())

    # --- registry ----------------------------------------------------------

    async def find_station(self, station_id: str) -> Station | None:
        return await self._station_lookups.get(station_id)

    async def _find_stations(self, station_ids: Sequence[str]) -> dict[str, Station]:
        sql = f"{_SELECT_STATIONS} WHERE id = ANY($1::text[])"
        what = f"find station {station_ids[0]!r}" if len(station_ids) == 1 else "find stations"
        with _translate(what):
            # Bounded: every handshake's lookup waits on this one query.
            rows = await self._pool.fetch(sql, station_ids, timeout=LOOKUP_TIMEOUT_S)
        return {row[0]: _station(row) for row in rows}

    async def find_station_ignoring_case(self, station_id: str) -> Station | None:
        sql = f"{_SELECT_STATIONS} WHERE lower(id) = lower($1) LIMIT 2"
        with _translate(f"find station {station_id!r} ignoring case"):
            rows = await self._pool.fetch(sql, station_id)
        return _station(rows[0]) if len(rows) == 1 else None

    async def register_station(
        self,
        station_id: str,
        *,
        password_hash: str | None = UNCHANGED,
        security_profile: int = UNCHANGED,
        at: datetime,
    ) -> Station:
        keep_password = password_hash is UNCHANGED
        keep_profile = security_profile is UNCHANGED
        with _translate(f"register station {station_id!r}"):
            row = await self._pool.fetchrow(
                _REGISTER_STATION,
                station_id,
                None if keep_password else password_hash,
                1 if keep_profile else security_profile,
                at,
                keep_password,
                keep_profile,
            )
        assert row is not None  # an upsert always returns its row
        return _station(row)

    async def rotate_station_password(self, station_id: str, password_hash: str) -> bool:
        sql = (
            "UPDATE stations SET previous_password_hash = coalesce(previous_password_hash,"
            " password_hash), password_hash = $1 WHERE id = $2"
        )
        with _translate(f"rotate password of {station_id!r}"):
            status = await self._pool.execute(sql, password_hash, station_id)
        return bool(status == "UPDATE 1")

    async def set_boot_status(self, station_id: str, status: str) -> bool:
        sql = "UPDATE stations SET boot_status = $1 WHERE id = $2"
        with _translate(f"set boot status of {station_id!r}"):
            result = await self._pool.execute(sql, status, station_id)
        return bool(result == "UPDATE 1")

    async def retire_previous_password(self, station_id: str) -> None:
        sql = "UPDATE stations SET previous_password_hash = NULL WHERE id = $1"
        with _translate(f"retire previous password of {station_id!r}"):
            await self._pool.execute(sql, station_id)

    async def list_stations(self) -> list[Station]:
        with _translate("list stations"):
            rows = await self._pool.fetch(f"{_SELECT_STATIONS} ORDER BY id")
        return [_station(row) for row in rows]

    async def delete_station(self, station_id: str) -> bool:
        with _translate(f"delete station {station_id!r}"):
            async with self._pool.acquire() as conn, conn.transaction():
                for table in _STATION_STATE_TABLES:
                    sql = f"DELETE FROM {table} WHERE station_id = $1"  # noqa: S608 - fixed names
                    await conn.execute(sql, station_id)
                status = await conn.execute("DELETE FROM stations WHERE id = $1", station_id)
        return bool(status == "DELETE 1")

    async def find_local_list_version(self, station_id: str) -> int | None:
        sql = "SELECT local_list_version FROM stations WHERE id = $1"
        with _translate("find local list version"):
            version = await self._pool.fetchval(sql, station_id)
        return None if version is None else int(version)

    async def find_id_token(self, id_token: str) -> IdToken | None:
        sql = f"{_SELECT_ID_TOKENS} WHERE id_token = $1"
        with _translate("find id token"):
            row = await self._pool.fetchrow(sql, id_token)
        return None if row is None else _id_token(row)

    async def put_id_token(self, token: IdToken) -> IdToken:
        with _translate(f"store id token {token.id_token!r}"):
            row = await self._pool.fetchrow(
                _PUT_ID_TOKEN,
                token.id_token,
                AuthorizationStatus(token.status).value,
                IdTokenType(token.type).value,
                token.expires_at,
                token.group_id,
                token.updated_at or datetime.now(UTC),
            )
        assert row is not None  # an upsert always returns its row
        return _id_token(row)

    async def list_id_tokens(self) -> list[IdToken]:
        sql = f"{_SELECT_ID_TOKENS} ORDER BY id_token"
        with _translate("list id tokens"):
            rows = await self._pool.fetch(sql)
        return [_id_token(row) for row in rows]

    async def delete_id_token(self, id_token: str) -> bool:
        with _translate("delete id token"):
            status = await self._pool.execute("DELETE FROM id_tokens WHERE id_token = $1", id_token)
        return bool(status == "DELETE 1")

    # --- charging state ----------------------------------------------------

    async def list_connectors(self, station_id: str) -> list[ConnectorStatus]:
        sql = f"{_SELECT_CONNECTORS} WHERE station_id = $1 ORDER BY evse_id, connector_id"
        with _translate("list connectors"):
            rows = await self._pool.fetch(sql, station_id)
        return [_connector(row) for row in rows]

    async def find_transaction(self, station_id: str, transaction_id: str) -> Transaction | None:
        sql = f"{_SELECT_TRANSACTIONS} WHERE station_id = $1 AND transaction_id = $2"
        return await self._find_transaction(sql, station_id, transaction_id)

    async def find_transaction_by_ocpp16_id(self, transaction_id: int) -> Transaction | None:
        # The literal '1.6' matches the partial index transactions_ocpp16_id.
        sql = (
            f"{_SELECT_TRANSACTIONS}"
            " WHERE transaction_id = $1 AND ocpp_version = '1.6' ORDER BY id DESC LIMIT 1"
        )
        return await self._find_transaction(sql, str(transaction_id))

    async def find_open_transaction_like(
        self, station_id: str, evse_id: int, id_token: str, started_at: datetime
    ) -> Transaction | None:
        sql = (
            f"{_SELECT_TRANSACTIONS}"
            " WHERE station_id = $1 AND evse_id = $2 AND ended_at IS NULL"
            " AND id_token = $3 AND started_at = $4 ORDER BY id DESC LIMIT 1"
        )
        return await self._find_transaction(sql, station_id, evse_id, id_token, started_at)

    async def _find_transaction(self, sql: str, *params: Any) -> Transaction | None:
        with _translate("find transaction"):
            row = await self._pool.fetchrow(sql, *params)
        return None if row is None else _transaction(row)

    async def next_transaction_number(self) -> int:
        with _translate("allocate a 1.6 transaction id"):
            number = await self._pool.fetchval("SELECT nextval('ocpp16_transaction_numbers')")
        return int(number)

    async def list_transactions(self, where: TransactionFilter) -> list[Transaction]:
        sql, params = _transactions_query(where)
        with _translate("list transactions"):
            rows = await self._pool.fetch(sql, *params)
        return [_transaction(row) for row in rows]

    async def count_active_transactions(self) -> int:
        sql = "SELECT count(*) FROM transactions WHERE ended_at IS NULL"
        with _translate("count active transactions"):
            count = await self._pool.fetchval(sql)
        return int(count or 0)

    async def list_meter_samples(self, station_id: str, transaction_id: str) -> list[MeterSample]:
        sql = (
            "SELECT samples FROM meter_readings"
            " WHERE station_id = $1 AND transaction_id = $2 ORDER BY id"
        )
        with _translate("list meter samples"):
            rows = await self._pool.fetch(sql, station_id, transaction_id)
        return [_sample(sample) for row in rows for sample in row[0]]

    async def list_transaction_seq_nos(self, station_id: str, transaction_id: str) -> set[int]:
        sql = "SELECT seq_no FROM transaction_events WHERE station_id = $1 AND transaction_id = $2"
        with _translate("list transaction seqNos"):
            rows = await self._pool.fetch(sql, station_id, transaction_id)
        return {int(row[0]) for row in rows}

    async def list_device_model(self, station_id: str) -> list[DeviceModelEntry]:
        sql = f"{_SELECT_DEVICE_MODEL} WHERE station_id = $1 ORDER BY entry_key"
        with _translate("list device model"):
            rows = await self._pool.fetch(sql, station_id)
        return [DeviceModelEntry(*row) for row in rows]

    async def list_notifications(
        self, station_id: str, action: str | None = None
    ) -> list[StationNotified]:
        sql = (
            "SELECT station_id, action, payload, at FROM station_notifications"
            " WHERE station_id = $1"
        )
        params: tuple[str, ...] = (station_id,)
        if action is not None:
            sql += " AND action = $2"
            params += (action,)
        with _translate("list notifications"):
            rows = await self._pool.fetch(sql + " ORDER BY id", *params)
        return [_notified(row) for row in rows]

    async def list_configuration(self, station_id: str) -> list[ConfigurationKey]:
        sql = (
            "SELECT key, value, readonly, updated_at FROM station_configuration"
            " WHERE station_id = $1 ORDER BY key"
        )
        with _translate("list configuration"):
            rows = await self._pool.fetch(sql, station_id)
        return [ConfigurationKey(*row) for row in rows]

    async def list_reservations(self, station_id: str) -> list[Reservation]:
        sql = f"{_SELECT_RESERVATIONS} WHERE station_id = $1 ORDER BY reservation_id"
        with _translate("list reservations"):
            rows = await self._pool.fetch(sql, station_id)
        return [Reservation(*row) for row in rows]

    async def list_charging_profiles(self, station_id: str) -> list[ChargingProfile]:
        sql = f"{_SELECT_CHARGING_PROFILES} WHERE station_id = $1 ORDER BY evse_id, profile_id"
        with _translate("list charging profiles"):
            rows = await self._pool.fetch(sql, station_id)
        return [ChargingProfile(*row) for row in rows]

    # --- commands ------------------------------------------------------------

    async def find_command(self, command_id: str) -> Command | None:
        with _translate("find command"):
            row = await self._pool.fetchrow(f"{_SELECT_COMMANDS} WHERE id = $1", command_id)
        return None if row is None else _command(row)

    async def list_commands(self, where: CommandFilter) -> list[Command]:
        clauses: list[str] = []
        params: list[Any] = []
        if where.station_id is not None:
            params.append(where.station_id)
            clauses.append(f"station_id = ${len(params)}")
        if where.status is not None:
            params.append(CommandStatus(where.status).value)
            clauses.append(f"status = ${len(params)}")
        condition = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        count = len(params)
        sql = (
            f"{_SELECT_COMMANDS}{condition}"
            f" ORDER BY created_at DESC, id LIMIT ${count + 1} OFFSET ${count + 2}"
        )
        with _translate("list commands"):
            rows = await self._pool.fetch(sql, *params, where.limit, where.offset)
        return [_command(row) for row in rows]

    async def list_queued_commands(self, station_id: str, limit: int = 100) -> list[Command]:
        sql = (
            f"{_SELECT_COMMANDS} WHERE station_id = $1 AND status = 'queued'"
            " ORDER BY created_at, id LIMIT $2"
        )
        with _translate("list queued commands"):
            rows = await self._pool.fetch(sql, station_id, limit)
        return [_command(row) for row in rows]

    async def list_expired_commands(self, now: datetime, limit: int = 100) -> list[Command]:
        sql = (
            f"{_SELECT_COMMANDS} WHERE status = 'queued' AND expires_at <= $1"
            " ORDER BY expires_at LIMIT $2"
        )
        with _translate("list expired commands"):
            rows = await self._pool.fetch(sql, now, limit)
        return [_command(row) for row in rows]

    async def list_stations_with_queued_commands(self) -> list[str]:
        sql = "SELECT DISTINCT station_id FROM commands WHERE status = 'queued' ORDER BY station_id"
        with _translate("list stations with queued commands"):
            rows = await self._pool.fetch(sql)
        return [str(row[0]) for row in rows]

    # --- outbox ------------------------------------------------------------

    async def outbox_pending(
        self, limit: int, skip: Sequence[tuple[int, int]] = ()
    ) -> list[OutboxRow]:
        with _translate("read the outbox"):
            if skip:
                lows, highs = [lo for lo, _ in skip], [hi for _, hi in skip]
                rows = await self._pool.fetch(_OUTBOX_PENDING_SKIPPING, limit, lows, highs)
            else:
                rows = await self._pool.fetch(_OUTBOX_PENDING, limit)
        return [_outbox_row(row) for row in rows]

    async def outbox_mark_delivered(self, seqs: Sequence[int], at: datetime) -> None:
        if not seqs:
            return
        # Committed asynchronously: a mark lost in a crash means a duplicate (migration 0008).
        sql = "SELECT csms_mark_delivered($1::bigint[], $2)"
        with _translate("mark outbox rows delivered"):
            await self._pool.execute(sql, list(seqs), at)

    async def outbox_prune(self, delivered_before: datetime, limit: int = 10_000) -> int:
        with _translate("prune the outbox"):
            status = await self._pool.execute(_PRUNE_OUTBOX, delivered_before, limit)
        return int(status.rsplit(" ", 1)[-1])  # "DELETE <count>"

    async def outbox_backlog(self, cap: int = 1_000_000) -> OutboxBacklog:
        with _translate("measure the outbox backlog"):
            row = await self._pool.fetchrow(_OUTBOX_BACKLOG, cap)
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
            row = await self._pool.fetchrow(sql)
        assert row is not None  # an aggregate always returns one row
        return OutboxStats(row[0], row[1], row[2])

    async def outbox_list(self, limit: int, pending_only: bool) -> list[OutboxRow]:
        pending = " WHERE delivered_at IS NULL" if pending_only else ""
        sql = f"{_SELECT_OUTBOX}{pending} ORDER BY seq DESC LIMIT $1"
        with _translate("list the outbox"):
            rows = await self._pool.fetch(sql, limit)
        return [_outbox_row(row) for row in rows]

    def outbox_subscribe(self, listener: Callable[[], None]) -> None:
        self._outbox_listeners.append(listener)

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


def _transactions_query(where: TransactionFilter) -> tuple[str, list[Any]]:
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
    condition = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    count = len(params)
    sql = (
        f"{_SELECT_TRANSACTIONS}{condition}"
        f" ORDER BY started_at DESC, id DESC LIMIT ${count + 1} OFFSET ${count + 2}"
    )
    return sql, [*params, where.limit, where.offset]


# --- the batch ------------------------------------------------------------------


def _batch_document(ops: GroupedOps, now: datetime) -> dict[str, list[Row]]:
    """The batch for ``csms_apply_batch`` (migration 0008): each non-empty kind
    as a list of rows in the column order that function reads.

    Built before the statement is sent, to keep the transaction short. Upsert
    rows are one per key (``_last_by_key``): a set-based INSERT .. ON CONFLICT
    may touch a row only once.
    """
    kinds: dict[str, list[Row]] = {
        "booted": _booted_rows(ops),
        # One per station already: group_ops keeps each station's latest.
        "seen": _by_key([(op.station_id, op.ocpp_version, op.at) for op in ops.seen], 1),
        # Plain inserts: a second start of one transaction fails as it always did.
        "started": _by_key([_transaction_row(op.transaction, now) for op in ops.started], 2),
        "changed": _last_by_key([_transaction_row(op.transaction, now) for op in ops.changed], 2),
        "statuses": _last_by_key([_connector_row(op.status) for op in ops.statuses], 3),
        "readings": [_reading_row(op) for op in ops.meter_samples if op.samples],
        "notified": [(op.station_id, op.action, op.payload, op.at) for op in ops.notifications],
        "transaction_events": [
            (
                op.station_id,
                op.transaction_id,
                op.seq_no,
                op.event_type,
                op.trigger_reason,
                op.occurred_at,
                op.offline,
                now,
            )
            for op in ops.transaction_events
        ],
        "device_model": _last_by_key(
            [
                _device_model_row(op.station_id, e, op.at)
                for op in ops.device_model
                for e in op.entries
            ],
            2,
        ),
        "device_model_values": _last_by_key(
            [
                _device_model_row(op.station_id, e, op.at)
                for op in ops.device_model_values
                for e in op.entries
            ],
            2,
        ),
        "configuration": _configuration_rows(ops),
        "local_list_versions": _last_by_key(
            [(op.station_id, op.version) for op in ops.local_list_versions], 1
        ),
        "reservations": _last_by_key(
            [
                (
                    r.station_id,
                    r.reservation_id,
                    r.evse_id,
                    r.id_token,
                    r.expires_at,
                    r.status,
                    r.updated_at or now,
                )
                for r in (op.reservation for op in ops.reservations)
            ],
            2,
        ),
        "events": [_event_row(op.event) for op in ops.events],
    }
    return {kind: rows for kind, rows in kinds.items() if rows}


def _by_key(rows: list[Row], width: int) -> list[Row]:
    """``rows`` sorted by their first ``width`` columns (the key), stably.

    Batches commit concurrently (GroupCommitter max_in_flight): taking row
    locks in one order in every batch keeps two of them from deadlocking.
    """
    if len(rows) > 1:
        rows.sort(key=lambda row: row[:width])
    return rows


def _last_by_key(rows: list[Row], width: int) -> list[Row]:
    """The last row of each key (the first ``width`` columns), sorted by key.

    Applying only the last of several upserts of one row gives what applying
    them in turn gave: each sets every column it carries from the new row.
    """
    if len(rows) < 2:
        return rows
    return _in_key_order({row[:width]: row for row in rows})


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
        merged[op.station_id] = (*_booted_row(op), seen)
    return _in_key_order(merged)


def _configuration_rows(ops: GroupedOps) -> list[Row]:
    """Configuration rows, one per key: the last value, and the last ``readonly``
    that was known (the upsert keeps the stored one when a report lacks it)."""
    merged: dict[tuple[str, str], Row] = {}
    for op in ops.configuration:
        for k in op.keys:
            row: Row = (op.station_id, k.key, k.value, k.readonly, op.at)
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
                _CHARGING_PROFILE_REPLACED, p.station_id, p.profile_id, p.evse_id, p.purpose,
                p.stack_level,
            )  # fmt: skip
            await conn.execute(
                _CHARGING_PROFILE_SET, p.station_id, p.profile_id, p.evse_id, p.stack_level,
                p.purpose, p.profile, p.updated_at or now,
            )  # fmt: skip
        else:
            c = change.criteria
            await conn.execute(
                _CHARGING_PROFILES_CLEARED, change.station_id, c.profile_id, c.evse_id,
                c.purpose, c.stack_level,
            )  # fmt: skip
    for recorded in ops.commands:
        row = _command_row(recorded.command)
        if recorded.expected_status is None:
            await conn.execute(_COMMAND_INSERTED, *row)
            continue
        expected = CommandStatus(recorded.expected_status).value
        status = await conn.execute(_COMMAND_UPDATED, *row[2:], row[0], expected)
        if status != "UPDATE 1":
            raise ConflictError(
                f"command {recorded.command.id} is no longer {expected}: another writer moved it on"
            )


def _command_row(c: Command) -> Row:
    """In the column order of _COMMAND_INSERTED; _COMMAND_UPDATED takes row[2:] + (id, status)."""
    return (
        c.id,
        c.station_id,
        c.name,
        c.action,
        c.ocpp_version,
        c.request,
        c.payload,
        CommandStatus(c.status).value,
        c.response,
        c.error,
        c.source,
        c.created_at,
        c.expires_at,
        c.sent_at,
        c.completed_at,
    )


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
        e.characteristics,
        at,
    )


def _booted_row(op: StationBooted) -> Row:
    return (
        op.station_id,
        op.ocpp_version,
        op.vendor,
        op.model,
        op.serial_number,
        op.firmware_version,
        op.boot_info,
        op.at,
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
        s.updated_at,
    )


def _reading_row(op: MeterSamplesRecorded) -> Row:
    """One row per message; each sample as a list in the column order of migration 0007."""
    samples = [
        (s.timestamp, s.measurand, s.value, s.unit, s.phase, s.context, s.location)
        for s in op.samples
    ]
    return (op.station_id, op.transaction_id, op.evse_id, samples)


def _event_row(e: Event) -> Row:
    return (e.event_id, e.type, e.station_id, e.ocpp_version, e.occurred_at, e.recorded_at, e.data)


def _transaction_row(t: Transaction, now: datetime) -> Row:
    return (
        t.station_id,
        t.transaction_id,
        t.evse_id,
        t.connector_id,
        t.id_token,
        t.meter_start_wh,
        t.meter_stop_wh,
        t.energy_wh,
        t.started_at,
        t.ended_at,
        t.stop_reason,
        t.charging_state,
        t.seq_no,
        t.last_meter_wh,
        t.anomalies,
        t.ocpp_version,
        t.updated_at or now,
    )


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


def _id_token(r: asyncpg.Record) -> IdToken:
    return IdToken(r[0], AuthorizationStatus(r[1]), IdTokenType(r[2]), r[3], r[4], r[5])


async def _keep_session(_: asyncpg.Connection) -> None:
    """Skip asyncpg's reset round trip on every release (about a quarter of a
    reconnect storm's CPU): pool connections hold no session state here; the
    relay's session lock lives on its own connection, migrations use
    transaction-scoped locks, nothing LISTENs."""


def _station(r: asyncpg.Record) -> Station:
    return Station(*r)


def _connector(r: asyncpg.Record) -> ConnectorStatus:
    return ConnectorStatus(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8])


def _transaction(r: asyncpg.Record) -> Transaction:
    return Transaction(
        station_id=r[0],
        transaction_id=r[1],
        evse_id=r[2],
        connector_id=r[3],
        id_token=r[4],
        meter_start_wh=r[5],
        started_at=r[6],
        ocpp_version=r[7],
        meter_stop_wh=r[8],
        energy_wh=r[9],
        ended_at=r[10],
        stop_reason=r[11],
        charging_state=r[12],
        seq_no=r[13],
        last_meter_wh=r[14],
        anomalies=tuple(r[15]),
        updated_at=r[16],
    )


def _sample(s: list[Any]) -> MeterSample:
    """A sample of a meter_readings row (orjson wrote the timestamp as ISO 8601)."""
    return MeterSample(datetime.fromisoformat(s[0]), s[1], float(s[2]), s[3], s[4], s[5], s[6])


def _command(r: asyncpg.Record) -> Command:
    return Command(
        id=r[0],
        station_id=r[1],
        name=r[2],
        action=r[3],
        ocpp_version=r[4],
        request=r[5],
        status=CommandStatus(r[6]),
        source=r[7],
        created_at=r[8],
        payload=r[9],
        response=r[10],
        error=r[11],
        expires_at=r[12],
        sent_at=r[13],
        completed_at=r[14],
    )


def _notified(r: asyncpg.Record) -> StationNotified:
    return StationNotified(r[0], r[1], r[2], r[3])


def _outbox_row(r: asyncpg.Record) -> OutboxRow:
    event = Event(str(r[1]), r[2], r[3], r[4], r[5], r[6], r[7])
    return OutboxRow(r[0], event, r[8])


# --- statements -------------------------------------------------------------------

_REGISTER_STATION = """
INSERT INTO stations (id, password_hash, security_profile, registered_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO UPDATE SET
    password_hash = CASE WHEN $5 THEN stations.password_hash ELSE EXCLUDED.password_hash END,
    security_profile = CASE WHEN $6 THEN stations.security_profile
                            ELSE EXCLUDED.security_profile END,
    registered_at = COALESCE(stations.registered_at, EXCLUDED.registered_at)
RETURNING id, password_hash, security_profile, ocpp_version, vendor, model, serial_number,
          firmware_version, boot_info, registered_at, last_boot_at, last_seen_at,
          previous_password_hash, boot_status
"""

# A group-commit batch, one round trip (migration 0008, _batch_document).
_APPLY_BATCH = "SELECT csms_apply_batch($1::jsonb)"

_PUT_ID_TOKEN = """
INSERT INTO id_tokens (id_token, status, type, expires_at, group_id, updated_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id_token) DO UPDATE SET
    status = EXCLUDED.status, type = EXCLUDED.type, expires_at = EXCLUDED.expires_at,
    group_id = EXCLUDED.group_id, updated_at = EXCLUDED.updated_at
RETURNING id_token, status, type, expires_at, group_id, updated_at
"""  # noqa: S105 - SQL text, not a secret


# Both conditions match the partial index outbox_delivered_at; LIMIT bounds the statement.
_PRUNE_OUTBOX = """
DELETE FROM outbox WHERE seq IN (
    SELECT seq FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < $1 LIMIT $2
)
"""

_OUTBOX_PENDING = f"{_SELECT_OUTBOX} WHERE delivered_at IS NULL ORDER BY seq LIMIT $1"
# The skipped ranges are few (a batch's seqs are mostly consecutive).
_OUTBOX_PENDING_SKIPPING = f"""{_SELECT_OUTBOX} WHERE delivered_at IS NULL AND NOT EXISTS (
    SELECT 1 FROM unnest($2::bigint[], $3::bigint[]) AS skip (lo, hi)
    WHERE seq BETWEEN skip.lo AND skip.hi
) ORDER BY seq LIMIT $1"""  # noqa: S608 - constant SQL text

# Only pending rows are read (the partial index outbox_pending), never the history.
_OUTBOX_BACKLOG = """
SELECT (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE delivered_at IS NULL LIMIT $1) AS p),
       (SELECT recorded_at FROM outbox WHERE delivered_at IS NULL ORDER BY seq LIMIT 1)
"""

_SELECT_DEVICE_MODEL = """
SELECT component, component_instance, evse_id, connector_id, variable, variable_instance,
       attribute_type, value, mutability, characteristics
FROM device_model
"""

# A new profile replaces the one with its id, or with its EVSE, purpose and stack level.
_CHARGING_PROFILE_REPLACED = """
DELETE FROM charging_profiles WHERE station_id = $1
    AND (profile_id = $2 OR (evse_id = $3 AND purpose = $4 AND stack_level = $5))
"""

_CHARGING_PROFILE_SET = """
INSERT INTO charging_profiles (station_id, profile_id, evse_id, stack_level, purpose, profile,
                               updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""

_CHARGING_PROFILES_CLEARED = """
DELETE FROM charging_profiles WHERE station_id = $1
    AND ($2::integer IS NULL OR profile_id = $2) AND ($3::integer IS NULL OR evse_id = $3)
    AND ($4::text IS NULL OR purpose = $4) AND ($5::integer IS NULL OR stack_level = $5)
"""

_COMMAND_INSERTED = """
INSERT INTO commands (id, station_id, name, action, ocpp_version, request, payload, status,
                      response, error, source, created_at, expires_at, sent_at, completed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
"""

# station_id and id never change; the WHERE makes the update conditional on the status.
_COMMAND_UPDATED = """
UPDATE commands SET name = $1, action = $2, ocpp_version = $3, request = $4, payload = $5,
    status = $6, response = $7, error = $8, source = $9, created_at = $10, expires_at = $11,
    sent_at = $12, completed_at = $13
WHERE id = $14 AND status = $15
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
