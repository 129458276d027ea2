"""The billable energy of a session: the station's word unless physics rules it out.

The station's meterStart and meterStop are its own statement and are billed
as they are: ``energy_wh = stop - start``. The energy register samples taken
during the session are evidence. A rule overrides the station only when the
evidence makes its figure impossible, and then says so by name; a rule that
merely suspects something flags it and changes nothing.

"Impossible" is measured against a power bound: the station's known maximum
where one is given, else ``PHYSICAL_MAX_POWER_W``. Between two readings
``dt`` seconds apart the register can rise by at most
``max_power_w * (dt + CLOCK_SLACK_S) / 3600 + ROUNDING_WH``; a register never
falls by more than ``ROUNDING_WH``.

Rules that override (the figure billed is not the station's):

- ``meter_start_placeholder``: the register rose further than the bound
  allows, from meterStart to a reading or between two readings, and meterStop
  agrees with the readings after that rise (a start of 0, or a Begin sample
  of 0, sent after an offline start while the register reads its lifetime
  value); the reading after the last such rise is the start. A negative
  meterStart with readings is one too (a register is never negative).
- ``meter_stop_placeholder``: meterStop below the settled start (negative
  energy) while readings went on at or above the start; the last of those
  is the stop.
- ``meter_stop_implausible``: meterStop further above the last reading than
  the bound allows in the time between them; the last reading is the stop.
- ``meter_stop_below_start``: meterStop below the start with no reading to
  repair it; energy is 0.
- ``meter_start_missing`` / ``meter_stop_missing``: the station sent none;
  taken from the first / last reading.
- ``no_meter_readings``: nothing to bill on; energy is 0.

Rules that change the evidence, never the station's figures:

- ``register_unit_mismatch``: readings all below meterStart whose 1000-folds
  all lie between meterStart and meterStop (kWh sent as Wh); rescaled.
- ``register_is_session_counter``: readings all below half of meterStart and
  no higher than the session's energy (a per-session counter beside a
  lifetime meterStart); not used as evidence.

Rules that only flag:

- ``register_went_backwards``: a reading lower than the start or the one
  before it.
- ``meter_stop_below_register``: meterStop lower than the last reading.
- ``register_implausible_rise``: the readings rose further than the bound
  allows, but meterStop agrees with the readings before that rise (an
  outlier reading); nothing is replaced.
- ``energy_implausible``: the settled energy exceeds the bound over the whole
  session, and no reading shows which figure is wrong.
- ``negative_register``: a negative meterStart and no reading to replace it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime

from csms.core.records import record

# 1 MW: well above the fastest car chargers (350-400 kW CCS); an honest
# station's figures never come near it, a placeholder lifetime register does.
PHYSICAL_MAX_POWER_W = 1_000_000.0
# Timestamps to the second, and stations that stamp a sample at the start of
# its interval: the time between two readings is taken as this much longer.
CLOCK_SLACK_S = 60.0
# Registers are sent rounded (1.6 meterStart/meterStop are whole Wh).
ROUNDING_WH = 1.0

# The rules whose finding means energy_wh is not the station's own figure.
OVERRIDING_RULES = frozenset(
    {
        "meter_start_placeholder",
        "meter_stop_placeholder",
        "meter_stop_implausible",
        "meter_stop_below_start",
        "meter_start_missing",
        "meter_stop_missing",
        "no_meter_readings",
    }
)

Reading = tuple[datetime, float]
# A station's statement: when, and the register it gave (None: it gave none).
Statement = tuple[datetime, float | None]


@record
class Settlement:
    """What a session is billed, and every rule that had something to say."""

    energy_wh: float
    anomalies: tuple[str, ...]


def settle_energy(
    start: Statement,
    stop: Statement,
    registers: Sequence[Reading],
    *,
    max_power_w: float | None = None,
) -> Settlement:
    """Settle a session from (started_at, meterStart), (ended_at, meterStop) and
    the energy register readings of the session (any order); energy >= 0."""
    bound = _Bound(max_power_w or PHYSICAL_MAX_POWER_W)
    (started_at, start_wh), (ended_at, stop_wh) = start, stop
    anomalies: list[str] = []
    readings = sorted(registers)
    readings = _rescaled(start_wh, stop_wh, readings, anomalies)
    if _is_session_counter(start_wh, stop_wh, readings):
        anomalies.append("register_is_session_counter")
        readings = []
    chain = ([start_wh] if start_wh is not None else []) + [wh for _, wh in readings]
    if any(b < a - ROUNDING_WH for a, b in itertools.pairwise(chain)):
        anomalies.append("register_went_backwards")

    if start_wh is None:
        if readings:
            started_at, start_wh = readings[0]
            anomalies.append("meter_start_missing")
    else:
        after = _after_impossible_rise(bound, (started_at, start_wh), readings)
        # The rise is the start's fault only if the stop agrees with what follows it.
        if after is not None and (stop_wh is None or stop_wh >= after[1] - ROUNDING_WH):
            started_at, start_wh = after
            anomalies.append("meter_start_placeholder")
        elif after is not None:
            anomalies.append("register_implausible_rise")
        elif start_wh < 0 and readings:
            started_at, start_wh = readings[0]
            anomalies.append("meter_start_placeholder")
        elif start_wh < 0:
            anomalies.append("negative_register")

    if stop_wh is None:
        if readings:
            ended_at, stop_wh = readings[-1]
            anomalies.append("meter_stop_missing")
    elif start_wh is not None and stop_wh < start_wh:
        went_on = [r for r in readings if r[1] >= start_wh]
        if went_on:
            ended_at, stop_wh = went_on[-1]
            anomalies.append("meter_stop_placeholder")
        else:
            anomalies.append("meter_stop_below_start")
            return Settlement(0.0, tuple(anomalies))
    elif readings and not bound.allows(readings[-1], (ended_at, stop_wh)):
        ended_at, stop_wh = readings[-1]
        anomalies.append("meter_stop_implausible")
    elif readings and stop_wh < readings[-1][1] - ROUNDING_WH:
        anomalies.append("meter_stop_below_register")

    if start_wh is None or stop_wh is None:
        anomalies.append("no_meter_readings")
        return Settlement(0.0, tuple(anomalies))
    if not bound.allows((started_at, start_wh), (ended_at, stop_wh)):
        anomalies.append("energy_implausible")
    return Settlement(float(max(stop_wh - start_wh, 0.0)), tuple(anomalies))


def _after_impossible_rise(
    bound: _Bound, start: Reading, readings: Sequence[Reading]
) -> Reading | None:
    """The reading just after the last rise the bound rules out (from the start
    or between readings), or None: everything before it is a placeholder."""
    found = None
    previous = start
    for reading in readings:
        if not bound.allows(previous, reading):
            found = reading
        previous = reading
    return found


def is_overridden(anomalies: Sequence[str]) -> bool:
    """True when a rule replaced the station's own figure (see OVERRIDING_RULES)."""
    return any(a in OVERRIDING_RULES for a in anomalies)


class _Bound:
    """How far a register can rise between two readings at the power bound."""

    __slots__ = ("_wh_per_second",)

    def __init__(self, max_power_w: float) -> None:
        self._wh_per_second = max_power_w / 3600

    def allows(self, earlier: Reading, later: Reading) -> bool:
        seconds = max((later[0] - earlier[0]).total_seconds(), 0.0)
        ceiling = self._wh_per_second * (seconds + CLOCK_SLACK_S) + ROUNDING_WH
        return later[1] - earlier[1] <= ceiling


def _rescaled(
    start: float | None, stop: float | None, readings: list[Reading], anomalies: list[str]
) -> list[Reading]:
    """Readings that are all below meterStart while their 1000-fold lies between
    meterStart and meterStop: kWh sent as Wh. All or none are rescaled."""
    if not start or stop is None or stop < start or not readings:
        return readings
    low, high = start - ROUNDING_WH, stop + ROUNDING_WH
    if not all(wh < low <= wh * 1000 <= high for _, wh in readings):
        return readings
    anomalies.append("register_unit_mismatch")
    return [(at, wh * 1000) for at, wh in readings]


def _is_session_counter(start: float | None, stop: float | None, readings: list[Reading]) -> bool:
    """Readings far below a lifetime meterStart that fit the session's energy."""
    if not start or not readings:
        return False
    highest = max(wh for _, wh in readings)
    fits = stop is None or highest <= (stop - start) * 1.05 + ROUNDING_WH
    return highest < start * 0.5 and fits
