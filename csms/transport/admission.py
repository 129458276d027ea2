"""Admission control: how many handshakes run at once and how fast they may
arrive, and how fast one station's messages are handled.

Both are pure bookkeeping on a monotonic clock, no I/O, so they test
without a server. The station server asks ``HandshakeGate.enter()`` before
it looks a station up (a refused handshake costs no database query and no
scrypt) and ``MessagePacer.delay()`` before it reads a station's next frame.
"""

from __future__ import annotations

import asyncio
import collections
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from csms.core.interop import InteropProfiles
from csms.core.settings import Settings
from csms.core.waiting import wait_at_most
from csms.transport.tls import PeerFacts

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Busy:
    """A refused handshake: why, and after how many seconds to come back."""

    reason: str  # "handshake_capacity", "handshake_rate" or "shutting_down"
    retry_after: int

    @property
    def message(self) -> str:
        """What the 503's body tells the station."""
        if self.reason == "shutting_down":
            return "the CSMS is shutting down; retry later"
        return "the CSMS is busy admitting other stations; retry later"


class _GateClosed(Exception):
    """A queued handshake's turn when the gate closes."""


class HandshakeGate:
    """At most ``max_concurrent`` handshakes in flight, and at most ``rate``
    new ones per second (a token bucket holding one second's worth; 0 means
    no rate limit). A refusal carries a Retry-After drawn at random from
    1..``retry_after_max`` seconds, so refused stations do not come back as
    one wave.

    ``admit(patience)`` lets a handshake wait instead, up to ``patience``
    seconds: for its token (arrivals beyond the rate are paced, not refused)
    and for a slot (first come first served, behind at most ``max_waiting``
    others). In a reconnect storm the stations are then admitted as fast as
    the CSMS can take them instead of being sent away to come back later (a
    refusal costs the CSMS an HTTP exchange and the station seconds).
    """

    def __init__(
        self,
        max_concurrent: int,
        rate: float,
        retry_after_max: int,
        *,
        max_waiting: int = 0,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._max = max_concurrent
        self._rate = rate
        self._burst = max(rate, 1.0)
        self._retry_after_max = max(1, retry_after_max)
        self._max_waiting = max_waiting
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._tokens = self._burst
        self._refilled = clock()
        # Waiting handshakes in arrival order, each with whether it took its token.
        self._waiting: collections.deque[tuple[asyncio.Future[None], bool]] = collections.deque()
        self.in_flight = 0
        self._paced = 0  # handshakes sleeping until their token is due
        self._closed = asyncio.Event()

    @property
    def waiting(self) -> int:
        """Handshakes waiting now: for a slot, or for their turn under the rate."""
        return len(self._waiting) + self._paced

    def close(self) -> None:
        """Refuse every handshake from now on, those waiting or paced at once
        (shutdown: nobody sits out their patience while the server stops).
        There is no reopening: a stopped station server is not started again."""
        self._closed.set()
        while self._waiting:
            turn, _ = self._waiting.popleft()
            if not turn.done():
                turn.set_exception(_GateClosed())

    def enter(self) -> Busy | None:
        """Count a handshake in, or say why not. Pair every None with ``leave()``."""
        if self._closed.is_set():
            return self._shutting_down()
        if self.in_flight >= self._max or self._waiting:
            return Busy("handshake_capacity", self._retry_after(1.0))
        if self._rate > 0:
            self._refill()
            if self._tokens < 1:
                return Busy("handshake_rate", self._retry_after((1 - self._tokens) / self._rate))
            self._tokens -= 1
        self.in_flight += 1
        return None

    async def admit(self, patience: float) -> Busy | None:
        """``enter()``, or wait up to ``patience`` s for a token (paced at
        ``rate``) and then a slot (in arrival order). None means admitted:
        pair it with ``leave()``; a Busy is the refusal to send."""
        busy = self.enter()
        if busy is None or patience <= 0 or busy.reason == "shutting_down":
            return busy
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        paid = False
        if busy.reason == "handshake_rate":
            delay = (1 - self._tokens) / self._rate
            if delay > patience:
                return busy
            self._tokens -= 1  # reserved: who comes later waits behind it
            self._paced += 1
            try:
                await wait_at_most(self._closed, delay)  # close() ends the wait early
            except asyncio.CancelledError:
                self._tokens += 1
                raise
            finally:
                self._paced -= 1
            if self._closed.is_set():
                return self._shutting_down()
            if self.in_flight < self._max and not self._waiting:
                self.in_flight += 1
                return None
            paid = True
            busy = Busy("handshake_capacity", self._retry_after(1.0))
        if len(self._waiting) >= self._max_waiting:
            return busy
        turn: asyncio.Future[None] = loop.create_future()
        self._waiting.append((turn, paid))
        try:
            # leave() hands its slot over
            await asyncio.wait_for(turn, max(0.0, deadline - loop.time()))
        except TimeoutError:
            return busy
        except _GateClosed:
            return self._shutting_down()
        except BaseException:
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                self.leave()  # handed a slot just as the handshake was cancelled
            raise
        finally:
            if not turn.done():
                turn.cancel()  # leave() skips it
        return None

    def leave(self) -> None:
        while self._waiting:
            turn, paid = self._waiting.popleft()
            if not turn.done():
                if not paid and self._rate > 0:
                    self._refill()
                    self._tokens -= 1  # a queued handshake counts against the rate too
                turn.set_result(None)  # the slot passes to the longest waiting
                return
        self.in_flight -= 1

    def _shutting_down(self) -> Busy:
        return Busy("shutting_down", self._retry_after(1.0))

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now

    def _retry_after(self, at_least: float) -> int:
        low = min(self._retry_after_max, max(1, math.ceil(at_least)))
        return self._rng.randint(low, self._retry_after_max)


# The refusal budget's window: MAX refusals within it make a connection abusive.
REFUSAL_WINDOW = 10.0


class MessagePacer:
    """One station's message budget: ``rate`` frames per second with bursts
    of ``burst``. A frame beyond the budget is not refused but delayed until
    the budget allows it: the station waits for its answer, so it slows down
    and loses nothing (a CALLERROR would make it drop or resend transaction
    messages). A station that stays over budget for ``abuse_after`` seconds
    without a pause is abusive: ``delay()`` returns None and the server
    closes the connection with 1008 (policy violation).

    ``rate`` 0 turns pacing off.

    Its other budget is for refusals: a connection whose messages keep being
    refused (unreadable, or invalid for their schema) costs the CSMS work for
    nothing; ``max_refusals`` of them within REFUSAL_WINDOW seconds make it
    abusive too (``refused()`` says so). 0 turns that off.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        abuse_after: float,
        *,
        max_refusals: int = 0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._max_refusals = max_refusals
        # When the last refusals happened, oldest first; made on the first (an
        # idle station should not carry a deque).
        self._refusals: collections.deque[float] | None = None
        self._rate = rate
        self._burst = float(max(burst, 1))
        self._abuse_after = abuse_after
        self._clock = clock
        self._tokens = self._burst
        self._refilled = clock()
        self._throttled_since: float | None = None

    def refused(self) -> bool:
        """Note a refused message; True once ``max_refusals`` came within the window."""
        if self._max_refusals <= 0:
            return False
        if self._refusals is None:
            self._refusals = collections.deque(maxlen=self._max_refusals)
        refusals = self._refusals
        refusals.append(self._clock())
        return len(refusals) == self._max_refusals and refusals[-1] - refusals[0] <= REFUSAL_WINDOW

    def delay(self) -> float | None:
        """Seconds to wait before handling the next frame (0: at once), or
        None when the station has been over budget for too long."""
        if self._rate <= 0:
            return 0.0
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        self._tokens -= 1
        if self._tokens >= 0:
            self._throttled_since = None
            return 0.0
        if self._throttled_since is None:
            self._throttled_since = now
        elif now - self._throttled_since > self._abuse_after:
            return None
        return -self._tokens / self._rate


@dataclass(frozen=True, slots=True)
class ConnectionPolicy:
    """What the station server enforces on a connection beyond OCPP itself:
    handshake admission, TLS facts, message pacing, firmware tolerances."""

    # No defaults here: they are the settings' (csms/core/settings.py), one place.
    handshake_timeout: float
    max_concurrent_handshakes: int
    handshake_rate: float
    handshake_retry_after: int
    handshake_queue_wait: float
    max_queued_handshakes: int
    message_rate: float
    message_burst: int
    abuse_after: float
    max_refusals: int
    peer: PeerFacts
    interop: InteropProfiles
    default_subprotocol: str

    @classmethod
    def from_settings(cls, settings: Settings, interop: InteropProfiles) -> ConnectionPolicy:
        return cls(
            handshake_timeout=settings.handshake_timeout,
            max_concurrent_handshakes=settings.max_concurrent_handshakes,
            handshake_rate=settings.handshake_rate,
            handshake_retry_after=settings.handshake_retry_after,
            # Waiting must leave the handshake time to finish.
            handshake_queue_wait=min(settings.handshake_queue_wait, settings.handshake_timeout / 2),
            max_queued_handshakes=settings.max_queued_handshakes,
            message_rate=settings.station_message_rate,
            message_burst=settings.station_message_burst,
            abuse_after=settings.station_abuse_seconds,
            max_refusals=settings.station_max_refusals,
            peer=PeerFacts.from_settings(settings),
            interop=interop,
            default_subprotocol=settings.default_subprotocol,
        )

    def gate(self) -> HandshakeGate:
        return HandshakeGate(
            self.max_concurrent_handshakes,
            self.handshake_rate,
            self.handshake_retry_after,
            max_waiting=self.max_queued_handshakes,
        )

    def pacer(self) -> MessagePacer:
        return MessagePacer(
            self.message_rate,
            self.message_burst,
            self.abuse_after,
            max_refusals=self.max_refusals,
        )
