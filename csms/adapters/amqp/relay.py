"""The outbox relay: publishes committed events to RabbitMQ, at least once, in order.

One loop per process. It connects to the broker (exponential backoff,
capped and jittered, through outages and restarts of either side), then
competes for the relay role (``OutboxStore.outbox_lead``): the leader publishes,
the others stay connected as warm standbys and retry every few seconds.

The leader reads pending rows oldest first, publishes a batch with every
confirm in flight, marks the confirmed prefix delivered and goes on. Behind
a full batch (a backlog) it sends a second one before the first is
confirmed, reading it without the rows in flight (ADR 0007). On a failed
batch it drops the link and resends from the first unconfirmed row:
duplicates, and a station's events are first delivered in order unless the
broker refused one and accepted a later one (a nack mid-batch; ADR 0002).
It wakes when this process commits events (``OutboxStore.outbox_subscribe``),
lingers briefly after a batch that emptied the outbox, and polls for those
of other processes.

A second task refreshes the backlog gauges every few seconds, broker or
not, and, on the leader, prunes delivered rows past their retention in
bounded batches.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from csms.adapters.amqp.publisher import BrokerError, Connect, Published, Publisher
from csms.core.errors import StorageError
from csms.core.ports import Clock, OutboxRow, OutboxStore
from csms.core.waiting import wait_at_most
from csms.telemetry import metrics
from csms.telemetry.outage import Outage

log = structlog.get_logger("csms.relay")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential delays with "equal jitter": in [d/2, d], d = min(cap, base * 2**attempt).

    Jitter spreads the reconnects of many processes after a broker restart;
    the lower half bound keeps a delay from collapsing to nothing.
    """

    base: float = 0.25
    cap: float = 5.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap, self.base * 2 ** min(attempt, 32))
        return self.rng.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True, slots=True)
class RelayTimings:
    """How often the relay does what (seconds); tests shorten them."""

    poll: float = 0.1  # look for other processes' events this often when idle
    # After a batch that emptied the outbox, gather for this long before the next
    # read: fewer, larger rounds (each a read, a confirm wait and a mark) under
    # a steady trickle, for at most this much more lag.
    linger: float = 0.02
    lead_check: float = 1.0  # a leader confirms its role this often
    standby_retry: float = 2.0  # a standby tries to take the role this often
    stats: float = 5.0  # refresh the backlog gauges this often
    prune: float = 60.0  # prune delivered rows this often
    healthy_session: float = 10.0  # a broker session this long resets the backoff


# Batches on the wire at once. A second goes out while the first awaits its
# confirms, behind a full one only: under a backlog the relay is then bound
# by its CPU, not by the broker's confirm latency (docs/benchmarks.md).
PIPELINE_DEPTH = 2


@dataclass(slots=True)
class _InFlight:
    rows: Sequence[OutboxRow]
    confirms: asyncio.Future[Published]
    started: float
    confirmed_after: float = 0.0  # s from sending to the broker's last confirm

    def _confirmed(self, _: object) -> None:
        self.confirmed_after = time.perf_counter() - self.started


async def _send(publisher: Publisher, rows: Sequence[OutboxRow]) -> _InFlight:
    started = time.perf_counter()
    sent = _InFlight(rows, asyncio.ensure_future(await publisher.send(rows)), started)
    # Timed when the confirms arrive: a batch behind another is settled later.
    sent.confirms.add_done_callback(sent._confirmed)
    return sent


async def _drop(in_flight: collections.deque[_InFlight]) -> None:
    """Forget batches on the wire: left unmarked, they are read and sent again."""
    for sent in in_flight:
        sent.confirms.cancel()
    await asyncio.gather(*(sent.confirms for sent in in_flight), return_exceptions=True)
    in_flight.clear()


def _seq_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Inclusive ranges covering ``seqs``, merged."""
    ranges: list[tuple[int, int]] = []
    for seq in sorted(seqs):
        if ranges and seq <= ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


class OutboxRelay:
    """Publishes the outbox through ``connect``'s links; ``start()``, later ``stop()``."""

    def __init__(
        self,
        storage: OutboxStore,
        connect: Connect,
        *,
        retention: timedelta,
        batch_size: int = 2000,
        prune_batch: int = 1_000,
        timings: RelayTimings | None = None,
        backoff: Backoff | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._storage = storage
        self._connect = connect
        self._retention = retention
        self._batch_size = batch_size
        self._prune_batch = prune_batch
        self._timings = timings or RelayTimings()
        self._backoff = backoff or Backoff()
        self._clock = clock
        # _wakeup: a commit, a lost link or stop(); _alarm: a lost link or stop() only,
        # so that commits wake neither a standby nor a backoff.
        self._wakeup = asyncio.Event()
        self._alarm = asyncio.Event()
        self._publisher: Publisher | None = None
        self._leading = False
        self._next_lead_check = 0.0
        self._stopping = asyncio.Event()  # not a bool: it flips across awaits, by stop()
        self._run_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._outage = Outage()

    @property
    def broker_state(self) -> str:
        """ "up" while a broker link is open (leader or standby), else "down"."""
        publisher = self._publisher
        return "up" if publisher is not None and publisher.is_open else "down"

    @property
    def leading(self) -> bool:
        return self._leading

    def start(self) -> None:
        self._storage.outbox_subscribe(self._wakeup.set)
        self._run_task = asyncio.create_task(self._run(), name="csms-outbox-relay")
        self._watch_task = asyncio.create_task(self._watch(), name="csms-outbox-watch")

    async def stop(self, drain_timeout: float = 3.0) -> None:
        """Publish what is pending for up to ``drain_timeout`` s (if leading), then stop."""
        self._stopping.set()
        self._alarm_all()
        run, watch = self._run_task, self._watch_task
        if watch is not None:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        if run is not None:
            if self.leading and self.broker_state == "up":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(run), drain_timeout)
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
        await self._resign()

    # --- publishing ------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            began = loop.time()
            try:
                await self._session()
            except BrokerError as exc:
                self._broker_failed("relay_broker_lost", str(exc))
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._stopping.is_set() or (task is not None and task.cancelling()):
                    raise
                # A client library failing a future with CancelledError on a lost link.
                self._broker_failed("relay_broker_lost", "the broker link was cancelled")
            except Exception:
                # Deliberately broad: a bug must not end publishing for the life
                # of the process; the backoff below keeps it from spinning.
                log.exception("relay_failed")
            if loop.time() - began >= self._timings.healthy_session:
                attempt = 0
            self._alarm.clear()
            if self._stopping.is_set():
                return
            await wait_at_most(self._alarm, self._backoff.delay(attempt))
            attempt += 1

    async def _session(self) -> None:
        """One broker connection: serve until it fails, or until drained when stopping."""
        try:
            self._publisher = await self._connect(self._alarm_all)
        except BrokerError as exc:
            self._broker_failed("relay_broker_unavailable", str(exc))
            return
        try:
            outage = self._outage.recovered()
            if outage is None:
                log.info("relay_connected")
            else:
                log.info("relay_connected", **outage, events_waiting=await self._events_waiting())
            await self._serve(self._publisher)
        finally:
            await self._disconnect()

    async def _serve(self, publisher: Publisher) -> None:
        """Publish while the link is open; return once drained when stopping."""
        storage_failures = 0
        in_flight: collections.deque[_InFlight] = collections.deque()
        try:
            while True:
                self._wakeup.clear()
                self._alarm.clear()
                if not publisher.is_open:
                    raise BrokerError("the broker closed the connection")
                try:
                    if not await self._lead():
                        if in_flight:  # finish what is on the wire
                            await self._settle(in_flight.popleft())
                            continue
                        if self._stopping.is_set():
                            return
                        await wait_at_most(self._alarm, self._timings.standby_retry)
                        continue
                    if self._may_send(in_flight):
                        skip = _seq_ranges(row.seq for sent in in_flight for row in sent.rows)
                        rows = await self._storage.outbox_pending(self._batch_size, skip)
                        if rows:
                            in_flight.append(await _send(publisher, rows))
                            continue
                    if in_flight:
                        settled = in_flight.popleft()
                        await self._settle(settled)
                        storage_failures = 0
                        if (
                            not in_flight
                            and len(settled.rows) < self._batch_size
                            and not self._stopping.is_set()
                        ):
                            await wait_at_most(self._alarm, self._timings.linger)
                        continue
                except StorageError as exc:
                    log.warning("relay_storage_failed", error=str(exc))
                    await _drop(in_flight)  # unmarked: read and sent again
                    if self._stopping.is_set():
                        return
                    await wait_at_most(self._alarm, self._backoff.delay(storage_failures))
                    storage_failures += 1
                    continue
                if self._stopping.is_set():
                    return
                await wait_at_most(self._wakeup, self._timings.poll)
        finally:
            await _drop(in_flight)

    def _broker_failed(self, event: str, error: str) -> None:
        """A warning for the failure that begins an outage; its retries at debug."""
        if self._outage.failed():
            log.warning(event, error=error)
        else:
            log.debug(event, error=error, retry=self._outage.retries)

    async def _events_waiting(self) -> int | None:
        try:
            return (await self._storage.outbox_backlog()).pending
        except StorageError:
            return None  # the database is away too; the next line will say so

    def _may_send(self, in_flight: collections.deque[_InFlight]) -> bool:
        """A batch while none is out; a second one only behind a full one (a backlog)."""
        if not in_flight:
            return True
        return len(in_flight) < PIPELINE_DEPTH and len(in_flight[-1].rows) == self._batch_size

    async def _settle(self, sent: _InFlight) -> None:
        """Wait for a batch's confirms, mark the confirmed prefix delivered; raise
        BrokerError (the link is dropped, the rest sent again) if not all were."""
        rows = sent.rows
        outcome = await sent.confirms
        confirmed = rows[: outcome.confirmed]
        if confirmed:
            await self._storage.outbox_mark_delivered([r.seq for r in confirmed], self._clock())
            for kind, count in collections.Counter(r.event.type for r in confirmed).items():
                metrics.EVENTS_PUBLISHED.labels(kind).inc(count)
        if outcome.error is None:
            metrics.EVENT_CONFIRM_SECONDS.observe(sent.confirmed_after)
            return
        unconfirmed = len(rows) - outcome.confirmed
        metrics.EVENT_PUBLISH_FAILURES.inc(unconfirmed)
        raise BrokerError(
            f"{unconfirmed} of {len(rows)} events not confirmed, resending from seq "
            f"{rows[outcome.confirmed].seq}: {outcome.error}"
        )

    async def _lead(self) -> bool:
        """Whether this relay publishes now; asks the storage at most every lead_check s."""
        now = asyncio.get_running_loop().time()
        if self._leading and now < self._next_lead_check:
            return True
        leading = await self._storage.outbox_lead()
        self._next_lead_check = now + self._timings.lead_check
        self._set_leading(leading)
        return leading

    def _set_leading(self, leading: bool, lost: str = "relay_standby") -> None:
        if leading != self._leading:
            log.info("relay_leading" if leading else lost)
        self._leading = leading
        metrics.OUTBOX_RELAY_LEADER.set(1 if leading else 0)

    async def _disconnect(self) -> None:
        # A relay without a broker link must not keep the role from one that has one.
        publisher, self._publisher = self._publisher, None
        await self._resign()
        if publisher is not None:
            await publisher.close()

    async def _resign(self) -> None:
        was_leading = self._leading
        self._set_leading(False, lost="relay_resigned")
        if was_leading:
            try:
                await self._storage.outbox_resign()
            except StorageError as exc:
                log.warning("relay_resign_failed", error=str(exc))

    def _alarm_all(self) -> None:
        self._alarm.set()
        self._wakeup.set()

    # --- housekeeping ----------------------------------------------------------

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        next_prune = loop.time() + self._timings.stats
        while True:
            try:
                await self._refresh_backlog()
                if self._leading and loop.time() >= next_prune:
                    await self._prune()
                    next_prune = loop.time() + self._timings.prune
            except StorageError as exc:
                log.warning("relay_housekeeping_failed", error=str(exc))
            except Exception:
                log.exception("relay_housekeeping_failed")  # broad: as in _run
            await asyncio.sleep(self._timings.stats)

    async def _refresh_backlog(self) -> None:
        backlog = await self._storage.outbox_backlog()
        metrics.OUTBOX_PENDING.set(backlog.pending)
        oldest = backlog.oldest_pending_at
        age = 0.0 if oldest is None else (self._clock() - oldest).total_seconds()
        metrics.OUTBOX_OLDEST_PENDING_SECONDS.set(max(0.0, age))

    async def _prune(self) -> int:
        """Delete delivered rows past the retention, one bounded batch at a time."""
        cutoff = self._clock() - self._retention
        total = 0
        while True:
            deleted = await self._storage.outbox_prune(cutoff, self._prune_batch)
            total += deleted
            if deleted < self._prune_batch:
                break
            await asyncio.sleep(0.01)  # let group commits have the database in between
        if total:
            log.info("relay_pruned", deleted=total, delivered_before=cutoff.isoformat())
        return total
