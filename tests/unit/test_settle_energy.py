"""Billing integrity: the station's figures are billed unless physics rules them out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csms.core.settlement import (
    CLOCK_SLACK_S,
    OVERRIDING_RULES,
    PHYSICAL_MAX_POWER_W,
    ROUNDING_WH,
    Settlement,
    is_overridden,
    settle_energy,
)

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def settle(
    start: float | None,
    stop: float | None,
    readings: Sequence[tuple[float, float]],
    *,
    minutes: float = 60,
    max_power_w: float | None = None,
) -> Settlement:
    """A session from T0 to T0 + minutes; readings as (minute, Wh)."""
    return settle_energy(
        (T0, start),
        (at(minutes), stop),
        [(at(m), wh) for m, wh in readings],
        max_power_w=max_power_w,
    )


class TestSimulatorFleetSessions:
    """The sessions a third-party simulator's fleet was billed short for (issue 20)."""

    @pytest.mark.parametrize(
        ("start", "readings", "stop", "energy"),
        [
            (0, [(1, 136.47), (2, 199.19)], 199, 199),
            (0, [(1, 60)], 100, 100),
            (0, [(1, 49.12)], 49, 49),
            (0, [(1, 40)], 100, 100),
            (12_000, [(1, 12_030)], 12_049, 49),
        ],
    )
    def test_a_meter_that_really_starts_at_zero_is_billed_the_stations_energy(
        self, start: float, readings: list[tuple[float, float]], stop: float, energy: float
    ) -> None:
        """Each row of the table is billed the station's stop - start, overriding nothing."""
        settled = settle(start, stop, readings, minutes=3)
        assert settled.energy_wh == energy
        assert not is_overridden(settled.anomalies)
        assert "meter_start_placeholder" not in settled.anomalies
        assert "meter_stop_placeholder" not in settled.anomalies


class TestHonestMeters:
    def test_energy_is_stop_minus_start(self) -> None:
        """A normal session bills meterStop - meterStart with no finding."""
        assert settle(10_000, 16_000, [(10, 11_000), (40, 14_000)]) == Settlement(6_000, ())

    def test_no_samples_at_all_is_fine(self) -> None:
        """Start and stop alone are enough."""
        assert settle(0, 2_500, []) == Settlement(2_500, ())

    def test_a_stop_rounded_below_the_last_reading_is_not_a_finding(self) -> None:
        """meterStop 49 after a reading of 49.12 Wh is whole-Wh rounding."""
        assert settle(0, 49, [(1, 49.12)]).anomalies == ()


class TestPlaceholders:
    def test_a_start_of_zero_with_the_lifetime_register_a_minute_later(self) -> None:
        """A register at 3,096,681 Wh a minute after a start of 0 would be 180 MW: replaced."""
        settled = settle(0, 3_097_000, [(1, 3_096_681)], minutes=5)
        assert settled.energy_wh == 319
        assert settled.anomalies == ("meter_start_placeholder",)
        assert is_overridden(settled.anomalies)

    def test_the_stations_known_maximum_is_the_bound_where_given(self) -> None:
        """12 kWh in one minute is possible at 1 MW, not for a 22 kW wallbox."""
        readings = [(1, 12_000), (30, 20_000)]
        assert settle(0, 20_000, readings).energy_wh == 20_000
        settled = settle(0, 20_000, readings, max_power_w=22_000)
        assert (settled.energy_wh, settled.anomalies) == (8_000, ("meter_start_placeholder",))

    def test_a_zero_stop_below_the_start_is_replaced_by_the_last_reading(self) -> None:
        """meterStop 0 while the register reached 14000 cannot be true: negative energy."""
        settled = settle(10_000, 0, [(10, 12_000), (50, 14_000)])
        assert (settled.energy_wh, settled.anomalies) == (4_000, ("meter_stop_placeholder",))

    def test_a_stop_far_above_the_last_reading_is_replaced(self) -> None:
        """A stop 3 MWh above a reading taken a minute before it: the reading wins."""
        settled = settle(1_000, 3_100_000, [(30, 2_000), (59, 2_400)])
        assert (settled.energy_wh, settled.anomalies) == (1_400, ("meter_stop_implausible",))

    def test_a_stop_below_the_start_without_evidence_bills_nothing(self) -> None:
        """meterStop 9997 after meterStart 10000 and no samples: 0 Wh, flagged."""
        assert settle(10_000, 9_997, []) == Settlement(0, ("meter_stop_below_start",))

    @pytest.mark.parametrize(
        ("start", "stop", "readings", "expected"),
        [
            (None, 5_000, [(5, 1_000), (30, 4_000)], Settlement(4_000, ("meter_start_missing",))),
            (1_000, None, [(5, 1_000), (30, 4_000)], Settlement(3_000, ("meter_stop_missing",))),
            (None, None, [], Settlement(0, ("no_meter_readings",))),
        ],
    )
    def test_missing_readings_come_from_the_samples(
        self,
        start: float | None,
        stop: float | None,
        readings: list[tuple[float, float]],
        expected: Settlement,
    ) -> None:
        """A stop of a session never seen (no meterStart) uses the first sample."""
        assert settle(start, stop, readings) == expected


class TestTheBound:
    CEILING_AT_ONE_MINUTE = PHYSICAL_MAX_POWER_W * (60 + CLOCK_SLACK_S) / 3600 + ROUNDING_WH

    def test_a_rise_just_within_the_bound_is_the_stations(self) -> None:
        """A first reading 0.01 Wh under 1 MW x (60 s + slack) + rounding keeps meterStart 0."""
        reading = self.CEILING_AT_ONE_MINUTE - 0.01
        settled = settle(0, reading + 100, [(1, reading)])
        assert settled == Settlement(reading + 100, ())

    def test_a_rise_just_beyond_the_bound_is_a_placeholder(self) -> None:
        """0.01 Wh more and meterStart 0 cannot be true: the reading is the start."""
        reading = self.CEILING_AT_ONE_MINUTE + 0.01
        settled = settle(0, reading + 100, [(1, reading)])
        assert settled == Settlement(100, ("meter_start_placeholder",))
        assert abs(self.CEILING_AT_ONE_MINUTE - 33_334.33) < 0.01  # the documented figure

    def test_the_time_counted_is_from_the_start_to_the_reading(self) -> None:
        """30 kWh a minute after the start is possible at 1 MW; a reading stamped before
        the start counts as no time at all (only the slack)."""
        assert settle(1_000, 40_000, [(1, 31_000)]).anomalies == ()
        settled = settle(1_000, 40_000, [(-0.5, 21_000)])
        assert settled.anomalies == ("meter_start_placeholder",)


class TestWhatBillingIsTold:
    @pytest.mark.parametrize(
        ("case", "rule"),
        [
            ((0, 3_097_000, [(1, 3_096_681)]), "meter_start_placeholder"),
            ((10_000, 0, [(10, 12_000), (50, 14_000)]), "meter_stop_placeholder"),
            ((1_000, 3_100_000, [(30, 2_000), (59, 2_400)]), "meter_stop_implausible"),
            ((10_000, 9_997, []), "meter_stop_below_start"),
            ((None, 5_000, [(5, 1_000)]), "meter_start_missing"),
            ((1_000, None, [(5, 4_000)]), "meter_stop_missing"),
            ((None, None, []), "no_meter_readings"),
        ],
    )
    def test_each_overriding_rule_marks_the_energy_overridden(
        self, case: tuple[float | None, float | None, list[tuple[float, float]]], rule: str
    ) -> None:
        """Every rule that replaces a station's figure says so (energy_overridden)."""
        settled = settle(*case)
        assert rule in settled.anomalies
        assert rule in OVERRIDING_RULES
        assert is_overridden(settled.anomalies)

    @pytest.mark.parametrize(
        ("case", "rule"),
        [
            ((1_000, 3_000, [(10, 2_000), (20, 1_500)]), "register_went_backwards"),
            ((10_000, 13_000, [(30, 14_000)]), "meter_stop_below_register"),
            ((0, 3_000_000, []), "energy_implausible"),
            ((52_000, 55_000, [(10, 52.3)]), "register_unit_mismatch"),
            ((52_000, 55_000, [(1, 0), (20, 1_500)]), "register_is_session_counter"),
            ((1_000, 1_500, [(10, 1_200), (11, 3_000_000)]), "register_implausible_rise"),
            ((-500, 1_000, []), "negative_register"),
        ],
    )
    def test_a_suspicion_changes_nothing_billed(
        self, case: tuple[float | None, float | None, list[tuple[float, float]]], rule: str
    ) -> None:
        """A rule that only suspects flags the session and bills the station's stop - start."""
        start, stop, readings = case
        settled = settle(start, stop, readings, minutes=10 if rule == "energy_implausible" else 60)
        assert rule in settled.anomalies
        assert settled.energy_wh == max((stop or 0) - (start or 0), 0)
        assert not is_overridden(settled.anomalies)


class TestReviewedEdgeCases:
    def test_a_zero_stop_never_rescales_readings_below_the_start(self) -> None:
        """meterStop 0 after 12000 and a reading of 9000: no 9 MWh from a kWh guess."""
        settled = settle(10_000, 0, [(10, 12_000), (50, 9_000)])
        assert settled.energy_wh == 2_000
        assert "register_unit_mismatch" not in settled.anomalies

    def test_one_low_reading_among_good_ones_is_not_rescaled(self) -> None:
        """A single reading of 50 beside 20000 and 40000 is not kWh: the station's 50 kWh."""
        settled = settle(10_000, 60_000, [(5, 50), (20, 20_000), (40, 40_000)])
        assert settled.energy_wh == 50_000
        assert not is_overridden(settled.anomalies)

    def test_a_begin_sample_equal_to_a_placeholder_start_does_not_hide_it(self) -> None:
        """meterStart 0 and a Begin sample of 0, then 3,096,681 a minute later: 319 Wh."""
        settled = settle(0, 3_097_000, [(0, 0), (1, 3_096_681)], minutes=5)
        assert (settled.energy_wh, settled.anomalies) == (319, ("meter_start_placeholder",))

    def test_an_outlier_reading_the_stop_disagrees_with_is_only_flagged(self) -> None:
        """A reading of 3 MWh between 1200 and a stop of 1500: the station's 500 Wh, flagged."""
        settled = settle(1_000, 1_500, [(10, 1_200), (11, 3_000_000)])
        assert settled == Settlement(
            500, ("register_implausible_rise", "meter_stop_below_register")
        )

    def test_a_201_end_register_of_zero_is_replaced_by_the_last_good_reading(self) -> None:
        """2.0.1: start and stop are the first and last readings; an End of 0 is a placeholder."""
        readings = [(at(0), 10_000.0), (at(30), 14_000.0), (at(60), 0.0)]
        settled = settle_energy(readings[0], readings[-1], readings)
        assert settled.energy_wh == 4_000
        assert "meter_stop_placeholder" in settled.anomalies

    def test_a_201_begin_register_of_zero_before_the_lifetime_value_is_a_placeholder(
        self,
    ) -> None:
        """2.0.1: Begin 0, then the lifetime register a minute later: billed from the latter."""
        readings = [(at(0), 0.0), (at(1), 3_096_681.0), (at(30), 3_100_000.0)]
        settled = settle_energy(readings[0], readings[-1], readings)
        assert (settled.energy_wh, settled.anomalies) == (3_319, ("meter_start_placeholder",))

    def test_readings_arrive_in_any_order(self) -> None:
        """Stored samples and the stop's own are merged by time, not by arrival."""
        assert settle(0, 3_097_000, [(3, 3_096_900), (1, 3_096_681)], minutes=5).energy_wh == 319

    def test_a_negative_start_with_readings_is_replaced(self) -> None:
        """meterStart -500 cannot be a register: the first reading is the start."""
        settled = settle(-500, 1_500, [(1, 0)])
        assert (settled.energy_wh, settled.anomalies) == (1_500, ("meter_start_placeholder",))


class TestSuspicionsChangeNothing:
    def test_readings_going_backwards_are_flagged(self) -> None:
        """A register that drops mid-session is flagged; stop - start is still billed."""
        settled = settle(1_000, 3_000, [(10, 2_000), (20, 1_500), (30, 2_800)])
        assert settled == Settlement(2_000, ("register_went_backwards",))
        assert not is_overridden(settled.anomalies)

    def test_a_stop_below_the_last_reading_is_flagged_not_replaced(self) -> None:
        """meterStop 13000 after a reading of 14000: billed as the station says, flagged."""
        settled = settle(10_000, 13_000, [(30, 14_000)])
        assert settled == Settlement(3_000, ("meter_stop_below_register",))

    def test_an_impossible_session_without_readings_is_flagged(self) -> None:
        """3 MWh in ten minutes with no reading to say which figure is wrong."""
        settled = settle(0, 3_000_000, [], minutes=10)
        assert settled == Settlement(3_000_000, ("energy_implausible",))

    def test_kwh_sent_as_wh_is_rescaled_as_evidence(self) -> None:
        """Samples of 52.3 / 53.9 'Wh' beside meterStart 52000 are kWh; the station's bill."""
        settled = settle(52_000, 55_000, [(10, 52.3), (40, 53.9)])
        assert settled == Settlement(3_000, ("register_unit_mismatch",))

    def test_session_counter_samples_are_not_evidence(self) -> None:
        """Samples counting 0, 1500, 3000 in a lifetime-register session are flagged, not used."""
        settled = settle(52_000, 55_000, [(1, 0), (20, 1_500), (40, 3_000)])
        assert settled == Settlement(3_000, ("register_is_session_counter",))

    def test_energy_is_never_negative(self) -> None:
        """Whatever the inputs, the result is >= 0."""
        for start, stop, readings in [(5, 0, []), (100, 1, [(1, 50)]), (0, 0, [(1, 10), (2, 5)])]:
            assert settle(start, stop, readings).energy_wh >= 0


# A session of up to a day, a station of up to 350 kW, a meter at any value.
MAX_POWER_W = 350_000.0


@st.composite
def plausible_sessions(
    draw: st.DrawFn,
) -> tuple[float, float, list[tuple[float, float]], float]:
    """(start Wh, stop Wh, [(second, Wh)], seconds): what an honest station sends."""
    seconds = draw(st.floats(1, 86_400))
    start = draw(st.floats(0, 1e9) | st.sampled_from([0.0, 1.0, 100.0]))
    average_w = draw(st.floats(0, MAX_POWER_W))
    # A sample path: fractions of the session at which it was read, and how
    # far the register had come (monotone, never faster than MAX_POWER_W).
    moments = sorted(draw(st.lists(st.floats(0, 1), max_size=8)))
    readings = []
    wh = start
    previous = 0.0
    for moment in moments:
        most = MAX_POWER_W * (moment - previous) * seconds / 3600
        wh += draw(st.floats(0, min(most, average_w * seconds / 3600)))
        readings.append((moment * seconds, wh))
        previous = moment
    remaining = MAX_POWER_W * (1 - previous) * seconds / 3600
    stop = wh + draw(st.floats(0, remaining))
    return start, stop, readings, seconds


class TestProperties:
    @settings(max_examples=400, derandomize=True, deadline=None)
    @given(plausible_sessions())
    def test_a_plausible_session_is_billed_stop_minus_start(
        self, session: tuple[float, float, list[tuple[float, float]], float]
    ) -> None:
        """Any session a station of up to 350 kW could deliver bills exactly stop - start."""
        start, stop, readings, seconds = session
        settled = settle_energy(
            (T0, start),
            (T0 + timedelta(seconds=seconds), stop),
            [(T0 + timedelta(seconds=s), wh) for s, wh in readings],
        )
        assert settled.energy_wh == stop - start
        assert not is_overridden(settled.anomalies)

    @settings(max_examples=200, derandomize=True, deadline=None)
    @given(
        lifetime=st.floats(1e6, 1e9),
        minutes=st.floats(0, 10),
    )
    def test_a_placeholder_start_below_a_lifetime_register_is_caught(
        self, lifetime: float, minutes: float
    ) -> None:
        """A start of 0 and a register over 1 MWh within ten minutes: the reading is the start."""
        assert lifetime > PHYSICAL_MAX_POWER_W * (minutes * 60 + CLOCK_SLACK_S) / 3600
        settled = settle(0, lifetime + 500, [(minutes, lifetime)], minutes=20)
        assert settled.anomalies == ("meter_start_placeholder",)
        assert settled.energy_wh == 500
