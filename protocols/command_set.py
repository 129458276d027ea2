"""What the versions' ``commands.py`` share: the shape of a version's
CSMS-initiated calls as the core uses them, and secret masking helpers."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from csms.services.commands import MASK, Effects, NeutralCommand

Payload = dict[str, Any]


@dataclass(frozen=True, slots=True)
class CommandSet:
    """One version's CSMS-initiated calls.

    - ``build(command)``: a neutral command as (action, payload); raises
      ``InvalidRequestError`` when this version cannot say it.
    - ``effects(station_id, action, request, response)``: what an answer
      changes (configuration, device model, reservations...).
    - ``mask(action, payload, response)``: a copy with every secret replaced
      by ``MASK`` (the payload itself when there is none).
    - ``password(action, request)``: the Basic-auth password a CALL sets, if any.
    """

    build: Callable[[NeutralCommand], tuple[str, Payload]]
    effects: Callable[[str, str, Payload, Payload], Effects]
    mask: Callable[[str, Payload, bool], Payload]
    password: Callable[[str, Payload], str | None]


def masked_items(
    payload: Payload, list_key: str, is_secret: Callable[[Any], bool], value_key: str
) -> Payload:
    """``payload`` with ``value_key`` masked in the items of ``payload[list_key]``
    that ``is_secret``; the same object when none is."""
    items = payload.get(list_key)
    if not isinstance(items, list) or not any(is_secret(item) for item in items):
        return payload
    out = copy.deepcopy(payload)
    for item in out[list_key]:
        if is_secret(item) and value_key in item:
            item[value_key] = MASK
    return out


def integer(value: Any) -> int | None:
    return value if type(value) is int else None
