"""OCPP-J framing and the RPC rules, without sockets (so it tests without mocks).

A frame is ``[2, id, action, payload]`` (CALL), ``[3, id, payload]``
(CALLRESULT) or ``[4, id, code, description, details]`` (CALLERROR). Every
CALL a station sends gets exactly one answer; a frame we cannot read gets a
CALLERROR with the id we could read, else ``"-1"`` (OCPP 2.0.1's rule, the
only sane one for 1.6 too).
"""

from __future__ import annotations

from typing import Any

import orjson

from csms.core.errors import OcppError
from csms.core.records import record

CALL = 2
CALLRESULT = 3
CALLERROR = 4
MAX_MESSAGE_ID_LENGTH = 36
# No OCPP payload nests deeper than ~8 levels; a station's 1000-deep custom
# data would exceed what orjson writes back (254 levels) when it is stored.
MAX_PAYLOAD_DEPTH = 32
UNKNOWN_MESSAGE_ID = "-1"
PROTOCOL_ERROR = "ProtocolError"
PROPERTY_VIOLATION = "PropertyConstraintViolation"


@record
class ErrorCodes:
    """The OCPP-J error-code spellings of one protocol version."""

    formation: str
    occurrence: str
    framework: str
    message_type_not_supported: str
    # Every code the version's spec names (a metric label for a station's
    # CALLERROR is one of these or "other": a station cannot invent series).
    spec: frozenset[str]


@record
class Call:
    unique_id: str
    action: str
    payload: dict[str, Any]


@record
class CallResult:
    unique_id: str
    payload: dict[str, Any]


@record
class CallError:
    unique_id: str
    code: str
    description: str
    details: dict[str, Any]


Frame = Call | CallResult | CallError


class RpcError(OcppError):
    """Answer the CALL with this CALLERROR (the peer's fault unless InternalError)."""

    def __init__(
        self,
        code: str,
        description: str,
        details: dict[str, Any] | None = None,
        unique_id: str = UNKNOWN_MESSAGE_ID,
    ) -> None:
        super().__init__(code, description, details)
        self.unique_id = unique_id

    def frame(self, unique_id: str | None = None) -> bytes:
        return encode_call_error(
            unique_id or self.unique_id, self.code, self.description, self.details
        )


def decode(raw: str | bytes, codes: ErrorCodes) -> Frame:
    """Parse one WebSocket message; raise RpcError (to send back) if it is not
    a well-formed OCPP-J frame."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RpcError(codes.framework, "frame is not valid JSON") from None
    if not isinstance(message, list) or len(message) < 2:
        raise RpcError(codes.framework, "frame is not a JSON array [type, id, ...]")
    type_id, unique_id = message[0], message[1]
    if not isinstance(unique_id, str) or not unique_id:
        raise RpcError(codes.framework, "message id is not a non-empty string")
    if len(unique_id) > MAX_MESSAGE_ID_LENGTH:
        raise RpcError(
            codes.framework,
            f"message id is longer than {MAX_MESSAGE_ID_LENGTH} characters",
            unique_id=unique_id[:MAX_MESSAGE_ID_LENGTH],
        )
    if type_id == CALL and type(type_id) is int:
        if len(message) < 4:
            raise RpcError(
                PROTOCOL_ERROR, "incomplete CALL: [2, id, action, {payload}]", unique_id=unique_id
            )
        if len(message) > 4:
            raise RpcError(codes.formation, "a CALL has 4 elements", unique_id=unique_id)
        action, payload = message[2], message[3]
        if not isinstance(action, str) or not action:
            raise RpcError(codes.formation, "action is not a string", unique_id=unique_id)
        if not isinstance(payload, dict):
            raise RpcError(codes.formation, "payload is not a JSON object", unique_id=unique_id)
        _check_storable(raw, payload, unique_id, codes)
        return Call(unique_id, action, payload)
    if type_id == CALLRESULT and type(type_id) is int:
        payload = message[2] if len(message) > 2 else None
        if len(message) != 3 or not isinstance(payload, dict):
            raise RpcError(
                codes.formation, "a CALLRESULT is [3, id, {payload}]", unique_id=unique_id
            )
        return CallResult(unique_id, payload)
    if type_id == CALLERROR and type(type_id) is int:
        if len(message) != 5:
            raise RpcError(codes.formation, "a CALLERROR has 5 elements", unique_id=unique_id)
        code, description, details = message[2], message[3], message[4]
        return CallError(
            unique_id,
            str(code),
            str(description),
            details if isinstance(details, dict) else {},
        )
    raise RpcError(
        codes.message_type_not_supported,
        f"message type {type_id!r} is not CALL (2), CALLRESULT (3) or CALLERROR (4)",
        unique_id=unique_id,
    )


def _check_storable(
    raw: str | bytes, payload: dict[str, Any], unique_id: str, codes: ErrorCodes
) -> None:
    """Refuse what no database can store: nesting beyond MAX_PAYLOAD_DEPTH
    (FormationViolation) and U+0000 in a string (PropertyConstraintViolation;
    PostgreSQL text and jsonb cannot hold it). The raw text is scanned first
    (C speed); the payload is walked only when it might hold either."""
    if isinstance(raw, bytes):
        nul, brackets = b"\\u0000" in raw, raw.count(b"{") + raw.count(b"[")
    else:
        nul, brackets = "\\u0000" in raw, raw.count("{") + raw.count("[")
    if not nul and brackets <= MAX_PAYLOAD_DEPTH:
        return
    if brackets > MAX_PAYLOAD_DEPTH and _depth(payload) > MAX_PAYLOAD_DEPTH:
        raise RpcError(
            codes.formation,
            f"payload nests deeper than {MAX_PAYLOAD_DEPTH} levels",
            unique_id=unique_id,
        )
    if nul and _has_nul(payload):
        raise RpcError(
            PROPERTY_VIOLATION, "a string contains the NUL character", unique_id=unique_id
        )


def _depth(value: Any) -> int:
    """Nesting depth of containers (the payload object is 1), level by level,
    stopping beyond the limit: no recursion for a hostile depth to exhaust,
    ~10 us for a 40-sample MeterValues (a tenth of its schema validation)."""
    level, depth = [value], 1
    while depth <= MAX_PAYLOAD_DEPTH:
        deeper = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                kind = type(child)
                if kind is dict or kind is list:
                    deeper.append(child)
        if not deeper:
            break
        level, depth = deeper, depth + 1
    return depth


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return True
        elif isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def encode_call(unique_id: str, action: str, payload: dict[str, Any]) -> bytes:
    return orjson.dumps([CALL, unique_id, action, payload])


def encode_call_result(unique_id: str, payload: dict[str, Any]) -> bytes:
    return orjson.dumps([CALLRESULT, unique_id, payload])


def encode_call_error(
    unique_id: str, code: str, description: str, details: dict[str, Any]
) -> bytes:
    return orjson.dumps([CALLERROR, unique_id, code, description[:255], details])
