"""Group commit, shared by the SQLite and PostgreSQL adapters.

Many stations' units of work are collected while the previous database
transaction runs, then applied together in one transaction and answered
together: one commit (one fsync) for hundreds of messages, and no caller is
answered before its writes are durable. When idle a unit is flushed at once,
so latency stays one commit.

An adapter with several connections (PostgreSQL) lets a few batches be in
flight at once: the next one is built and sent while the database commits
the previous one, so the event loop does not idle on the fsync. Batches may
then commit out of order; that is safe because a station sends its next
message only after the answer to the previous one, i.e. after its commit, and
the outbox relay reads every pending row by ``seq`` whenever it commits.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog

from csms.core.errors import (
    AlreadyAnsweredError,
    StorageError,
    StorageUnavailableError,
)
from csms.core.events import EventType
from csms.core.ports import (
    CallAnswered,
    ChargingProfilesCleared,
    ChargingProfileSet,
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
    ReservationChanged,
    StationBooted,
    StationNotified,
    StationSeen,
    TransactionChanged,
    TransactionEventRecorded,
    TransactionStarted,
    WriteOp,
)
from csms.telemetry import metrics
from csms.telemetry.outage import DATABASE

log = structlog.get_logger("csms.storage")

U = TypeVar("U")

DEFAULT_MAX_BATCH = 500
# With a batch already in flight, a second one starts only once this many
# units wait: a batch's fixed cost (a round trip, a commit) is worth paying
# twice only under load; at a light load units wait one commit.
OVERLAP_AT_UNITS = 32
# While the database cannot be reached, waiting units are retried after 0.1 s,
# then twice as long each time, at most every second.
OUTAGE_FIRST_RETRY = 0.1
OUTAGE_RETRY_CAP = 1.0


class UnitsRefused(Exception):
    """``apply_batch`` applied nothing because these units (by position in the
    batch) cannot be applied; each fails with its exception and the others
    are applied again, as one batch. Raised for a resent CALL's unit
    (``AlreadyAnsweredError``), so that one resend in a reconnect storm does
    not make its whole batch commit unit by unit."""

    def __init__(self, refused: dict[int, Exception]) -> None:
        super().__init__(f"{len(refused)} units refused")
        self.refused = refused


def refuse_answered(
    units: Sequence[Sequence[WriteOp]], answers: dict[tuple[str, str], dict[str, Any]]
) -> UnitsRefused:
    """The units whose ``CallAnswered`` (by station and action) found ``answers``
    stored for their CALL, each refused with ``AlreadyAnsweredError``."""
    refused: dict[int, Exception] = {}
    for index, unit in enumerate(units):
        for op in unit:
            if isinstance(op, CallAnswered):
                answer = answers.get((op.station_id, op.action))
                if answer is not None:
                    refused[index] = AlreadyAnsweredError(op.station_id, op.action, answer)
    return UnitsRefused(refused)


class GroupCommitter(Generic[U]):
    """Apply units in batches through ``apply_batch``: one flush at a time, or
    up to ``max_in_flight`` once ``overlap_at`` units wait (see the module doc).

    ``apply_batch(units)`` must apply all units in ONE database transaction
    and raise ``StorageError`` when that transaction did not commit. After a
    failed batch each unit is retried alone, so a bad unit fails only its
    own caller.
    """

    def __init__(
        self,
        apply_batch: Callable[[Sequence[U]], Awaitable[None]],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_in_flight: int = 1,
        overlap_at: int = OVERLAP_AT_UNITS,
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be at least 1")
        self._apply_batch = apply_batch
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._overlap_at = overlap_at
        self._in_flight: set[asyncio.Task[None]] = set()
        self._pending: collections.deque[tuple[U, asyncio.Future[None]]] = collections.deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._outage_wait = 0.0

    async def submit(self, unit: U) -> None:
        """Return once ``unit`` is committed; raise ``StorageError`` if it was not.

        A caller cancelled while waiting does not withdraw its unit: it may
        still commit, as a statement already sent to a database would.
        """
        if self._closing:
            raise StorageError("cannot commit: the storage is closed")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="csms-group-commit")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((unit, future))
        self._wakeup.set()
        await future

    async def close(self) -> None:
        """Flush every pending unit, then stop the flush loop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        in_flight = self._in_flight
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._pending:
                    busy = len(in_flight)
                    if busy >= self._max_in_flight or (
                        busy and len(self._pending) < self._overlap_at
                    ):
                        break  # a finished flush or a new unit wakes us
                    count = min(len(self._pending), self._max_batch)
                    batch = [self._pending.popleft() for _ in range(count)]
                    if self._max_in_flight == 1:
                        await self._flush(batch)  # the serial case needs no task
                        continue
                    flush = asyncio.create_task(self._flush(batch), name="csms-group-flush")
                    in_flight.add(flush)
                    flush.add_done_callback(self._flushed)
                if self._closing and not self._pending and not in_flight:
                    return
        finally:
            # Only reached with units left when the loop was cancelled.
            self._closing = True
            for flush in list(in_flight):
                flush.cancel()
            _fail_all(self._pending, StorageError("the storage closed before the write was made"))
            self._pending.clear()

    def _flushed(self, flush: asyncio.Task[None]) -> None:
        self._in_flight.discard(flush)
        self._wakeup.set()

    def wait_out_outages(self, seconds: float) -> None:
        """Let a unit wait up to ``seconds`` for a database that cannot be
        reached (0: fail it at once), retried with the others waiting."""
        self._outage_wait = seconds

    async def _flush(self, batch: list[tuple[U, asyncio.Future[None]]]) -> None:
        try:
            outage = await self._attempt(batch)
            if outage is not None:
                await self._ride_out(batch, outage)
        finally:
            # Only reached with futures open when cancelled mid-flush: nobody may wait forever.
            _fail_all(batch, StorageError("the storage closed before the write was confirmed"))

    async def _attempt(
        self, batch: list[tuple[U, asyncio.Future[None]]]
    ) -> StorageUnavailableError | None:
        """Apply ``batch`` and settle its callers; or, when nothing was applied
        because the database could not be reached and outages are waited
        out, leave them waiting and return the error."""
        started = time.perf_counter()
        try:
            await self._apply_batch([unit for unit, _ in batch])
        except UnitsRefused as refusal:
            for index, exc in refusal.refused.items():
                _fail_all([batch[index]], exc)
            rest = [pair for index, pair in enumerate(batch) if index not in refusal.refused]
            if rest:
                return await self._attempt(rest)
        except StorageUnavailableError as exc:
            # Retrying unit by unit cannot help when the database is gone; waiting
            # may. A batch whose connection broke mid-commit may have committed:
            # applied again, its events' unique ids and its CALLs' recorded
            # answers (ADR 0012) keep it from booking anything twice.
            if DATABASE.failed():
                log.warning("database_unavailable", error=str(exc))
            else:
                log.debug("database_still_unavailable", error=str(exc), retry=DATABASE.retries)
            if self._outage_wait > 0:
                return exc
            _fail_all(batch, exc)
        except Exception as exc:
            # Deliberately broad: a constraint failure or an adapter bug. Whatever
            # it is, it must reach the callers and never end this loop.
            log.debug("batch_failed", error=repr(exc), units=len(batch))
            if len(batch) == 1:
                _fail_all(batch, exc)
            else:
                await self._retry_alone(batch)
        else:
            metrics.STORAGE_COMMIT_SECONDS.observe(time.perf_counter() - started)
            metrics.STORAGE_BATCH_UNITS.observe(len(batch))
            if DATABASE.down:
                log.info("database_available", **(DATABASE.recovered() or {}))
            _succeed_all(batch)
        return None

    async def _ride_out(
        self, batch: list[tuple[U, asyncio.Future[None]]], outage: StorageUnavailableError
    ) -> None:
        """Retry until the database takes the batch, each caller waiting at most
        the outage wait; the units submitted meanwhile join the retry (one
        attempt for all of them, not one per batch). ``batch`` grows in place,
        so that ``_flush`` fails whatever is left if it is cancelled."""
        loop = asyncio.get_running_loop()
        give_up = {id(future): loop.time() + self._outage_wait for _, future in batch}
        delay = OUTAGE_FIRST_RETRY
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, OUTAGE_RETRY_CAP)
            now = loop.time()
            while self._pending and len(batch) < self._max_batch:
                pair = self._pending.popleft()
                batch.append(pair)
                give_up[id(pair[1])] = now + self._outage_wait
            waiting = [pair for pair in batch if not pair[1].done()]
            _fail_all([pair for pair in waiting if give_up[id(pair[1])] <= now], outage)
            live = [pair for pair in waiting if not pair[1].done()]
            if not live:
                return
            again = await self._attempt(live)
            if again is None:
                return
            outage = again

    async def _retry_alone(self, batch: list[tuple[U, asyncio.Future[None]]]) -> None:
        """Apply each unit in its own transaction, so a bad one fails only its
        caller; those the database could not take wait out the outage together."""
        stranded: list[tuple[U, asyncio.Future[None]]] = []
        outage: StorageUnavailableError | None = None
        for pair in batch:
            refused = await self._attempt([pair])
            if refused is not None:
                stranded.append(pair)
                outage = refused
        if outage is not None:
            await self._ride_out(stranded, outage)


K = TypeVar("K")
V = TypeVar("V")


class LookupBatcher(Generic[K, V]):
    """Concurrent lookups of one key each, answered by one query for many.

    While a query runs, the keys asked for meanwhile gather and go together
    in the next one: in a reconnect storm thousands of handshakes each need
    their station's row, and one query per handshake would queue them behind
    the pool's few connections (docs/benchmarks.md). When idle a lookup is
    one query, as before.
    """

    def __init__(
        self,
        fetch: Callable[[Sequence[K]], Awaitable[dict[K, V]]],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        self._fetch = fetch
        self._max_batch = max_batch
        self._waiting: collections.deque[tuple[K, asyncio.Future[V | None]]] = collections.deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def get(self, key: K) -> V | None:
        """The value of ``key``, None if there is none; raises what the query raised."""
        if self._closed:
            raise StorageError("cannot look up: the storage is closed")
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="csms-lookup-batch")
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((key, future))
        self._wakeup.set()
        return await future

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        while self._waiting:
            _, future = self._waiting.popleft()
            if not future.done():
                future.set_exception(StorageError("the storage closed before the lookup"))

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._waiting:
                count = min(len(self._waiting), self._max_batch)
                batch = [self._waiting.popleft() for _ in range(count)]
                try:
                    found = await self._fetch(list(dict.fromkeys(key for key, _ in batch)))
                except Exception as exc:  # broad: whatever it is belongs to the callers
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                except BaseException:
                    self._waiting.extendleft(reversed(batch))  # close() fails them
                    raise
                for key, future in batch:
                    if not future.done():
                        future.set_result(found.get(key))


def _succeed_all(batch: Iterable[tuple[object, asyncio.Future[None]]]) -> None:
    for _, future in batch:
        if not future.done():
            future.set_result(None)


def _fail_all(batch: Iterable[tuple[object, asyncio.Future[None]]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)


# --- ops grouped by kind ------------------------------------------------------


@dataclass(slots=True)
class GroupedOps:
    """The ops of a batch by kind, each list in submission order.

    Adapters apply the lists in field order, one statement each (SQLite an
    ``executemany``, PostgreSQL a set-based statement in ``csms_apply_batch``):
    that order lets a unit start a transaction and change it, and keeps the
    outbox ``seq`` order equal to the unit order. Answers go first: a resent
    CALL's unit is refused before anything else of the batch runs.
    """

    answers: list[CallAnswered] = field(default_factory=list)
    booted: list[StationBooted] = field(default_factory=list)
    seen: list[StationSeen] = field(default_factory=list)
    started: list[TransactionStarted] = field(default_factory=list)
    changed: list[TransactionChanged] = field(default_factory=list)
    statuses: list[ConnectorStatusChanged] = field(default_factory=list)
    meter_samples: list[MeterSamplesRecorded] = field(default_factory=list)
    notifications: list[StationNotified] = field(default_factory=list)
    transaction_events: list[TransactionEventRecorded] = field(default_factory=list)
    device_model: list[DeviceModelReported] = field(default_factory=list)
    device_model_values: list[DeviceModelValuesSet] = field(default_factory=list)
    configuration: list[ConfigurationChanged] = field(default_factory=list)
    local_list_versions: list[LocalListVersionSet] = field(default_factory=list)
    reservations: list[ReservationChanged] = field(default_factory=list)
    # Rare ops whose order across units matters: applied one by one, in order.
    charging_profiles: list[ChargingProfileSet | ChargingProfilesCleared] = field(
        default_factory=list
    )
    commands: list[CommandRecorded] = field(default_factory=list)
    heartbeat_intervals: list[HeartbeatIntervalSet] = field(default_factory=list)
    # Once per connection: a close may have to find its row (must_exist).
    connections: list[ConnectionOpened | ConnectionClosed] = field(default_factory=list)
    events: list[EventAppended] = field(default_factory=list)


def record_committed(ops: GroupedOps) -> None:
    """Count what a committed batch reports: the energy of the sessions it ended."""
    for op in ops.events:
        if op.event.type == EventType.TRANSACTION_ENDED:
            energy = op.event.data.get("energy_wh")
            if isinstance(energy, int | float) and energy > 0:
                metrics.ENERGY_DELIVERED.inc(energy)


def group_ops(units: Iterable[Sequence[WriteOp]]) -> GroupedOps:
    """Sort the ops of ``units`` by kind; ``StationSeen`` keeps the latest per station."""
    grouped = GroupedOps()
    latest_seen: dict[str, StationSeen] = {}
    for unit in units:
        for op in unit:
            match op:
                case StationSeen():
                    known = latest_seen.get(op.station_id)
                    if known is None or op.at >= known.at:
                        latest_seen[op.station_id] = op
                case StationBooted():
                    grouped.booted.append(op)
                case TransactionStarted():
                    grouped.started.append(op)
                case TransactionChanged():
                    grouped.changed.append(op)
                case ConnectorStatusChanged():
                    grouped.statuses.append(op)
                case MeterSamplesRecorded():
                    grouped.meter_samples.append(op)
                case StationNotified():
                    grouped.notifications.append(op)
                case TransactionEventRecorded():
                    grouped.transaction_events.append(op)
                case DeviceModelReported():
                    grouped.device_model.append(op)
                case DeviceModelValuesSet():
                    grouped.device_model_values.append(op)
                case ConfigurationChanged():
                    grouped.configuration.append(op)
                case LocalListVersionSet():
                    grouped.local_list_versions.append(op)
                case ReservationChanged():
                    grouped.reservations.append(op)
                case ChargingProfileSet() | ChargingProfilesCleared():
                    grouped.charging_profiles.append(op)
                case CommandRecorded():
                    grouped.commands.append(op)
                case HeartbeatIntervalSet():
                    grouped.heartbeat_intervals.append(op)
                case ConnectionOpened() | ConnectionClosed():
                    grouped.connections.append(op)
                case EventAppended():
                    grouped.events.append(op)
                case CallAnswered():
                    grouped.answers.append(op)
    grouped.seen = list(latest_seen.values())
    return grouped
