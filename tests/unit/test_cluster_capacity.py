"""The capacity benchmark's arithmetic: spread, workers, and what fits after a kill."""

from __future__ import annotations

import math

from scripts.cluster_capacity import (
    home_of,
    kill_fits,
    largest_kill_fleet,
    survivor_load,
    tail,
    workers_needed,
)


class TestSpread:
    def test_stations_spread_evenly_over_the_processes(self) -> None:
        """Station i goes to process i mod N: 55,000 over 3 differ by at most one."""
        counts = [0, 0, 0]
        for index in range(55_000):
            counts[home_of(index, 3)] += 1
        assert counts == [18_334, 18_333, 18_333]

    def test_enough_load_workers_for_their_open_file_limit(self) -> None:
        """Each worker holds at most 14,000 stations, and there are at least two."""
        assert workers_needed(55_000) == 4
        assert workers_needed(1_000) == 2


class TestWhatFitsAfterAKill:
    def test_55000_over_two_survivors_does_not_fit_under_20000_files(self) -> None:
        """27,500 stations per survivor exceed a 20,000 open-file limit."""
        assert survivor_load(55_000, 3) == 27_500
        assert not kill_fits(55_000, 3, 20_000)

    def test_the_largest_fleet_that_fits_does_fit(self) -> None:
        """3 x 13,000 stations leave 19,500 per survivor: under 20,000 with the margin."""
        largest = largest_kill_fleet(3, 20_000)
        assert largest % 3 == 0
        assert kill_fits(largest, 3, 20_000)
        assert not kill_fits(largest + 3, 3, 20_000)
        assert kill_fits(39_000, 3, 20_000)


def test_tail_reports_milliseconds_and_nothing_for_no_samples() -> None:
    """p50, p99 and max in ms; an empty sample is NaN, not an error."""
    figures = tail([0.001 * k for k in range(1, 101)])
    assert figures["count"] == 100
    assert math.isclose(figures["p50_ms"], 50.0)
    assert math.isclose(figures["p99_ms"], 99.0)
    assert math.isclose(figures["max_ms"], 100.0)
    assert math.isnan(tail([])["p99_ms"])
