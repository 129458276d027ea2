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

- ``meter_start_placeholder``: the first register reading is further above
  meterStart than the bound allows in the time between them (a start of 0
  sent after an offline start while the register reads its lifetime value);
  the first reading is the start.
- ``meter_stop_placeholder``: meterStop below the settled start (negative
  energy) while the readings went on at or above the start; the last
  reading is the stop.
- ``meter_stop_implausible``: meterStop further above the last reading than
  the bound allows in the time between them; the last reading is the stop.
- ``meter_stop_below_start``: meterStop below the start with no reading to
  repair it; energy is 0.
- ``meter_start_missing`` / ``meter_stop_missing``: the station sent none;
  taken from the first / last reading.
- ``no_meter_readings``: nothing to bill on; energy is 0.

Rules that change the evidence, never the station's figures:

- ``register_unit_mismatch``: readings below meterStart whose 1000-fold lies
  between meterStart and meterStop (kWh sent as Wh); rescaled.
- ``register_is_session_counter``: readings counting from 0 for this session
  while meterStart is the lifetime register; not used as evidence.

Rules that only flag:

- ``register_went_backwards``: a reading lower than the start or the one
  before it.
- ``meter_stop_below_register``: meterStop lower than the last reading.
- ``energy_implausible``: the settled energy exceeds the bound over the whole
  session, and no reading shows which figure is wrong.
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
    elif readings and not bound.allows((started_at, start_wh), readings[0]):
        started_at, start_wh = readings[0]
        anomalies.append("meter_start_placeholder")

    if stop_wh is None:
        if readings:
            ended_at, stop_wh = readings[-1]
            anomalies.append("meter_stop_missing")
    elif start_wh is not None and stop_wh < start_wh:
        if readings and readings[-1][1] >= start_wh:
            ended_at, stop_wh = readings[-1]
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
    """Readings below meterStart whose 1000-fold fits the session: kWh sent as Wh."""
    if not start or not readings:
        return readings
    ceiling = (stop if stop is not None and stop >= start else float("inf")) + ROUNDING_WH

    def fixed(wh: float) -> float:
        if wh < start - ROUNDING_WH and start - ROUNDING_WH <= wh * 1000 <= ceiling:
            return wh * 1000
        return wh

    rescaled = [(at, fixed(wh)) for at, wh in readings]
    if rescaled != readings:
        anomalies.append("register_unit_mismatch")
    return rescaled


def _is_session_counter(start: float | None, stop: float | None, readings: list[Reading]) -> bool:
    """Readings far below a lifetime meterStart that fit the session's energy."""
    if not start or not readings:
        return False
    highest = max(wh for _, wh in readings)
    fits = stop is None or highest <= (stop - start) * 1.05 + ROUNDING_WH
    return highest < start * 0.5 and fits
