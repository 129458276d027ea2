"""Retention of the durable answers to stations' CALLs (docs/adr/0012-durable-answers.md).

A station resends a CALL whose answer it lost within seconds or minutes of
reconnecting; a day covers a station that was offline for hours, and keeps
``call_answers`` near one row per station and action it uses. Every
instance prunes (the DELETE is idempotent, bounded, and cheap on a table of
that size).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import structlog

from csms.core.errors import StorageError
from csms.core.ports import CallAnswerStore, Clock

log = structlog.get_logger("csms.answers")

ANSWER_RETENTION = timedelta(hours=24)
PRUNE_INTERVAL_S = 3600.0
PRUNE_BATCH = 10_000


class AnswerRetention:
    """Deletes answers older than ``retention`` every ``interval`` seconds, in
    rounds of ``batch`` rows, from ``start()`` until ``stop()``."""

    def __init__(
        self,
        answers: CallAnswerStore,
        clock: Clock,
        *,
        retention: timedelta = ANSWER_RETENTION,
        interval: float = PRUNE_INTERVAL_S,
        batch: int = PRUNE_BATCH,
    ) -> None:
        self._answers = answers
        self._clock = clock
        self._retention = retention
        self._interval = interval
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="csms-answer-retention")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def prune(self) -> int:
        """Delete every answer past its retention now; how many."""
        cutoff = self._clock() - self._retention
        total = 0
        while True:
            deleted = await self._answers.prune_call_answers(cutoff, self._batch)
            total += deleted
            if deleted < self._batch:
                break
        if total:
            log.info("call_answers_pruned", deleted=total, answered_before=cutoff.isoformat())
        return total

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.prune()
            except StorageError as exc:  # the next round tries again
                log.warning("call_answers_not_pruned", error=str(exc))
