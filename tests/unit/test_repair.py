"""Payload repairs: schema-driven, only what a tolerance allows, robust to anything."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csms.core.interop import Tolerance
from protocols.ocpp16.routes import ROUTES as ROUTES16
from protocols.ocpp201.routes import ROUTES as ROUTES201
from protocols.repair import boot_identity, repair
from protocols.schemas import bound_integers
from tests.hostile import bent_payloads, load_schema

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
ALL = frozenset(Tolerance)
ACTIONS = [("1.6", a) for a in sorted(ROUTES16)] + [("2.0.1", a) for a in sorted(ROUTES201)]


def fix(
    version: str, action: str, payload: dict[str, Any], on: frozenset[Tolerance] = ALL
) -> tuple[dict[str, Any], list[tuple[Tolerance, str, Any]]]:
    notes: list[tuple[Tolerance, str, Any]] = []
    schema = bound_integers(copy.deepcopy(load_schema(version, action)))
    fixed = repair(schema, action, payload, on, NOW, lambda t, p, o: notes.append((t, p, o)))
    return fixed, notes


class TestRepair:
    def test_nested_timestamps_are_found_by_the_schema(self) -> None:
        """meterValue[].timestamp of a 1.6 MeterValues gets the zone it lacked."""
        payload = {
            "connectorId": 1,
            "meterValue": [{"timestamp": "2026-11-26T08:00:00", "sampledValue": [{"value": "1"}]}],
        }
        fixed, notes = fix("1.6", "MeterValues", payload)
        assert fixed["meterValue"][0]["timestamp"] == "2026-11-26T08:00:00Z"
        assert notes == [
            (Tolerance.TIMESTAMP_WITHOUT_TIMEZONE, "meterValue[0].timestamp", "2026-11-26T08:00:00")
        ]

    def test_clock_not_set_becomes_the_receive_time(self) -> None:
        """A 2000-01-01 RTC default is replaced; the note keeps the original."""
        fixed, notes = fix(
            "2.0.1",
            "StatusNotification",
            {
                "timestamp": "2000-01-01T00:00:05Z",
                "connectorStatus": "Available",
                "evseId": 1,
                "connectorId": 1,
            },
        )
        assert fixed["timestamp"] == "2026-11-26T09:00:00.000Z"
        assert notes[0][0] is Tolerance.TIMESTAMP_CLOCK_NOT_SET
        assert notes[0][2] == "2000-01-01T00:00:05Z"

    def test_only_enabled_tolerances_act(self) -> None:
        """With enum_spelling alone, a naive timestamp stays as it is."""
        payload = {
            "connectorId": 1,
            "errorCode": "NoError",
            "status": "charging",
            "timestamp": "2026-11-26T08:00:00",
        }
        fixed, notes = fix(
            "1.6", "StatusNotification", payload, frozenset({Tolerance.ENUM_SPELLING})
        )
        assert fixed["status"] == "Charging"
        assert fixed["timestamp"] == "2026-11-26T08:00:00"
        assert [n[0] for n in notes] == [Tolerance.ENUM_SPELLING]

    def test_known_misspelling_and_ambiguity(self) -> None:
        """'Farenheit' means Fahrenheit; a value matching nothing is left for validation."""
        payload = {
            "connectorId": 1,
            "meterValue": [
                {
                    "timestamp": "2026-11-26T08:00:00Z",
                    "sampledValue": [{"value": "1", "unit": "Farenheit", "phase": "L9"}],
                }
            ],
        }
        fixed, _ = fix("1.6", "MeterValues", payload)
        sampled = fixed["meterValue"][0]["sampledValue"][0]
        assert (sampled["unit"], sampled["phase"]) == ("Fahrenheit", "L9")

    @pytest.mark.parametrize(
        ("payload", "identity"),
        [
            (
                {"chargePointVendor": "A", "chargePointModel": "B", "firmwareVersion": "1"},
                ("A", "B", "1"),
            ),
            (
                {"chargingStation": {"vendorName": "A", "model": "B"}, "reason": "PowerUp"},
                ("A", "B", None),
            ),
            ({"chargePointVendor": 7, "chargePointModel": ["x"]}, (None, None, None)),
            ({"chargingStation": "nonsense"}, (None, None, None)),
        ],
    )
    def test_boot_identity_of_either_version(
        self, payload: dict[str, Any], identity: tuple[str | None, ...]
    ) -> None:
        """Vendor, model, firmware read before validation; wrong types are None."""
        assert boot_identity(payload) == identity


class TestRepairHostileInput:
    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(data=st.data(), which=st.sampled_from(ACTIONS))
    def test_any_payload_comes_back_as_a_dict(
        self, data: st.DataObject, which: tuple[str, str]
    ) -> None:
        """All tolerances on, a bent payload of any action: no exception, a dict back."""
        version, action = which
        payload = data.draw(bent_payloads(load_schema(version, action)))
        if not isinstance(payload, dict):
            return
        fixed, _ = fix(version, action, payload)
        assert isinstance(fixed, dict)


class TestBootIdentityTooLong:
    SERIAL = "S" * 26  # the 1.6 schema allows 25

    def boot(self, serial: str) -> dict[str, Any]:
        return {"chargePointVendor": "V", "chargePointModel": "M", "chargeBoxSerialNumber": serial}

    def test_an_over_long_serial_is_truncated_with_the_tolerance(self) -> None:
        """26 characters become the first 25, and the note keeps the original."""
        fixed, notes = fix("1.6", "BootNotification", self.boot(self.SERIAL))
        assert fixed["chargeBoxSerialNumber"] == self.SERIAL[:25]
        assert notes == [(Tolerance.BOOT_IDENTITY_TOO_LONG, "chargeBoxSerialNumber", self.SERIAL)]

    def test_other_tolerances_do_not_truncate(self) -> None:
        """A profile with only enum_spelling leaves the serial for validation to refuse."""
        on = frozenset({Tolerance.ENUM_SPELLING})
        fixed, notes = fix("1.6", "BootNotification", self.boot(self.SERIAL), on)
        assert (fixed["chargeBoxSerialNumber"], notes) == (self.SERIAL, [])

    def test_a_serial_of_exactly_the_limit_is_not_repaired(self) -> None:
        """25 characters are valid: nothing to note."""
        fixed, notes = fix("1.6", "BootNotification", self.boot("S" * 25))
        assert (fixed["chargeBoxSerialNumber"], notes) == ("S" * 25, [])

    def test_over_long_strings_elsewhere_are_left_alone(self) -> None:
        """An over-long idTag in Authorize is not a BootNotification identity string."""
        fixed, notes = fix("1.6", "Authorize", {"idTag": "X" * 21})
        assert (fixed["idTag"], notes) == ("X" * 21, [])


class TestDeeplyNestedData:
    def test_object_data_nested_too_deep_is_left_for_validation(self) -> None:
        """DataTransfer data 300 objects deep is not stringified (orjson stops at 255)."""
        deep: dict[str, Any] = {}
        for _ in range(300):
            deep = {"a": deep}
        payload = {"vendorId": "V", "data": deep}
        fixed, notes = fix("1.6", "DataTransfer", payload)
        assert (fixed["data"], notes) == (deep, [])
