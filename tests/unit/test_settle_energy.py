"""Billing integrity: energy from the best evidence, and each way real meters lie named."""

from __future__ import annotations

import pytest

from csms.domain import settle_energy


class TestHonestMeters:
    def test_energy_is_stop_minus_start(self) -> None:
        """A normal session bills meterStop - meterStart with no finding."""
        assert settle_energy(10_000, 16_000, [11_000, 14_000]) == (6_000, ())

    def test_no_samples_at_all_is_fine(self) -> None:
        """Start and stop alone are enough."""
        assert settle_energy(0, 2_500, []) == (2_500, ())

    def test_a_new_meter_starting_at_zero_is_not_a_placeholder(self) -> None:
        """meterStart 0 with readings that grow from near 0 is a real zero."""
        assert settle_energy(0, 9_000, [1_500, 3_000, 7_000]) == (9_000, ())


class TestLyingMeters:
    def test_kwh_sent_as_wh_is_rescaled(self) -> None:
        """Register samples 52.3 / 53.9 'Wh' next to meterStart 52000 are kWh."""
        energy, found = settle_energy(52_000, 55_000, [52.3, 53.9])
        assert (energy, found) == (3_000, ("register_unit_mismatch",))

    def test_session_counter_samples_are_not_evidence(self) -> None:
        """Samples counting 0, 1500, 3000 in a lifetime-register session are flagged, not used."""
        energy, found = settle_energy(52_000, 55_000, [0, 1_500, 3_000])
        assert (energy, found) == (3_000, ("register_is_session_counter",))

    def test_zero_meter_start_after_an_offline_start_uses_the_first_reading(self) -> None:
        """meterStart 0 with the register at 52000 would bill 55 kWh; the first reading wins."""
        energy, found = settle_energy(0, 55_000, [52_000, 53_500])
        assert (energy, found) == (3_000, ("meter_start_placeholder",))

    def test_meter_stop_a_few_wh_below_start_bills_nothing(self) -> None:
        """meterStop 9997 after meterStart 10000 and no samples: 0 Wh, flagged."""
        assert settle_energy(10_000, 9_997, []) == (0, ("meter_stop_below_start",))

    def test_zero_meter_stop_is_replaced_by_the_last_reading(self) -> None:
        """meterStop 0 while the register reached 14000 is a placeholder."""
        energy, found = settle_energy(10_000, 0, [12_000, 14_000])
        assert (energy, found) == (4_000, ("meter_stop_placeholder",))

    def test_readings_going_backwards_are_flagged(self) -> None:
        """A register that drops mid-session is suspicious even if start/stop agree."""
        energy, found = settle_energy(1_000, 3_000, [2_000, 1_500, 2_800])
        assert (energy, found) == (2_000, ("register_went_backwards",))

    @pytest.mark.parametrize(
        ("start", "stop", "readings", "expected"),
        [
            (None, 5_000, [1_000, 4_000], (4_000, ("meter_start_missing",))),
            (1_000, None, [1_000, 4_000], (3_000, ("meter_stop_missing",))),
            (None, None, [], (0, ("no_meter_readings",))),
        ],
    )
    def test_missing_readings_come_from_the_samples(
        self,
        start: float | None,
        stop: float | None,
        readings: list[float],
        expected: tuple[float, tuple[str, ...]],
    ) -> None:
        """A stop of a session never seen (no meterStart) uses the first sample."""
        assert settle_energy(start, stop, readings) == expected

    def test_energy_is_never_negative(self) -> None:
        """Whatever the inputs, the result is >= 0."""
        for start, stop, readings in [(5, 0, []), (100, 1, [50]), (0, 0, [10, 5])]:
            energy, _ = settle_energy(start, stop, readings)
            assert energy >= 0
