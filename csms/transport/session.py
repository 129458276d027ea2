"""The OCPP-J session of one station connection, sans-I/O: text in, actions out.

Like python-websockets' ``Protocol``, it never touches a socket, a task or
a timer; the server feeds it and carries out what it returns::

    receive(raw) -> bytes        send this frame (a replayed answer, a CALLERROR)
                 -> rpc.Call     run the handler, then send answer() / fail()
                 -> Answered     the station answered the CSMS's outgoing CALL
                 -> None         nothing to do (an unknown or late answer)
    send_call(action, payload) -> bytes   the CALL frame to send
    call_timed_out() / abandon_call()     the CSMS stopped waiting
    close() -> Answered | None            the pending CALL, as disconnected

One frame yields at most one action, so it is returned instead of queued
(no list per message on the hot path). The session owns framing (rpc.py),
the answer cache that replays a resent CALL's answer, the mapping of
failures to CALLERRORs, the correlation of the CSMS's one outstanding CALL
with its answer, pacing decisions, and the metrics and log lines of all of
these (docs/adr/0009-sans-io-session.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from csms.core.errors import (
    CallErrorReceived,
    OcppError,
    StationDisconnectedError,
    StationLinkError,
    StationNotConnectedError,
    StorageError,
)
from csms.core.records import record
from csms.services import StationContext
from csms.telemetry import metrics
from csms.telemetry.outage import DATABASE
from csms.transport import rpc
from csms.transport.admission import MessagePacer

log = structlog.get_logger("csms.session")

INVALID_ACTION = "(invalid)"
# A station's CALLERROR code outside its version's spec, as a metric label.
OTHER_CODE = "other"
ABUSE_CLOSE_CODE = 1008
ABUSE_CLOSE_REASON = "message rate limit exceeded for too long"
REFUSALS_CLOSE_REASON = "too many invalid messages"
INTERNAL_ERROR = "InternalError"


class OcppVersion(Protocol):
    """What the session and the server need of one OCPP version's adapter
    (protocols.common.Adapter, injected by the composition root)."""

    @property
    def ocpp_version(self) -> str: ...

    @property
    def codes(self) -> rpc.ErrorCodes: ...

    def action_label(self, action: str, /) -> str:
        """The action as a metric label (a known action or "(unknown)")."""
        ...

    async def handle(self, ctx: StationContext, call: rpc.Call, /) -> dict[str, Any]:
        """Validate and handle a station's CALL; its answer payload, or RpcError."""
        ...

    def validate_response(self, action: str, payload: dict[str, Any], /) -> None:
        """Check a station's CALLRESULT to the CSMS's CALL; OcppError if it does not fit."""
        ...


@record
class Answered:
    """The station answered the CSMS's outgoing CALL ``unique_id``: ``result``
    (a CALLRESULT payload) or ``error`` (why there is none)."""

    unique_id: str
    result: dict[str, Any] | None
    error: StationLinkError | None


Action = bytes | rpc.Call | Answered | None


class ReplyCache:
    """The last answers sent to each station, so a CALL resent with the same
    message id (the station lost our answer) gets the identical answer again
    instead of being handled twice. Kept per station id, across reconnects;
    the first level only: what a CALL wrote, its answer included, is durable
    (docs/adr/0012-durable-answers.md), so a resend this cache misses (after
    a restart, or to another process) is answered from the database.

    A resend matches on message id, action and the frame's text (as a hash):
    firmware that counts message ids from 1 again after a reboot sends new
    CALLs under old ids, and those are handled, not replayed."""

    def __init__(self, per_station: int = 4, max_stations: int = 100_000) -> None:
        self._per_station = per_station
        self._max_stations = max_stations
        # A short list per station, oldest first: a few hundred bytes less per
        # station than a dict (19,000 idle stations, docs/benchmarks.md).
        self._replies: dict[str, list[tuple[str, str, int, bytes]]] = {}

    def get(self, station_id: str, unique_id: str, action: str, frame: int) -> bytes | None:
        """The answer sent to the CALL whose frame text hashes to ``frame``."""
        for known_id, known_action, known_frame, reply in self._replies.get(station_id, ()):
            if known_id == unique_id and known_action == action and known_frame == frame:
                return reply
        return None

    def put(self, station_id: str, unique_id: str, action: str, frame: int, reply: bytes) -> None:
        replies = self._replies.get(station_id)
        if replies is None:
            replies = self._replies[station_id] = []
            if len(self._replies) > self._max_stations:
                del self._replies[next(iter(self._replies))]  # the longest known station
        else:
            # A reused id with another payload replaces the old answer.
            replies[:] = [r for r in replies if r[0] != unique_id or r[1] != action]
        replies.append((unique_id, action, frame, reply))
        if len(replies) > self._per_station:
            del replies[0]


# Metric children by label values, shared by every session: .labels() takes a
# lock and builds a key per call.
_message_counters: dict[tuple[str, str, str], Callable[[], None]] = {}
_handler_timers: dict[tuple[str, str], Callable[[float], None]] = {}


def _count_in(action: str, version: str, outcome: str) -> None:
    key = (action, version, outcome)
    inc = _message_counters.get(key)
    if inc is None:
        inc = _message_counters[key] = metrics.MESSAGES.labels("in", action, version, outcome).inc
    inc()


def _time_handler(action: str, version: str, seconds: float) -> None:
    key = (action, version)
    observe = _handler_timers.get(key)
    if observe is None:
        observe = _handler_timers[key] = metrics.HANDLER_SECONDS.labels(action, version).observe
    observe(seconds)


class Session:
    """One station connection's OCPP-J state; see the module docstring."""

    __slots__ = (
        "_abusive",
        "_clock",
        "_closed",
        "_codes",
        "_frame",
        "_next_id",
        "_pacer",
        "_pending",
        "_prefix",
        "_replies",
        "_started",
        "_version",
        "station_id",
        "version",
    )

    def __init__(
        self,
        station_id: str,
        version: OcppVersion,
        replies: ReplyCache,
        pacer: MessagePacer,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.station_id = station_id
        self.version = version
        self._version = version.ocpp_version
        self._codes = version.codes
        self._replies = replies
        self._pacer = pacer
        self._clock = clock
        self._started = 0.0
        # The hash of the text of the station's CALL being handled (ReplyCache).
        self._frame = 0
        # The CSMS's outstanding CALL: (message id, action).
        self._pending: tuple[str, str] | None = None
        self._next_id = 1
        # Ids unique across this station's connections, so a late answer on a
        # new connection cannot resolve a call of the old one.
        self._prefix = hex(id(self))[-6:] + "-"
        self._closed = False
        # Its messages were refused too often (the pacer's refusal budget).
        self._abusive = False

    # --- the station's frames ---------------------------------------------

    def pace(self) -> float | None:
        """Seconds to hold the next frame back (0: none); None when the station
        has been over its message rate for too long: close it with
        ABUSE_CLOSE_CODE / ABUSE_CLOSE_REASON."""
        delay = self._pacer.delay()
        if delay is None:
            metrics.CONNECTIONS_CLOSED_FOR_ABUSE.labels("message_rate").inc()
            log.warning("station_closed_for_abuse", reason="message_rate")
        elif delay > 0:
            metrics.MESSAGES_DELAYED.labels(self._version).inc()
        return delay

    def receive(self, raw: str | bytes) -> Action:
        """What to do about one WebSocket message (see the module docstring)."""
        try:
            frame = rpc.decode(raw, self._codes)
        except rpc.RpcError as exc:
            log.info("frame_refused", code=exc.code, reason=exc.description)
            self._count_error_sent(exc.code)
            _count_in(INVALID_ACTION, self._version, exc.code)
            self._refused()
            return exc.frame()
        if isinstance(frame, rpc.Call):
            text = hash(raw)
            cached = self._replies.get(self.station_id, frame.unique_id, frame.action, text)
            if cached is not None:
                log.info("call_repeated", action=frame.action, message_id=frame.unique_id)
                return cached
            self._frame = text
            self._started = self._clock()
            return frame
        return self._answered(frame)

    def answer(self, call: rpc.Call, result: dict[str, Any]) -> bytes:
        """The CALLRESULT frame for the handler's ``result`` (kept for replays)."""
        reply = rpc.encode_call_result(call.unique_id, result)
        self._replies.put(self.station_id, call.unique_id, call.action, self._frame, reply)
        self._handled(call, "ok")
        return reply

    def fail(self, call: rpc.Call, exc: Exception) -> bytes:
        """The CALLERROR frame for a handler that raised ``exc``: its own code
        for an RpcError, InternalError (not replayed: a resend may succeed)
        for anything else."""
        if isinstance(exc, rpc.RpcError):
            log.info(
                "call_refused",
                action=call.action,
                message_id=call.unique_id,
                code=exc.code,
                reason=exc.description,
            )
            code, reply = exc.code, exc.frame(call.unique_id)
            self._refused()
        else:
            if isinstance(exc, StorageError):
                # Inside a database outage the committer has said so once (warning).
                report = log.debug if DATABASE.down else log.error
                report("call_failed", action=call.action, message_id=call.unique_id, error=str(exc))
            else:
                log.error(
                    "call_crashed", action=call.action, message_id=call.unique_id, exc_info=exc
                )
            code = INTERNAL_ERROR
            reply = rpc.encode_call_error(
                call.unique_id, INTERNAL_ERROR, "the CSMS could not handle this message", {}
            )
        self._count_error_sent(code)
        if code != INTERNAL_ERROR:
            self._replies.put(self.station_id, call.unique_id, call.action, self._frame, reply)
        self._handled(call, code)
        return reply

    @property
    def abusive(self) -> bool:
        """Too many of the station's messages were refused lately (the pacer's
        refusal budget): once the CALLERROR is sent, close with
        ABUSE_CLOSE_CODE / REFUSALS_CLOSE_REASON."""
        return self._abusive

    def _refused(self) -> None:
        if self._pacer.refused() and not self._abusive:
            self._abusive = True
            metrics.CONNECTIONS_CLOSED_FOR_ABUSE.labels("invalid_messages").inc()
            log.warning("station_closed_for_abuse", reason="invalid_messages")

    # --- the CSMS's CALLs -------------------------------------------------

    def send_call(self, action: str, payload: dict[str, Any]) -> bytes:
        """The frame of a new outgoing CALL. The caller sends one at a time
        (the spec allows one outstanding CALL per direction)."""
        if self._closed:
            raise StationNotConnectedError(self.station_id)
        assert self._pending is None, "one outstanding CALL at a time"
        unique_id = f"{self._prefix}{self._next_id}"
        self._next_id += 1
        self._pending = (unique_id, action)
        return rpc.encode_call(unique_id, action, payload)

    @property
    def pending_call(self) -> str | None:
        """The message id of the outstanding outgoing CALL, if any."""
        return self._pending[0] if self._pending is not None else None

    def call_timed_out(self) -> None:
        """The CSMS stopped waiting: a later answer is ignored."""
        if self._pending is not None:
            action = self._pending[1]
            self._pending = None
            metrics.CALL_TIMEOUTS.labels(action, self._version).inc()
            metrics.MESSAGES.labels("out", action, self._version, "timeout").inc()

    def abandon_call(self) -> None:
        """The caller went away without an outcome: a later answer is ignored."""
        self._pending = None

    def close(self) -> Answered | None:
        """The connection closed; the outstanding CALL, if any, resolved as
        disconnected before answering."""
        self._closed = True
        if self._pending is None:
            return None
        unique_id, action = self._pending
        self._pending = None
        metrics.MESSAGES.labels("out", action, self._version, "disconnected").inc()
        return Answered(unique_id, None, StationDisconnectedError(self.station_id))

    # --- inside -----------------------------------------------------------

    def _answered(self, frame: rpc.CallResult | rpc.CallError) -> Answered | None:
        pending = self._pending
        if pending is None or pending[0] != frame.unique_id:
            log.info("unexpected_answer", message_id=frame.unique_id)
            return None
        self._pending = None
        action = pending[1]
        if isinstance(frame, rpc.CallResult):
            # The metric says what the CSMS made of the answer; the caller decides
            # what follows (a command records the refused answer as failed).
            try:
                self.version.validate_response(action, frame.payload)
            except OcppError:
                outcome = "invalid_answer"
            else:
                outcome = "ok"
            metrics.MESSAGES.labels("out", action, self._version, outcome).inc()
            return Answered(frame.unique_id, frame.payload, None)
        code = frame.code if frame.code in self._codes.spec else OTHER_CODE
        metrics.CALL_ERRORS.labels("in", code, self._version).inc()
        metrics.MESSAGES.labels("out", action, self._version, "call_error").inc()
        error = CallErrorReceived(frame.code, frame.description, frame.details)
        return Answered(frame.unique_id, None, error)

    def _handled(self, call: rpc.Call, outcome: str) -> None:
        action = self.version.action_label(call.action)
        _time_handler(action, self._version, self._clock() - self._started)
        _count_in(action, self._version, outcome)

    def _count_error_sent(self, code: str) -> None:
        metrics.CALL_ERRORS.labels("out", code, self._version).inc()
