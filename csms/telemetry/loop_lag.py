"""How late the event loop runs what is due: a stalled loop delays every
station's answer, whatever the database and the broker do."""

from __future__ import annotations

import asyncio
import contextlib

from csms.telemetry import metrics

INTERVAL_S = 0.25


class LoopLagMonitor:
    """Sleeps ``interval`` seconds at a time and records how much later than
    asked it woke (``csms_event_loop_lag_seconds``): four wakeups a second,
    nothing on the stations' path."""

    def __init__(self, interval: float = INTERVAL_S) -> None:
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self._interval
            await asyncio.sleep(self._interval)
            metrics.EVENT_LOOP_LAG.observe(max(0.0, loop.time() - due))
