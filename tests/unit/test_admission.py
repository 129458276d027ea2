"""The handshake gate and the per-station message pacer, on a fake clock."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from csms.core.errors import ConfigurationError
from csms.core.settings import Settings
from csms.transport.admission import Busy, HandshakeGate, MessagePacer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestHandshakeGate:
    def test_cap_counts_handshakes_in_flight(self) -> None:
        """The (cap+1)th concurrent handshake is refused until one leaves."""
        gate = HandshakeGate(2, 0, 5, clock=FakeClock(), rng=random.Random(1))
        assert gate.enter() is None
        assert gate.enter() is None
        busy = gate.enter()
        assert isinstance(busy, Busy)
        assert busy.reason == "handshake_capacity"
        assert 1 <= busy.retry_after <= 5
        gate.leave()
        assert gate.enter() is None
        assert gate.in_flight == 2

    def test_rate_refills_over_time(self) -> None:
        """At rate 2/s a burst of 2 passes, the 3rd waits about half a second."""
        clock = FakeClock()
        gate = HandshakeGate(100, 2, 10, clock=clock, rng=random.Random(1))
        assert gate.enter() is None
        assert gate.enter() is None
        busy = gate.enter()
        assert busy is not None
        assert busy.reason == "handshake_rate"
        clock.now += 0.5
        assert gate.enter() is None

    async def test_a_full_gate_queues_handshakes_and_admits_them_in_order(self) -> None:
        """With every slot taken, admit() waits; each leave() hands its slot to
        the longest waiting handshake, so in_flight never exceeds the cap."""
        gate = HandshakeGate(1, 0, 5, max_waiting=10)
        assert await gate.admit(1.0) is None
        order: list[str] = []

        async def wait(name: str) -> None:
            assert await gate.admit(2.0) is None
            order.append(name)

        waiters = [asyncio.create_task(wait(name)) for name in "abc"]
        await asyncio.sleep(0.01)
        assert (gate.in_flight, gate.waiting) == (1, 3)
        for _ in range(3):
            gate.leave()
            await asyncio.sleep(0.01)
            assert gate.in_flight == 1
        await asyncio.gather(*waiters)
        assert order == ["a", "b", "c"]
        gate.leave()
        assert (gate.in_flight, gate.waiting) == (0, 0)

    async def test_a_handshake_waits_no_longer_than_its_patience(self) -> None:
        gate = HandshakeGate(1, 0, 5, max_waiting=10)
        assert await gate.admit(1.0) is None
        started = time.monotonic()
        busy = await gate.admit(0.05)
        assert busy is not None
        assert busy.reason == "handshake_capacity"
        assert 0.04 < time.monotonic() - started < 1.0
        gate.leave()  # the timed-out waiter is skipped, the slot is free again
        assert (gate.in_flight, gate.waiting) == (0, 0)
        assert await gate.admit(0.05) is None

    async def test_a_full_queue_refuses_at_once(self) -> None:
        gate = HandshakeGate(1, 0, 5, max_waiting=1)
        assert await gate.admit(1.0) is None
        waiter = asyncio.create_task(gate.admit(5.0))
        await asyncio.sleep(0.01)
        started = time.monotonic()
        assert await gate.admit(5.0) is not None
        assert time.monotonic() - started < 0.5
        gate.leave()
        assert await waiter is None

    async def test_a_cancelled_waiter_gives_back_a_slot_it_was_handed(self) -> None:
        gate = HandshakeGate(1, 0, 5, max_waiting=10)
        assert await gate.admit(1.0) is None
        waiter = asyncio.create_task(gate.admit(5.0))
        await asyncio.sleep(0.01)
        gate.leave()  # hands the slot to the waiter...
        waiter.cancel()  # ...which is cancelled before it runs again
        (outcome,) = await asyncio.gather(waiter, return_exceptions=True)
        if outcome is None:  # it kept the slot (asyncio let the result win): it leaves
            gate.leave()
        else:
            assert isinstance(outcome, asyncio.CancelledError)
        assert (gate.in_flight, gate.waiting) == (0, 0)

    async def test_arrivals_beyond_the_rate_are_paced_not_refused(self) -> None:
        """At 20/s with a burst of 20, the 21st to 25th handshakes wait for
        their tokens, about 50 ms apart, instead of getting a 503."""
        gate = HandshakeGate(100, 20, 5, max_waiting=10)
        for _ in range(20):
            assert await gate.admit(1.0) is None
        started = time.monotonic()
        results = await asyncio.gather(*(gate.admit(1.0) for _ in range(5)))
        assert results == [None] * 5
        assert 0.15 < time.monotonic() - started < 0.6
        busy = await gate.admit(0.01)  # its token is further away than its patience
        assert busy is not None
        assert busy.reason == "handshake_rate"

    async def test_a_handshake_paced_then_queued_pays_for_one_token(self) -> None:
        """A handshake that waited for its token and then found every slot taken
        queues for a slot without paying again when it is handed one: the next
        second's arrivals are not refused for a token spent twice."""
        clock = FakeClock()
        # 16/s: the clock's steps below are exact in binary floating point.
        gate = HandshakeGate(1, 16, 5, max_waiting=5, clock=clock, rng=random.Random(1))
        for _ in range(16):  # spend this second's tokens
            assert gate.enter() is None
            gate.leave()
        paced = asyncio.create_task(gate.admit(1.0))  # its token is due in 62.5 ms
        await asyncio.sleep(0)
        clock.now += 0.125  # two tokens later, one of them already promised to it
        assert gate.enter() is None  # another takes the only slot meanwhile
        await asyncio.sleep(0.15)
        assert gate.waiting == 1  # its token came; now it waits for the slot
        gate.leave()  # the slot passes to it, without a second token
        assert await paced is None
        gate.leave()
        clock.now += 0.0625  # one more token
        assert gate.enter() is None

    async def test_closing_refuses_queued_and_paced_handshakes_at_once(self) -> None:
        """At shutdown nobody sits out their patience: handshakes waiting for a
        slot or for their token, and any that arrive later, are refused now."""
        gate = HandshakeGate(1, 1, 5, max_waiting=10)
        assert await gate.admit(1.0) is None  # the one slot, and the one token
        queued = [asyncio.create_task(gate.admit(10.0)) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert gate.waiting == 3
        started = time.monotonic()
        gate.close()
        outcomes = await asyncio.gather(*queued)
        assert time.monotonic() - started < 0.5
        assert [busy.reason if busy else None for busy in outcomes] == ["shutting_down"] * 3
        refused = gate.enter()
        assert refused is not None
        assert refused.reason == "shutting_down"
        started = time.monotonic()
        late = await gate.admit(10.0)  # one arriving after the close does not queue
        assert late is not None
        assert late.reason == "shutting_down"
        assert time.monotonic() - started < 0.5
        gate.leave()  # the handshake admitted before the close still leaves
        assert (gate.in_flight, gate.waiting) == (0, 0)
        paced_gate = HandshakeGate(5, 1, 5, max_waiting=10)
        assert await paced_gate.admit(1.0) is None  # the one token of this second
        paced = [asyncio.create_task(paced_gate.admit(10.0)) for _ in range(2)]
        await asyncio.sleep(0.05)
        assert paced_gate.waiting == 2  # sleeping until their tokens are due
        started = time.monotonic()
        paced_gate.close()
        outcomes = await asyncio.gather(*paced)
        assert time.monotonic() - started < 0.5
        assert [busy.reason if busy else None for busy in outcomes] == ["shutting_down"] * 2

    def test_retry_after_is_jittered_within_bounds(self) -> None:
        """Refused stations are told different delays, all within 1..max."""
        gate = HandshakeGate(0, 0, 10, clock=FakeClock(), rng=random.Random(7))
        delays = set()
        for _ in range(50):
            busy = gate.enter()
            assert busy is not None
            delays.add(busy.retry_after)
        assert len(delays) > 3
        assert min(delays) >= 1
        assert max(delays) <= 10


class TestMessagePacer:
    def test_burst_passes_then_frames_are_spaced_at_the_rate(self) -> None:
        """Within the burst no delay; beyond it each frame waits 1/rate."""
        clock = FakeClock()
        pacer = MessagePacer(10, 3, 60, clock=clock)
        assert [pacer.delay() for _ in range(3)] == [0.0, 0.0, 0.0]
        delay = pacer.delay()
        assert delay == pytest.approx(0.1)
        clock.now += 0.1
        assert pacer.delay() == pytest.approx(0.1)

    def test_sustained_excess_is_abuse(self) -> None:
        """Over budget without a pause for longer than abuse_after: None (close)."""
        clock = FakeClock()
        pacer = MessagePacer(10, 1, 2, clock=clock)
        assert pacer.delay() == 0.0
        frames = 0
        while (delay := pacer.delay()) is not None:
            clock.now += delay
            frames += 1
            assert frames < 100
        assert 20 <= frames <= 22  # 2 s at 10 per second, then closed

    def test_a_pause_forgives(self) -> None:
        """A frame that finds the budget refilled resets the abuse clock."""
        clock = FakeClock()
        pacer = MessagePacer(10, 1, 2, clock=clock)
        for _ in range(15):
            clock.now += pacer.delay() or 0.0
        clock.now += 5
        assert pacer.delay() == 0.0
        for _ in range(15):
            delay = pacer.delay()
            assert delay is not None
            clock.now += delay

    def test_rate_zero_never_delays(self) -> None:
        """Pacing off."""
        pacer = MessagePacer(0, 1, 1, clock=FakeClock())
        assert all(pacer.delay() == 0.0 for _ in range(1000))


class TestAdmissionSettings:
    @pytest.mark.parametrize(
        ("env", "name"),
        [
            ({"CSMS_MAX_CONCURRENT_HANDSHAKES": "0"}, "CSMS_MAX_CONCURRENT_HANDSHAKES"),
            ({"CSMS_HANDSHAKE_RATE": "-1"}, "CSMS_HANDSHAKE_RATE"),
            ({"CSMS_HANDSHAKE_TIMEOUT": "0"}, "CSMS_HANDSHAKE_TIMEOUT"),
            ({"CSMS_STATION_MESSAGE_BURST": "0"}, "CSMS_STATION_MESSAGE_BURST"),
            ({"CSMS_TRUSTED_PROXIES": "10.0.0.0/8,nonsense"}, "CSMS_TRUSTED_PROXIES"),
            ({"CSMS_DEFAULT_SUBPROTOCOL": "ocpp1.5"}, "CSMS_DEFAULT_SUBPROTOCOL"),
            ({"CSMS_LOG_MASK_TOKENS": "perhaps"}, "CSMS_LOG_MASK_TOKENS"),
        ],
    )
    def test_bad_values_name_the_setting(self, env: dict[str, str], name: str) -> None:
        """Each new setting is validated with a message naming it."""
        with pytest.raises(ConfigurationError, match=name):
            Settings.load(env=env)

    def test_booleans_read_the_usual_spellings(self) -> None:
        """true/false, 1/0, yes/no, on/off."""
        for text, value in (("true", True), ("0", False), ("Yes", True), ("off", False)):
            assert Settings.load(env={"CSMS_LOG_MASK_TOKENS": text}).log_mask_tokens is value


class TestHandshakeQueueAndRate:
    async def test_a_queued_handshake_counts_against_the_rate(self) -> None:
        """A slot handed over from the queue takes a token like any handshake."""
        gate = HandshakeGate(1, 2, 5, max_waiting=5, clock=FakeClock())
        assert await gate.admit(1.0) is None  # one token left
        queued = asyncio.create_task(gate.admit(1.0))
        await asyncio.sleep(0.01)
        gate.leave()  # the slot goes to the queued one, with the last token
        assert await queued is None
        gate.leave()
        busy = gate.enter()
        assert busy is not None
        assert busy.reason == "handshake_rate"

    async def test_a_handshake_cancelled_while_paced_gives_its_token_back(self) -> None:
        clock = FakeClock()
        gate = HandshakeGate(10, 1, 5, max_waiting=5, clock=clock)
        assert await gate.admit(5.0) is None  # the only token
        paced = asyncio.create_task(gate.admit(5.0))  # reserves the next, due in 1 s
        await asyncio.sleep(0.01)
        assert gate.waiting == 1  # csms_handshakes_queued counts it
        paced.cancel()
        with pytest.raises(asyncio.CancelledError):
            await paced
        assert gate.waiting == 0
        clock.now += 1.0  # one token refilled, none reserved any more
        assert gate.enter() is None
