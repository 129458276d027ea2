"""The durable answers to stations' CALLs (``CallAnswered`` ops), as the
retention task and the tests see them (docs/adr/0012-durable-answers.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from csms.core.ports.writes import CallAnswered


class CallAnswerStore(Protocol):
    async def find_call_answer(self, station_id: str, action: str) -> CallAnswered | None:
        """The last answer committed to ``station_id``'s ``action``; None if none is kept."""
        ...

    async def prune_call_answers(self, answered_before: datetime, limit: int = 10_000) -> int:
        """Delete up to ``limit`` answers committed before ``answered_before``; how many."""
        ...
