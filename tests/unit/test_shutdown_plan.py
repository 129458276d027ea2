"""How CSMS_SHUTDOWN_SECONDS is divided between the station waves and the steps after them."""

from __future__ import annotations

import pytest

from csms.app import ShutdownPlan
from csms.transport.server import MAX_WAVES, wave_count


class TestShutdownPlan:
    def test_the_default_window_keeps_the_contracts_ten_seconds(self) -> None:
        """With 10 s: waves until 5 s, stations closed by 6, relay by 7, everything by 8."""
        plan = ShutdownPlan.of(10.0)
        assert (plan.waves, plan.stations, plan.relay, plan.total) == (5.0, 6.0, 7.0, 8.0)

    @pytest.mark.parametrize("seconds", [0.5, 1.0, 4.0, 10.0, 30.0, 600.0])
    def test_the_steps_come_in_order_within_the_window(self, seconds: float) -> None:
        """Waves, then the last stations, the relay and the rest, all before the window ends."""
        plan = ShutdownPlan.of(seconds)
        assert 0 < plan.waves < plan.stations < plan.relay < plan.total < seconds
        assert plan.waves >= seconds / 2  # the waves take the largest share


class TestWaveCount:
    @pytest.mark.parametrize(
        ("stations", "waves"), [(0, 0), (1, 1), (10, 1), (11, 2), (60, 6), (50_000, MAX_WAVES)]
    )
    def test_a_handful_of_stations_is_one_wave_a_fleet_is_several(
        self, stations: int, waves: int
    ) -> None:
        """No waiting for none or a few stations; at most MAX_WAVES for a large fleet."""
        assert wave_count(stations) == waves
