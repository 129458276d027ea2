"""Waiting for state that no event of ours signals: another process, the broker, a gauge."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

Check = Callable[[], bool] | Callable[[], Awaitable[bool]]


async def poll_until(check: Check, *, within: float, every: float = 0.02) -> None:
    """Call ``check`` every ``every`` s until it is true; TimeoutError after ``within`` s."""
    async with asyncio.timeout(within):
        while True:
            result = check()
            if await result if inspect.isawaitable(result) else result:
                return
            await asyncio.sleep(every)
