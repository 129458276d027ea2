"""OCPP-J framing: what a station's frame decodes to, and which CALLERROR a bad one earns."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csms.transport import rpc
from protocols import ocpp16, ocpp201
from protocols.ocpp16 import CODES
from tests.hostile import DEEP_NESTING, RANDOM_JSON, to_json


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


FUZZ = settings(max_examples=200, deadline=None, derandomize=True)
CODES_OF = {"1.6": ocpp16.CODES, "2.0.1": ocpp201.CODES}
FRAME_LIKE = st.lists(
    st.integers(-1, 6) | st.text(max_size=40) | RANDOM_JSON | DEEP_NESTING, max_size=6
)


def decode_or_error(raw: str | bytes, codes: rpc.ErrorCodes) -> rpc.Frame | rpc.RpcError:
    """What decode returns, or the RpcError it raises; any other exception propagates."""
    try:
        return rpc.decode(raw, codes)
    except rpc.RpcError as exc:
        return exc


def has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


class TestDecodeHostileInput:
    @FUZZ
    @given(
        raw=st.binary(max_size=200) | st.text(max_size=200),
        version=st.sampled_from(sorted(CODES_OF)),
    )
    def test_any_bytes_or_text_decode_or_raise_rpc_error(
        self, raw: str | bytes, version: str
    ) -> None:
        """Random input yields a frame or an RpcError that encodes to a CALLERROR, nothing else."""
        outcome = decode_or_error(raw, CODES_OF[version])
        if isinstance(outcome, rpc.RpcError):
            assert orjson.loads(outcome.frame())[0] == rpc.CALLERROR

    @FUZZ
    @given(frame=FRAME_LIKE, version=st.sampled_from(sorted(CODES_OF)))
    def test_frame_shaped_json_decodes_or_keeps_the_readable_id(
        self, frame: list[Any], version: str
    ) -> None:
        """An array that is almost a frame is decoded, or refused with the id it carries."""
        raw = to_json(frame)
        outcome = decode_or_error(raw, CODES_OF[version])
        if not isinstance(outcome, rpc.RpcError):
            assert outcome.unique_id == frame[1]
            return
        expected = "-1"
        if len(frame) > 1 and isinstance(frame[1], str) and frame[1]:
            try:
                orjson.loads(raw)
                expected = frame[1][: rpc.MAX_MESSAGE_ID_LENGTH]
            except orjson.JSONDecodeError:
                pass
        assert outcome.unique_id == expected

    @FUZZ
    @given(payload=RANDOM_JSON | DEEP_NESTING, as_bytes=st.booleans())
    def test_decoded_calls_are_storable(self, payload: Any, as_bytes: bool) -> None:
        """A decoded CALL payload nests at most MAX_PAYLOAD_DEPTH deep and has no NUL: orjson
        writes it back."""
        text = to_json([2, "m1", "DataTransfer", {"vendorId": "v", "data": payload}])
        outcome = decode_or_error(text.encode() if as_bytes else text, ocpp201.CODES)
        if isinstance(outcome, rpc.RpcError):
            assert outcome.code in ("FormationViolation", "PropertyConstraintViolation")
            assert outcome.unique_id == "m1" or outcome.code == "FormationViolation"
        else:
            assert isinstance(outcome, rpc.Call)
            orjson.dumps(outcome.payload)
            assert not has_nul(outcome.payload)

    def test_nul_character_in_a_string_is_a_property_violation(self) -> None:
        """PostgreSQL cannot store U+0000: refused before any handler, id kept."""
        error = decode_error('[2, "m7", "Authorize", {"idTag": "04\\u0000A1"}]')
        assert (error.code, error.unique_id) == ("PropertyConstraintViolation", "m7")
        error = decode_error(b'[2, "m7", "DataTransfer", {"vendorId": "v", "da\\u0000": 1}]')
        assert error.code == "PropertyConstraintViolation"

    def test_escaped_backslash_before_u0000_is_not_a_nul(self) -> None:
        """The text backslash-u0000 (an escaped backslash) is an ordinary string."""
        call = rpc.decode('[2, "m7", "DataTransfer", {"vendorId": "a\\\\u0000"}]', CODES)
        assert isinstance(call, rpc.Call)
        assert call.payload["vendorId"] == "a\\u0000"

    @pytest.mark.parametrize("depth", [rpc.MAX_PAYLOAD_DEPTH + 1, 300, 1000])
    def test_deep_nesting_is_a_formation_violation(self, depth: int) -> None:
        """A payload nesting deeper than the limit is refused, keeping the message id."""
        data = "[" * (depth - 1) + "1" + "]" * (depth - 1)
        error = decode_error(f'[2, "m8", "DataTransfer", {{"data": {data}}}]')
        assert (error.code, error.unique_id) == ("FormationViolation", "m8")

    def test_nesting_at_the_limit_is_accepted(self) -> None:
        """MAX_PAYLOAD_DEPTH levels (the payload object being the first) are fine."""
        data: Any = 1
        for _ in range(rpc.MAX_PAYLOAD_DEPTH - 1):
            data = {"a": data}
        assert isinstance(rpc.decode(to_json([2, "m", "DataTransfer", data]), CODES), rpc.Call)
