"""The answer to the CALL being handled, made durable with its effects.

A handler that writes passes its service a ``Reply``: which CALL is being
answered and how the answer follows from the service's outcome. The service
adds ``reply.answered(outcome)`` (a ``CallAnswered`` op) to the unit it
commits, so the effects and the answer commit together or not at all; a
resend of the CALL after a reconnect, on this process or another, then finds
the answer instead of applying the effects again
(docs/adr/0012-durable-answers.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import orjson

from csms.core.ports import CallAnswered

T_contra = TypeVar("T_contra", contravariant=True)


class CallInHand(Protocol):
    """The station's CALL a handler answers (the session's ``rpc.Call``)."""

    @property
    def unique_id(self) -> str: ...

    @property
    def action(self) -> str: ...

    @property
    def payload(self) -> dict[str, Any]: ...


def request_digest(payload: dict[str, Any]) -> str:
    """A digest of a CALL's payload as received, blind to key order and spacing:
    a resend carries the same one; a new CALL reusing the message id (firmware
    that counts from 1 again after a reboot) almost surely another."""
    canonical = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


class Reply(Generic[T_contra]):
    """The CALL ``call`` of ``station_id`` and ``build``, its answer from an outcome."""

    __slots__ = ("build", "call", "station_id")

    def __init__(
        self, station_id: str, call: CallInHand, build: Callable[[T_contra], dict[str, Any]]
    ) -> None:
        self.station_id = station_id
        self.call = call
        self.build = build

    def answers(self, stored: CallAnswered | None) -> bool:
        """Is ``stored`` the answer to this very CALL (same id, action and payload)?"""
        call = self.call
        return (
            stored is not None
            and stored.message_id == call.unique_id
            and stored.action == call.action
            and stored.request_digest == request_digest(call.payload)
        )

    def answered(self, outcome: T_contra) -> CallAnswered:
        """The op recording the answer ``outcome`` gives, for the unit that commits it."""
        call = self.call
        return CallAnswered(
            self.station_id,
            call.action,
            call.unique_id,
            request_digest(call.payload),
            self.build(outcome),
        )
