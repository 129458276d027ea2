"""OCPP-J framing: what a station's frame decodes to, and which CALLERROR a bad one earns."""

from __future__ import annotations

import orjson
import pytest

from csms import rpc
from protocols.ocpp16 import CODES


def decode_error(raw: str | bytes) -> rpc.RpcError:
    with pytest.raises(rpc.RpcError) as caught:
        rpc.decode(raw, CODES)
    return caught.value


class TestDecode:
    def test_call_decodes_to_action_and_payload(self) -> None:
        """A CALL frame yields its message id, action and payload."""
        frame = rpc.decode('[2, "m1", "Heartbeat", {}]', CODES)
        assert frame == rpc.Call("m1", "Heartbeat", {})

    def test_call_result_and_call_error_decode(self) -> None:
        """Answers to the CSMS's own CALLs decode with their id."""
        assert rpc.decode('[3, "x", {"status": "Accepted"}]', CODES) == rpc.CallResult(
            "x", {"status": "Accepted"}
        )
        error = rpc.decode('[4, "x", "NotSupported", "no", {}]', CODES)
        assert error == rpc.CallError("x", "NotSupported", "no", {})

    def test_binary_utf8_frame_is_read_like_text(self) -> None:
        """A frame sent as bytes is still parsed."""
        assert isinstance(rpc.decode(b'[2, "m", "Heartbeat", {}]', CODES), rpc.Call)

    @pytest.mark.parametrize(
        "raw",
        [
            "not json",
            "{}",
            "[2]",
            '"text"',
            '[2, 5, "Heartbeat", {}]',
            '[2, "", "A", {}]',
            b"\xff\xfe",
        ],
    )
    def test_unreadable_frames_are_formation_violations_with_unknown_id(self, raw: str) -> None:
        """A frame without a readable message id is answered with id -1."""
        error = decode_error(raw)
        assert error.code == "FormationViolation"
        assert orjson.loads(error.frame())[:3] == [4, "-1", "FormationViolation"]

    @pytest.mark.parametrize(
        "raw",
        [
            '[2, "m9", 7, {}]',
            '[2, "m9", "Heartbeat", []]',
            '[2, "m9", "Heartbeat", {}, 1]',
        ],
    )
    def test_malformed_call_keeps_its_message_id(self, raw: str) -> None:
        """A malformed CALL whose id is readable is answered with that id."""
        error = decode_error(raw)
        assert error.code == "FormationViolation"
        assert error.unique_id == "m9"

    @pytest.mark.parametrize("raw", ['[2, "m9", "Heartbeat"]', '[2, "m9"]'])
    def test_incomplete_call_is_a_protocol_error(self, raw: str) -> None:
        """A CALL missing its action or payload is incomplete: ProtocolError."""
        error = decode_error(raw)
        assert (error.code, error.unique_id) == ("ProtocolError", "m9")

    def test_unknown_message_type(self) -> None:
        """A message type other than 2, 3, 4 is refused, keeping the id."""
        error = decode_error('[7, "m2", "Heartbeat", {}]')
        assert error.unique_id == "m2"

    def test_overlong_message_id_is_refused(self) -> None:
        """Message ids are at most 36 characters."""
        assert (
            decode_error(orjson.dumps([2, "x" * 37, "Heartbeat", {}])).code == "FormationViolation"
        )


class TestReplyCache:
    def test_remembers_last_answers_per_station(self) -> None:
        """A resent CALL id finds the answer sent before; old ones age out."""
        cache = rpc.ReplyCache(per_station=2)
        cache.put("CP1", "a", "Heartbeat", b"A")
        cache.put("CP1", "b", "Heartbeat", b"B")
        cache.put("CP1", "c", "Heartbeat", b"C")
        assert cache.get("CP1", "a", "Heartbeat") is None
        assert cache.get("CP1", "c", "Heartbeat") == b"C"
        assert cache.get("CP1", "c", "Authorize") is None
        assert cache.get("CP2", "c", "Heartbeat") is None
