"""OCPP 1.6 payloads to domain values: defaults, units, connector mapping."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from csms.core.domain import AuthorizationStatus, IdTokenInfo
from csms.transport import rpc
from protocols.ocpp16 import convert

T = "2026-01-02T03:04:05Z"


class TestSignedValues:
    def test_each_signature_goes_to_the_reading_it_signs(self) -> None:
        """Energy and power readings, each signed: each gets its own signature."""
        [energy, power] = convert.meter_samples(
            [
                {
                    "timestamp": T,
                    "sampledValue": [
                        {"value": "1234"},
                        {"value": "5000", "measurand": "Power.Active.Import", "unit": "W"},
                        {
                            "value": "SIG-P",
                            "format": "SignedData",
                            "measurand": "Power.Active.Import",
                        },
                        {"value": "SIG-E", "format": "SignedData"},
                    ],
                }
            ],
            "mv",
        )
        assert (energy.signed_data, power.signed_data) == ("SIG-E", "SIG-P")

    def test_a_signature_without_its_reading_signs_nothing_else(self) -> None:
        """A power signature beside an energy reading only, and a second energy signature:
        the energy reading keeps the first energy signature; nothing is overwritten."""
        [energy] = convert.meter_samples(
            [
                {
                    "timestamp": T,
                    "sampledValue": [
                        {"value": "1234"},
                        {"value": "SIG-A", "format": "SignedData"},
                        {"value": "SIG-B", "format": "SignedData"},
                        {
                            "value": "SIG-P",
                            "format": "SignedData",
                            "measurand": "Power.Active.Import",
                        },
                    ],
                }
            ],
            "mv",
        )
        assert energy.signed_data == "SIG-A"


class TestMeterSamples:
    def test_spec_defaults_apply_to_a_bare_value(self) -> None:
        """A sampled value with only a value is an energy register reading in Wh."""
        [s] = convert.meter_samples([{"timestamp": T, "sampledValue": [{"value": "1234"}]}], "mv")
        assert s.measurand == "Energy.Active.Import.Register"
        assert (s.value, s.unit) == (1234.0, "Wh")
        assert s.context == "Sample.Periodic"
        assert s.location == "Outlet"
        assert s.phase is None
        assert s.timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def test_kwh_and_kw_are_normalised(self) -> None:
        """kWh becomes Wh and kW becomes W, the value scaled by 1000."""
        samples = convert.meter_samples(
            [
                {
                    "timestamp": T,
                    "sampledValue": [
                        {"value": "12.5", "unit": "kWh"},
                        {
                            "value": "7.2",
                            "unit": "kW",
                            "measurand": "Power.Active.Import",
                            "phase": "L1",
                            "location": "Cable",
                            "context": "Transaction.End",
                        },
                    ],
                }
            ],
            "mv",
        )
        assert [(s.value, s.unit) for s in samples] == [(12500.0, "Wh"), (7200.0, "W")]
        assert (samples[1].phase, samples[1].location, samples[1].context) == (
            "L1",
            "Cable",
            "Transaction.End",
        )

    def test_non_energy_measurand_gets_no_unit_default(self) -> None:
        """Only energy defaults to Wh; a voltage without unit stays unitless."""
        [s] = convert.meter_samples(
            [{"timestamp": T, "sampledValue": [{"value": "230", "measurand": "Voltage"}]}], "mv"
        )
        assert s.unit is None

    def test_a_value_that_is_not_a_number_is_a_property_violation(self) -> None:
        """'abc' as a meter value is refused with the path of the bad field."""
        with pytest.raises(rpc.RpcError) as caught:
            convert.meter_samples([{"timestamp": T, "sampledValue": [{"value": "abc"}]}], "mv")
        assert caught.value.code == "PropertyConstraintViolation"
        assert caught.value.details["path"] == "mv[0].sampledValue[0].value"

    def test_signed_values_are_left_out(self) -> None:
        """SignedData carries no number to bill on."""
        samples = convert.meter_samples(
            [{"timestamp": T, "sampledValue": [{"value": "QUJD", "format": "SignedData"}]}], "mv"
        )
        assert samples == ()


class TestConnectors:
    def test_connector_zero_is_the_station(self) -> None:
        """1.6 connector 0 is EVSE 0; connector N is EVSE N, connector 1."""
        assert convert.evse_of(0) == (0, 0)
        assert convert.evse_of(2) == (2, 1)


class TestIdTagInfo:
    def test_expiry_and_parent_are_spelled_out(self) -> None:
        """idTagInfo carries expiryDate and parentIdTag when known."""
        info = IdTokenInfo(AuthorizationStatus.ACCEPTED, datetime(2030, 1, 1, tzinfo=UTC), "G1")
        assert convert.id_tag_info(info) == {
            "status": "Accepted",
            "expiryDate": "2030-01-01T00:00:00.000Z",
            "parentIdTag": "G1",
        }
