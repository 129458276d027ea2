"""The outbox relay against a real database and a scripted broker link (or the real broker)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
import structlog

from csms.adapters.amqp.publisher import AmqpPublisher, BrokerError, Published, Publisher
from csms.adapters.amqp.relay import Backoff, OutboxRelay, RelayTimings
from csms.adapters.storage import open_storage
from csms.core.events import Event
from csms.core.ports import EventAppended, OutboxRow, Storage
from tests.integration.broker import EventTap, first_deliveries
from tests.integration.polling import poll_until

FAST = RelayTimings(
    poll=0.02, lead_check=0.05, standby_retry=0.1, stats=0.05, prune=0.05, healthy_session=5
)
QUICK_BACKOFF = Backoff(base=0.01, cap=0.05)


def event(station_id: str, n: int, at: datetime | None = None) -> Event:
    moment = at or datetime.now(UTC)
    return Event.new("meter.values", station_id, "1.6", moment, moment, {"n": n})


class ScriptedLink:
    """A broker link that confirms, or fails a batch from a scripted position on."""

    def __init__(self, broker: ScriptedBroker, on_close: Callable[[], None]) -> None:
        self._broker = broker
        self._on_close = on_close
        self.is_open = True

    async def send(self, rows: Sequence[OutboxRow]) -> Awaitable[Published]:
        if self._broker.crashes:
            self._broker.crashes -= 1
            raise RuntimeError("scripted: a bug in the link")
        self._broker.batches.append(len(rows))
        self._broker.unconfirmed += 1
        self._broker.most_unconfirmed = max(self._broker.most_unconfirmed, self._broker.unconfirmed)
        fail_at = self._broker.failures.pop(0) if self._broker.failures else None
        # Worst case for order: every row sent reaches consumers, also those of a
        # failed batch and of batches sent behind it.
        self._broker.delivered.extend(row.event for row in rows)
        if self._broker.on_send is not None:
            await self._broker.on_send()
        return self._confirm(len(rows), fail_at)

    async def _confirm(self, count: int, fail_at: int | None) -> Published:
        try:
            await asyncio.sleep(self._broker.publish_delay)
        finally:
            self._broker.unconfirmed -= 1
        if fail_at is None:
            return Published(count)
        if self.is_open:
            self.is_open = False
            self._on_close()
        return Published(fail_at, "scripted failure")

    async def close(self) -> None:
        self.is_open = False


class ScriptedBroker:
    """Hands out ScriptedLinks; ``failures`` are the positions at which coming batches fail."""

    def __init__(self, failures: Sequence[int] = (), publish_delay: float = 0.0) -> None:
        self.failures = list(failures)
        self.publish_delay = publish_delay
        self.reachable = True
        self.crashes = 0  # how many publish calls raise an unexpected error
        self.delivered: list[Event] = []
        self.batches: list[int] = []  # the size of each batch sent
        self.on_send: Callable[[], Awaitable[None]] | None = None  # runs as a batch is sent
        self.unconfirmed = 0  # batches sent whose confirms are still to come
        self.most_unconfirmed = 0
        self.connects = 0

    async def connect(self, on_close: Callable[[], None]) -> Publisher:
        if not self.reachable:
            raise BrokerError("scripted: the broker is unreachable")
        self.connects += 1
        return ScriptedLink(self, on_close)


@pytest.fixture
async def relays(storage: Storage) -> AsyncIterator[list[OutboxRelay]]:
    """Relays a test starts; stopped afterwards."""
    started: list[OutboxRelay] = []
    yield started
    for relay in started:
        await relay.stop(0)


def start_relay(
    relays: list[OutboxRelay], storage: Storage, broker: ScriptedBroker, **options: object
) -> OutboxRelay:
    settings: dict[str, object] = {
        "retention": timedelta(hours=1),
        "timings": FAST,
        "backoff": QUICK_BACKOFF,
        **options,
    }
    relay = OutboxRelay(storage, broker.connect, **settings)  # type: ignore[arg-type]
    relay.start()
    relays.append(relay)
    return relay


async def wait_until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    await poll_until(predicate, within=within, every=0.01)


async def drained(storage: Storage, within: float = 5.0) -> None:
    async def nothing_pending() -> bool:
        return (await storage.outbox_backlog()).pending == 0

    await poll_until(nothing_pending, within=within)


class TestOrdering:
    async def test_failed_batches_resend_from_the_first_unconfirmed_row(
        self, storage: Storage, relays: list[OutboxRelay]
    ) -> None:
        """After failures mid-batch every event arrives and no station's first delivery reorders."""
        events = [event(f"CP-{n % 3}", n) for n in range(40)]
        await storage.commit([EventAppended(e) for e in events])
        broker = ScriptedBroker(failures=[7, 0, 3])
        start_relay(relays, storage, broker, batch_size=10)
        await drained(storage)
        # Each link fails in its first batch; the one sent behind it (a full batch
        # goes out before its confirms) takes the next scripted failure with it.
        assert broker.connects == 3
        firsts: dict[str, list[Event]] = defaultdict(list)
        seen: set[str] = set()
        for e in broker.delivered:
            if e.event_id not in seen:
                seen.add(e.event_id)
                firsts[e.station_id].append(e)
        for station, delivered in firsts.items():
            assert delivered == [e for e in events if e.station_id == station]
        assert seen == {e.event_id for e in events}

    async def test_events_of_one_station_keep_their_order_through_the_real_broker(
        self, storage: Storage, relays: list[OutboxRelay], amqp_url: str
    ) -> None:
        """Two thousand events of one station, in batches of 500 (a backlog, so the
        relay may have two on the wire at once), arrive in seq order."""
        tap = EventTap(amqp_url)
        await tap.open()
        try:
            events = [event("CP-ORDER", n) for n in range(2_000)]
            await storage.commit([EventAppended(e) for e in events])

            async def connect(on_close: Callable[[], None]) -> Publisher:
                return await AmqpPublisher.connect(amqp_url, tap.exchange, on_close)

            relay = OutboxRelay(
                storage, connect, retention=timedelta(hours=1), timings=FAST, batch_size=500
            )
            relay.start()
            relays.append(relay)
            received = await tap.collect(lambda got: len(got) >= len(events), within=20)
        finally:
            await tap.close()
        assert [m.body["data"]["n"] for m in first_deliveries(received)] == list(range(2_000))


class TestPipelining:
    async def test_a_backlog_goes_out_two_batches_at_a_time_in_order(
        self, storage: Storage, relays: list[OutboxRelay]
    ) -> None:
        """Behind a full batch the next one is sent before the first is confirmed;
        every event is published once, in seq order, and marked delivered."""
        events = [event(f"CP-{n % 4}", n) for n in range(45)]
        await storage.commit([EventAppended(e) for e in events])
        broker = ScriptedBroker(publish_delay=0.05)
        start_relay(relays, storage, broker, batch_size=10)
        await drained(storage)
        assert broker.delivered == events
        assert broker.batches == [10, 10, 10, 10, 5]
        assert broker.most_unconfirmed == 2  # the next batch went before the confirms
        assert (await storage.outbox_stats()).delivered == 45

    async def test_a_trickle_goes_one_batch_at_a_time(
        self, storage: Storage, relays: list[OutboxRelay]
    ) -> None:
        """A batch short of full is confirmed before the next read: no second batch
        for the few events that arrive meanwhile."""
        broker = ScriptedBroker(publish_delay=0.1)

        async def more_while_the_first_is_out() -> None:
            broker.on_send = None
            await storage.commit([EventAppended(event("CP-1", n)) for n in range(3, 5)])

        broker.on_send = more_while_the_first_is_out
        relay = start_relay(relays, storage, broker, batch_size=10)
        await wait_until(lambda: relay.leading)
        await storage.commit([EventAppended(event("CP-1", n)) for n in range(3)])
        await drained(storage)
        assert broker.batches == [3, 2]
        assert broker.most_unconfirmed == 1
        assert [e.data["n"] for e in broker.delivered] == [0, 1, 2, 3, 4]

    async def test_after_emptying_the_outbox_the_relay_gathers_before_reading_again(
        self, storage: Storage, relays: list[OutboxRelay]
    ) -> None:
        """Events committed one by one during the linger go out as one batch."""
        broker = ScriptedBroker()
        timings = RelayTimings(poll=10.0, lead_check=10.0, linger=0.5)
        relay = start_relay(relays, storage, broker, timings=timings, batch_size=10)
        await wait_until(lambda: relay.leading)
        await storage.commit([EventAppended(event("CP-1", 0))])
        await wait_until(lambda: len(broker.batches) == 1)
        for n in range(1, 4):
            await storage.commit([EventAppended(event("CP-1", n))])
            await asyncio.sleep(0.05)
        await drained(storage)
        assert broker.batches == [1, 3]


class TestWakeUp:
    async def test_a_commit_wakes_the_relay_without_waiting_for_the_poll(
        self, storage: Storage, relays: list[OutboxRelay]
    ) -> None:
        """With a 10 s poll, an event committed in-process is published within a moment."""
        broker = ScriptedBroker()
        relay = start_relay(
            relays, storage, broker, timings=RelayTimings(poll=10.0, lead_check=10.0)
        )
        await wait_until(lambda: relay.leading)
        await asyncio.sleep(0.1)  # the relay is idle now, in its 10 s poll
        started = time.monotonic()
        await storage.commit([EventAppended(event("CP-1", 1))])
        await wait_until(lambda: len(broker.delivered) == 1, within=2)
        assert time.monotonic() - started < 0.5


class TestLeadership:
    async def test_one_of_two_relays_publishes_and_the_other_takes_over_when_it_stops(
        self, storage: Storage, database_url: str, relays: list[OutboxRelay]
    ) -> None:
        """Two processes' relays on one database: one leads; its stop hands over to the other."""
        other_storage = await open_storage(database_url)
        try:
            first, second = ScriptedBroker(), ScriptedBroker()
            leader = start_relay(relays, storage, first)
            await wait_until(lambda: leader.leading)
            standby = start_relay(relays, other_storage, second)
            await wait_until(lambda: standby.broker_state == "up")
            await storage.commit([EventAppended(event("CP-1", n)) for n in range(5)])
            await drained(storage)
            await asyncio.sleep(0.3)  # a few standby retries
            assert (len(first.delivered), len(second.delivered)) == (5, 0)
            assert not standby.leading

            await leader.stop(1.0)
            await wait_until(lambda: standby.leading, within=2)
            await other_storage.commit([EventAppended(event("CP-2", n)) for n in range(3)])
            await drained(other_storage)
            assert [e.station_id for e in second.delivered] == ["CP-2"] * 3
        finally:
            await standby.stop(0)
            await other_storage.close()

    async def test_a_relay_without_broker_gives_the_role_up(
        self, storage: Storage, database_url: str, relays: list[OutboxRelay]
    ) -> None:
        """A leader whose broker link fails resigns, so a relay with a working link takes over."""
        other_storage = await open_storage(database_url)
        try:
            healthy = ScriptedBroker()
            flaky = ScriptedBroker(failures=[0])
            leader = start_relay(relays, storage, flaky)
            await wait_until(lambda: leader.leading)
            flaky.reachable = False  # its first batch fails, and so does every reconnect
            standby = start_relay(relays, other_storage, healthy)
            await storage.commit([EventAppended(event("CP-1", 1))])
            await drained(storage)
            assert [e.station_id for e in healthy.delivered] == ["CP-1"]
            assert standby.leading
            assert not leader.leading
        finally:
            await other_storage.close()


class TestPruning:
    async def test_delivered_rows_past_retention_go_in_bounded_batches(
        self, storage: Storage, relays: list[OutboxRelay]
    ) -> None:
        """Only rows delivered before now - retention are deleted, however many there are."""
        now = datetime.now(UTC)
        old = [event("CP-1", n) for n in range(25)]
        recent = [event("CP-1", 100 + n) for n in range(2)]
        await storage.commit([EventAppended(e) for e in old + recent])
        rows = await storage.outbox_pending(100)
        await storage.outbox_mark_delivered([r.seq for r in rows[:25]], now - timedelta(hours=2))
        await storage.outbox_mark_delivered([r.seq for r in rows[25:]], now - timedelta(minutes=5))
        pending = event("CP-1", 999)
        # The link never confirms: the relay stays leader, the row stays pending.
        broker = ScriptedBroker(publish_delay=60)
        await storage.commit([EventAppended(pending)])
        start_relay(relays, storage, broker, prune_batch=4)

        async def remaining() -> list[Event]:
            return [r.event for r in await storage.outbox_list(100, pending_only=False)]

        async def pruned() -> bool:
            return len(await remaining()) == 3

        await poll_until(pruned, within=5)
        assert sorted(e.event_id for e in await remaining()) == sorted(
            e.event_id for e in [*recent, pending]
        )


class TestStop:
    async def test_stop_publishes_what_is_pending_within_the_budget(
        self, storage: Storage, relays: list[OutboxRelay]
    ) -> None:
        """Pending events are published during stop()'s drain time."""
        broker = ScriptedBroker(publish_delay=0.05)
        relay = start_relay(relays, storage, broker, batch_size=5)
        await wait_until(lambda: relay.leading)
        await storage.commit([EventAppended(event("CP-1", n)) for n in range(20)])
        await relay.stop(3.0)
        assert len(broker.delivered) == 20
        assert (await storage.outbox_backlog()).pending == 0

    async def test_stop_gives_up_after_the_budget(
        self, storage: Storage, relays: list[OutboxRelay]
    ) -> None:
        """A broker that never confirms does not hold the shutdown longer than the budget."""
        broker = ScriptedBroker(publish_delay=60)
        relay = start_relay(relays, storage, broker)
        await wait_until(lambda: relay.leading)
        await storage.commit([EventAppended(event("CP-1", 1))])
        started = time.monotonic()
        await relay.stop(0.5)
        assert time.monotonic() - started < 1.5
        assert (await storage.outbox_backlog()).pending == 1


class TestResilience:
    async def test_an_unexpected_error_is_logged_and_publishing_goes_on(
        self, storage: Storage, relays: list[OutboxRelay]
    ) -> None:
        """A bug in one attempt is logged with its traceback; the relay retries and publishes."""
        broker = ScriptedBroker()
        broker.crashes = 1
        await storage.commit([EventAppended(event("CP-1", 1))])
        with structlog.testing.capture_logs() as logs:
            start_relay(relays, storage, broker)
            await drained(storage)
        assert [e.station_id for e in broker.delivered] == ["CP-1"]
        assert [e["event"] for e in logs if e["log_level"] == "error"] == ["relay_failed"]


class TestLogs:
    async def test_the_amqp_password_never_reaches_the_logs(
        self, storage: Storage, relays: list[OutboxRelay], amqp_url: str
    ) -> None:
        """A refused login is logged with the URL masked."""
        url = amqp_url.replace("guest:guest@", "guest:Very-Secret-7@")

        async def connect(on_close: Callable[[], None]) -> Publisher:
            return await AmqpPublisher.connect(url, "csms.test.unused", on_close)

        with structlog.testing.capture_logs() as logs:
            relay = OutboxRelay(
                storage, connect, retention=timedelta(hours=1), backoff=QUICK_BACKOFF
            )
            relay.start()
            relays.append(relay)
            await wait_until(
                lambda: any(e["event"] == "relay_broker_unavailable" for e in logs), within=10
            )
            await relay.stop(0)
        assert relay.broker_state == "down"
        assert "Very-Secret-7" not in repr(logs)
        unavailable = next(e for e in logs if e["event"] == "relay_broker_unavailable")
        assert "guest:***@" in unavailable["error"]
