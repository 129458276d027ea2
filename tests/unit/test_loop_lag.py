"""csms_event_loop_lag_seconds shows a loop that was held up."""

from __future__ import annotations

import asyncio
import time

from csms.telemetry import metrics
from csms.telemetry.loop_lag import LoopLagMonitor


def lag_samples() -> tuple[float, float, float]:
    """(count, sum, count of wakeups at most 0.1 s late)."""
    count = metrics.REGISTRY.get_sample_value("csms_event_loop_lag_seconds_count") or 0.0
    total = metrics.REGISTRY.get_sample_value("csms_event_loop_lag_seconds_sum") or 0.0
    on_time = metrics.REGISTRY.get_sample_value("csms_event_loop_lag_seconds_bucket", {"le": "0.1"})
    return count, total, on_time or 0.0


async def test_a_blocked_loop_is_measured_and_an_idle_one_is_not() -> None:
    monitor = LoopLagMonitor(interval=0.02)
    monitor.start()
    try:
        count, _, on_time = lag_samples()
        await asyncio.sleep(0.2)  # idle: every wakeup on time
        idle_count, idle_total, idle_on_time = lag_samples()
        assert idle_count - count >= 3
        assert idle_on_time - on_time == idle_count - count
        time.sleep(0.3)  # noqa: ASYNC251 - a handler that blocks the loop, on purpose
        await asyncio.sleep(0.1)
        after_count, after_total, after_on_time = lag_samples()
        assert after_total - idle_total >= 0.25
        late = (after_count - idle_count) - (after_on_time - idle_on_time)
        assert late >= 1  # the wakeup the block delayed (the histogram is process-wide)
    finally:
        await monitor.stop()
    stopped = lag_samples()
    await asyncio.sleep(0.1)
    assert lag_samples() == stopped  # nothing runs after stop
