"""The sans-I/O OCPP-J session, driven without sockets: frames in, actions out."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csms.core.errors import (
    CallErrorReceived,
    StationDisconnectedError,
    StationNotConnectedError,
    StorageError,
)
from csms.telemetry import metrics
from csms.transport import rpc
from csms.transport.admission import MessagePacer
from csms.transport.session import OTHER_CODE, Answered, ReplyCache, Session
from protocols import ocpp16, ocpp201
from protocols.common import Adapter

OCPP16 = ocpp16.adapter()
OCPP201 = ocpp201.adapter()
NO_PACING = MessagePacer(rate=0, burst=1, abuse_after=1)
FUZZ = settings(max_examples=200, deadline=None, derandomize=True)


def session(
    version: Adapter = OCPP16,
    replies: ReplyCache | None = None,
    pacer: MessagePacer = NO_PACING,
    station_id: str = "CP-1",
) -> Session:
    return Session(station_id, version, replies or ReplyCache(), pacer)


def frame(raw: Any) -> bytes:
    return orjson.dumps(raw)


def call_errors(direction: str, code: str, version: str) -> float:
    labels = {"direction": direction, "code": code, "ocpp_version": version}
    return metrics.REGISTRY.get_sample_value("csms_call_errors_total", labels) or 0.0


class TestIncomingCalls:
    def test_a_call_asks_for_its_handler(self) -> None:
        """A CALL comes out as the call to hand to the action's handler."""
        action = session().receive(frame([2, "m1", "Heartbeat", {}]))
        assert action == rpc.Call("m1", "Heartbeat", {})

    def test_the_handlers_answer_becomes_a_callresult(self) -> None:
        """The handler's payload goes back as [3, id, payload]."""
        s = session()
        call = s.receive(frame([2, "m1", "Heartbeat", {}]))
        assert isinstance(call, rpc.Call)
        reply = s.answer(call, {"currentTime": "2026-01-01T00:00:00Z"})
        assert orjson.loads(reply) == [3, "m1", {"currentTime": "2026-01-01T00:00:00Z"}]

    def test_a_resent_call_gets_the_identical_answer_without_its_handler(self) -> None:
        """The same id and action again: the very same frame, not a second handling."""
        s = session()
        call = s.receive(frame([2, "m1", "Heartbeat", {}]))
        assert isinstance(call, rpc.Call)
        first = s.answer(call, {"currentTime": "2026-01-01T00:00:00Z"})
        assert s.receive(frame([2, "m1", "Heartbeat", {}])) == first

    def test_a_reused_id_with_another_payload_is_handled(self) -> None:
        """Firmware counting ids from 1 again after a reboot: a new CALL, not a resend."""
        s = session()
        call = s.receive(frame([2, "1", "StatusNotification", {"status": "Available"}]))
        assert isinstance(call, rpc.Call)
        s.answer(call, {})
        again = s.receive(frame([2, "1", "StatusNotification", {"status": "Charging"}]))
        assert again == rpc.Call("1", "StatusNotification", {"status": "Charging"})

    def test_the_replay_survives_a_reconnect(self) -> None:
        """A station that lost our answer with its connection gets it on the next one."""
        replies = ReplyCache()
        old = session(replies=replies)
        call = old.receive(frame([2, "m1", "Heartbeat", {}]))
        assert isinstance(call, rpc.Call)
        first = old.answer(call, {"currentTime": "2026-01-01T00:00:00Z"})
        assert session(replies=replies).receive(frame([2, "m1", "Heartbeat", {}])) == first

    def test_a_call_that_failed_inside_the_csms_is_handled_again_when_resent(self) -> None:
        """An InternalError is not replayed: the resend may succeed."""
        s = session()
        call = s.receive(frame([2, "m1", "Heartbeat", {}]))
        assert isinstance(call, rpc.Call)
        s.fail(call, StorageError("database down"))
        assert s.receive(frame([2, "m1", "Heartbeat", {}])) == call

    def test_a_refused_call_is_replayed_with_its_callerror(self) -> None:
        """A CALLERROR for the station's fault is the answer a resend gets too."""
        s = session()
        call = s.receive(frame([2, "m1", "Heartbeat", {}]))
        assert isinstance(call, rpc.Call)
        refusal = rpc.RpcError("TypeConstraintViolation", "x is not a string")
        reply = s.fail(call, refusal)
        assert orjson.loads(reply) == [4, "m1", "TypeConstraintViolation", "x is not a string", {}]
        assert s.receive(frame([2, "m1", "Heartbeat", {}])) == reply

    @pytest.mark.parametrize("failure", [StorageError("down"), ZeroDivisionError("bug")])
    def test_our_own_failure_is_an_internal_error(self, failure: Exception) -> None:
        """A database outage or a bug answers InternalError, never the station's fault."""
        s = session()
        call = s.receive(frame([2, "m1", "Heartbeat", {}]))
        assert isinstance(call, rpc.Call)
        code = orjson.loads(s.fail(call, failure))[2]
        assert code == "InternalError"


class TestMalformedInput:
    @pytest.mark.parametrize(
        ("raw", "version", "expected"),
        [
            (b"not json", OCPP16, ["-1", "FormationViolation"]),
            (b'[2, "m1", "Heartbeat"]', OCPP16, ["m1", "ProtocolError"]),
            (b'[2, "m1", "Heartbeat", []]', OCPP201, ["m1", "FormationViolation"]),
            (b'[7, "m1", {}]', OCPP201, ["m1", "MessageTypeNotSupported"]),
            (b'[7, "m1", {}]', OCPP16, ["m1", "FormationViolation"]),
        ],
    )
    def test_an_unreadable_frame_gets_the_callerror_of_its_fault(
        self, raw: bytes, version: Adapter, expected: list[str]
    ) -> None:
        """Bad framing is answered at once, with the id that could be read."""
        reply = session(version).receive(raw)
        assert isinstance(reply, bytes)
        assert orjson.loads(reply)[1:3] == expected


MAX_REFUSALS = 30


def offender_session(now: list[float]) -> Session:
    pacer = MessagePacer(
        rate=0, burst=1, abuse_after=1, max_refusals=MAX_REFUSALS, clock=lambda: now[0]
    )
    return Session("CP-1", OCPP16, ReplyCache(), pacer)


class TestRepeatOffenders:
    def test_thirty_refusals_within_ten_seconds_make_a_connection_abusive(self) -> None:
        """Each unreadable frame gets its CALLERROR; the 30th within 10 s also
        says the connection is to be closed (1008)."""
        now = [0.0]
        s = offender_session(now)
        for _ in range(MAX_REFUSALS - 1):
            now[0] += 0.1
            assert isinstance(s.receive(frame("not json")), bytes)
        assert not s.abusive
        now[0] += 0.1
        s.receive(frame("not json"))
        assert s.abusive

    def test_refusals_spread_out_are_tolerated(self) -> None:
        """Buggy firmware refused now and then (one a second) is never closed."""
        now = [0.0]
        s = offender_session(now)
        for _ in range(MAX_REFUSALS * 3):
            now[0] += 1.0
            s.receive(frame("not json"))
            assert not s.abusive

    def test_without_a_refusal_budget_nobody_is_closed(self) -> None:
        """CSMS_STATION_MAX_REFUSALS=0: refusals are answered, never counted against it."""
        s = session()
        for _ in range(MAX_REFUSALS * 2):
            s.receive(frame("not json"))
        assert not s.abusive

    def test_a_call_its_handler_refuses_counts_too(self) -> None:
        """A CALL refused by its schema (the handler's RpcError) is a refusal."""
        now = [0.0]
        s = offender_session(now)
        for i in range(MAX_REFUSALS):
            call = s.receive(frame([2, f"id-{i}", "Heartbeat", {}]))
            assert isinstance(call, rpc.Call)
            s.fail(call, rpc.RpcError("FormationViolation", "no"))
        assert s.abusive


class TestOutgoingCalls:
    def test_a_call_goes_out_and_its_callresult_resolves_it(self) -> None:
        """The CSMS's CALL is a frame; the station's CALLRESULT with its id answers it."""
        s = session()
        sent = orjson.loads(s.send_call("GetConfiguration", {"key": ["X"]}))
        assert sent[0] == 2
        assert sent[2:] == ["GetConfiguration", {"key": ["X"]}]
        answered = s.receive(frame([3, sent[1], {"configurationKey": []}]))
        assert answered == Answered(sent[1], {"configurationKey": []}, None)
        assert s.pending_call is None

    def test_an_answer_that_breaks_its_schema_is_counted_invalid_not_ok(self) -> None:
        """A CALLRESULT the CSMS refuses (out of its schema) still reaches the
        caller, which records the command failed; the metric says invalid_answer."""
        s = session()

        def count(outcome: str) -> float:
            value = metrics.REGISTRY.get_sample_value(
                "csms_messages_total",
                {"direction": "out", "action": "Reset", "ocpp_version": "1.6", "outcome": outcome},
            )
            return value or 0.0

        ok, invalid = count("ok"), count("invalid_answer")
        unique_id = orjson.loads(s.send_call("Reset", {"type": "Hard"}))[1]
        answered = s.receive(frame([3, unique_id, {"status": "Maybe"}]))
        assert answered == Answered(unique_id, {"status": "Maybe"}, None)
        assert (count("ok"), count("invalid_answer")) == (ok, invalid + 1)
        unique_id = orjson.loads(s.send_call("Reset", {"type": "Hard"}))[1]
        s.receive(frame([3, unique_id, {"status": "Accepted"}]))
        assert (count("ok"), count("invalid_answer")) == (ok + 1, invalid + 1)

    def test_a_callerror_answer_fails_the_call_with_its_code(self) -> None:
        """A CALLERROR to our CALL carries the station's code, description and details."""
        s = session()
        unique_id = orjson.loads(s.send_call("Reset", {"type": "Hard"}))[1]
        answered = s.receive(frame([4, unique_id, "NotSupported", "no", {"why": 1}]))
        assert isinstance(answered, Answered)
        assert isinstance(answered.error, CallErrorReceived)
        error = answered.error
        assert (error.code, error.description, error.details) == ("NotSupported", "no", {"why": 1})

    def test_an_answer_to_nothing_we_asked_is_ignored(self) -> None:
        """A CALLRESULT with an unknown id neither resolves anything nor gets an answer."""
        s = session()
        s.send_call("Reset", {"type": "Hard"})
        assert s.receive(frame([3, "someone-else", {}])) is None
        assert s.pending_call is not None

    def test_a_late_answer_after_the_timeout_is_ignored(self) -> None:
        """Once the CSMS stopped waiting, the station's answer resolves nothing."""
        s = session()
        unique_id = orjson.loads(s.send_call("Reset", {"type": "Hard"}))[1]
        s.call_timed_out()
        assert s.receive(frame([3, unique_id, {"status": "Accepted"}])) is None

    def test_closing_resolves_the_pending_call_as_disconnected(self) -> None:
        """A connection that closes with our CALL unanswered says so: disconnected."""
        s = session()
        unique_id = orjson.loads(s.send_call("Reset", {"type": "Hard"}))[1]
        answered = s.close()
        assert answered is not None
        assert answered.unique_id == unique_id
        assert isinstance(answered.error, StationDisconnectedError)
        assert "disconnected before answering" in str(answered.error)

    def test_closing_without_a_pending_call_resolves_nothing(self) -> None:
        """Nothing was asked, nothing to resolve."""
        assert session().close() is None

    def test_no_call_goes_out_once_closed(self) -> None:
        """A closed session refuses to frame a CALL: the station is not connected."""
        s = session()
        s.close()
        with pytest.raises(StationNotConnectedError):
            s.send_call("Reset", {"type": "Hard"})

    def test_ids_differ_between_calls_and_connections(self) -> None:
        """A late answer on a new connection cannot match a call of the old one."""
        first, second = session(), session()
        ids = set()
        for s in (first, second):
            for _ in range(2):
                ids.add(orjson.loads(s.send_call("Reset", {"type": "Hard"}))[1])
                s.abandon_call()
        assert len(ids) == 4

    @FUZZ
    @given(
        stray=st.lists(st.tuples(st.booleans(), st.text(min_size=1, max_size=36)), max_size=8),
        position=st.integers(0, 8),
    )
    def test_only_the_pending_id_resolves_the_call(
        self, stray: list[tuple[bool, str]], position: int
    ) -> None:
        """Answers with other ids, before or after the right one, resolve nothing."""
        s = session()
        unique_id = orjson.loads(s.send_call("GetConfiguration", {}))[1]
        answers = [
            [3, uid, {"n": i}] if is_result else [4, uid, "X", "", {}]
            for i, (is_result, uid) in enumerate(stray)
            if uid != unique_id
        ]
        answers.insert(min(position, len(answers)), [3, unique_id, {"right": True}])
        resolved = [a for a in (s.receive(frame(answer)) for answer in answers) if a is not None]
        assert resolved == [Answered(unique_id, {"right": True}, None)]
        assert s.receive(frame([3, unique_id, {"late": True}])) is None


class TestCallErrorLabels:
    def test_a_code_outside_the_spec_is_counted_as_other(self) -> None:
        """A station's invented CALLERROR codes all land in one series."""
        s = session(OCPP201)
        before = call_errors("in", OTHER_CODE, "2.0.1")
        for n in range(5):
            unique_id = orjson.loads(s.send_call("Reset", {"type": "Immediate"}))[1]
            s.receive(frame([4, unique_id, f"Invented{n}", "", {}]))
        assert call_errors("in", OTHER_CODE, "2.0.1") == before + 5
        assert (
            metrics.REGISTRY.get_sample_value(
                "csms_call_errors_total",
                {"direction": "in", "code": "Invented0", "ocpp_version": "2.0.1"},
            )
            is None
        )

    @pytest.mark.parametrize(
        ("version", "code", "label"),
        [
            (OCPP16, "OccurenceConstraintViolation", "OccurenceConstraintViolation"),
            (OCPP16, "FormatViolation", OTHER_CODE),
            (OCPP201, "FormatViolation", "FormatViolation"),
            (OCPP201, "RpcFrameworkError", "RpcFrameworkError"),
            (OCPP201, "OccurenceConstraintViolation", OTHER_CODE),
        ],
    )
    def test_each_version_keeps_the_codes_its_spec_names(
        self, version: Adapter, code: str, label: str
    ) -> None:
        """A code is a label of its own when the station's OCPP version defines it."""
        s = session(version)
        before = call_errors("in", label, version.ocpp_version)
        unique_id = orjson.loads(s.send_call("Reset", {"type": "Hard"}))[1]
        s.receive(frame([4, unique_id, code, "", {}]))
        assert call_errors("in", label, version.ocpp_version) == before + 1


class TestPacing:
    def test_a_station_over_its_rate_waits_then_is_closed(self) -> None:
        """Frames beyond the budget are delayed; too long over it means close."""
        now = [0.0]
        pacer = MessagePacer(rate=1, burst=1, abuse_after=2, clock=lambda: now[0])
        s = session(pacer=pacer)
        assert s.pace() == 0.0
        delay = s.pace()
        assert delay is not None
        assert delay > 0
        now[0] = 0.5
        delay = s.pace()
        assert delay is not None
        assert delay > 0
        now[0] = 2.5
        assert s.pace() is None


class TestReplyCache:
    def test_remembers_last_answers_per_station(self) -> None:
        """A resent CALL id finds the answer sent before; old ones age out."""
        cache = ReplyCache(per_station=2)
        cache.put("CP1", "a", "Heartbeat", 1, b"A")
        cache.put("CP1", "b", "Heartbeat", 2, b"B")
        cache.put("CP1", "c", "Heartbeat", 3, b"C")
        assert cache.get("CP1", "a", "Heartbeat", 1) is None
        assert cache.get("CP1", "c", "Heartbeat", 3) == b"C"
        assert cache.get("CP1", "c", "Authorize", 3) is None
        assert cache.get("CP2", "c", "Heartbeat", 3) is None

    def test_a_reused_id_with_another_frame_is_not_a_resend(self) -> None:
        """Only the same frame text under the id matches; its new answer replaces the old."""
        cache = ReplyCache()
        cache.put("CP1", "1", "StatusNotification", 10, b"old")
        assert cache.get("CP1", "1", "StatusNotification", 11) is None
        cache.put("CP1", "1", "StatusNotification", 11, b"new")
        assert cache.get("CP1", "1", "StatusNotification", 11) == b"new"
        assert cache.get("CP1", "1", "StatusNotification", 10) is None
