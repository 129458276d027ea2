"""The load generator's reading of the server's histograms over its window."""

from __future__ import annotations

import math

from scripts.loadgen import server_tails

BOUNDS = (0.001, 0.01, 0.05, 0.1, 0.25, math.inf)


def cumulative(*counts: int) -> dict[float, float]:
    total, out = 0, {}
    for bound, count in zip(BOUNDS, counts, strict=True):
        total += count
        out[bound] = float(total)
    return out


def test_the_window_is_the_difference_and_its_tail_is_read_from_the_buckets() -> None:
    before = {"loop_lag": cumulative(100, 0, 0, 0, 0, 0), "commit": cumulative(5, 5, 0, 0, 0, 0)}
    after = {
        "loop_lag": cumulative(190, 8, 1, 1, 0, 0),  # 100 in the window, 1 over 50 ms
        "commit": cumulative(5, 1005, 0, 0, 0, 0),
    }
    tails = server_tails(before, after)
    assert tails["server_loop_lag_count"] == 100
    assert tails["server_loop_lag_over_50ms"] == 1  # the one in the 0.1 bucket
    assert tails["server_loop_lag_p99_bound_s"] == 0.05
    assert tails["server_commit_count"] == 1000
    assert tails["server_commit_p99_bound_s"] == 0.01
    assert tails["server_commit_over_50ms"] == 0


def test_a_server_without_the_histograms_reports_nothing() -> None:
    assert server_tails({}, {}) == {}
