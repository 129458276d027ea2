"""structlog set-up: one JSON object per line on stdout, library lines included.

Context (station id, protocol, action, message id) is bound with
``structlog.contextvars`` and merged first, so every line of a handled
message carries it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog

SECRET_KEYS = frozenset({"password", "authorization", "api_token", "token_secret", "auth_key"})
# Keys whose values are id tokens (RFID UIDs, eMAIDs: personal data), at any
# depth of a logged value; masked when CSMS_LOG_MASK_TOKENS=true.
TOKEN_KEYS = frozenset(
    {
        "id_token",
        "id_tag",
        "idTag",
        "idToken",
        "parent_id_tag",
        "parentIdTag",
        "group_id",
        "groupIdToken",
    }
)
KEEP_LAST = 4


def _drop_secrets(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Last line of defence: a secret-named key never reaches the output."""
    for key in SECRET_KEYS.intersection(event):
        event[key] = "***"
    return event


def mask_token(value: str) -> str:
    """``04A1B2C3D4`` -> ``******C3D4``: enough to tell cards apart in a support
    call, not enough to clone one."""
    if len(value) <= KEEP_LAST:
        return "*" * len(value)
    return "*" * (len(value) - KEEP_LAST) + value[-KEEP_LAST:]


def _masked(key: str, value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return mask_token(value) if key in TOKEN_KEYS else value
    if depth > 8:
        return value
    if isinstance(value, dict):
        return {k: _masked(str(k), v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(key, v, depth + 1) for v in value]
    return value


def mask_id_tokens(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Id tokens under TOKEN_KEYS, also inside logged payloads, keep their last
    four characters only."""
    for key, value in event.items():
        if key in TOKEN_KEYS or isinstance(value, dict | list | tuple):
            event[key] = _masked(key, value)
    return event


def _dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default).decode()


def configure(level: str = "info", *, mask_tokens: bool = False) -> None:
    """Route structlog and the standard library's logging to JSON on stdout;
    with ``mask_tokens`` id tokens are masked (CSMS_LOG_MASK_TOKENS)."""
    numeric = logging.getLevelName(level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_secrets,
    ]
    if mask_tokens:
        shared.append(mask_id_tokens)
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # websockets logs every failed handshake at INFO with a traceback; keep
    # its noise out unless we debug.
    logging.getLogger("websockets").setLevel(max(numeric, logging.WARNING))
    logging.getLogger("aiohttp.access").setLevel(max(numeric, logging.WARNING))
    quiet_amqp_libraries(numeric)


def quiet_amqp_libraries(level: int) -> None:
    """aio-pika and aiormq log every failed reconnect of a broker outage as a warning
    or an error; the relay and the command consumer log the outage's changes of state
    themselves (csms/telemetry/outage.py). The libraries' own lines are shown only
    when debugging (``level`` DEBUG)."""
    for name in ("aio_pika", "aiormq"):
        logging.getLogger(name).setLevel(level if level <= logging.DEBUG else logging.CRITICAL)
