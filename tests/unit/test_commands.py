"""Commands to stations without a station: neutral requests, their translation
per protocol, what answers change, secret masking and the schemas' multipleOf."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from csms.core.errors import InvalidRequestError
from csms.services.commands import MASK, NeutralCommand
from csms.transport.rpc import RpcError
from protocols import ocpp16, ocpp201
from protocols.common import Adapter
from tests.ocpp_samples import REQUESTS, schema_errors

ADAPTERS = {"1.6": ocpp16.adapter(), "2.0.1": ocpp201.adapter()}


def neutral(name: str, **body: Any) -> NeutralCommand:
    return NeutralCommand.parse(name, body)


class TestNeutralCommand:
    @pytest.mark.parametrize(
        ("name", "body", "message"),
        [
            ("launch", {}, "unknown command"),
            ("reset", {}, "needs type"),
            ("reset", {"type": "gentle"}, "'hard' or 'soft'"),
            ("reset", {"type": "soft", "evse": 1}, "not evse"),
            ("unlock", {"evse_id": "1"}, "non-negative integer"),
            ("change-availability", {"operative": "yes"}, "true or false"),
            ("start", {"id_token": ""}, "non-empty string"),
        ],
    )
    def test_a_bad_body_names_the_field(
        self, name: str, body: dict[str, Any], message: str
    ) -> None:
        """Unknown commands, missing, unknown or mistyped fields are refused with a reason."""
        with pytest.raises(InvalidRequestError, match=message):
            NeutralCommand.parse(name, body)

    def test_start_gets_a_remote_start_id_and_stop_takes_an_integer_id(self) -> None:
        """2.0.1 needs a remoteStartId, so one is drawn; a numeric transaction id becomes text."""
        assert 1 <= (neutral("start", id_token="T").remote_start_id or 0) < 2**31
        assert neutral("stop", transaction_id=42).transaction_id == "42"
        assert neutral("reset", type="hard").fields() == {"type": "hard"}


# (neutral command, body) -> the 1.6 and 2.0.1 CALLs it becomes.
TRANSLATIONS: list[tuple[str, dict[str, Any], tuple[str, Any], tuple[str, Any]]] = [
    (
        "start",
        {"id_token": "TAG", "evse_id": 2, "remote_start_id": 5},
        ("RemoteStartTransaction", {"idTag": "TAG", "connectorId": 2}),
        (
            "RequestStartTransaction",
            {"idToken": {"idToken": "TAG", "type": "Central"}, "remoteStartId": 5, "evseId": 2},
        ),
    ),
    (
        "stop",
        {"transaction_id": "17"},
        ("RemoteStopTransaction", {"transactionId": 17}),
        ("RequestStopTransaction", {"transactionId": "17"}),
    ),
    (
        "reset",
        {"type": "hard"},
        ("Reset", {"type": "Hard"}),
        ("Reset", {"type": "Immediate"}),
    ),
    (
        "reset",
        {"type": "soft"},
        ("Reset", {"type": "Soft"}),
        ("Reset", {"type": "OnIdle"}),
    ),
    (
        "unlock",
        {"evse_id": 2},
        ("UnlockConnector", {"connectorId": 2}),
        ("UnlockConnector", {"evseId": 2, "connectorId": 1}),
    ),
    (
        "change-availability",
        {"operative": False},
        ("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}),
        ("ChangeAvailability", {"operationalStatus": "Inoperative"}),
    ),
    (
        "change-availability",
        {"operative": True, "evse_id": 1},
        ("ChangeAvailability", {"connectorId": 1, "type": "Operative"}),
        ("ChangeAvailability", {"operationalStatus": "Operative", "evse": {"id": 1}}),
    ),
    (
        "trigger-message",
        {"message": "StatusNotification", "evse_id": 1},
        ("TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 1}),
        ("TriggerMessage", {"requestedMessage": "StatusNotification", "evse": {"id": 1}}),
    ),
    (
        "trigger-message",
        {"message": "LogStatusNotification"},
        ("ExtendedTriggerMessage", {"requestedMessage": "LogStatusNotification"}),
        ("TriggerMessage", {"requestedMessage": "LogStatusNotification"}),
    ),
]


class TestTranslation:
    @pytest.mark.parametrize(("name", "body", "v16", "v201"), TRANSLATIONS)
    def test_each_protocol_says_it_its_way_and_validly(
        self, name: str, body: dict[str, Any], v16: tuple[str, Any], v201: tuple[str, Any]
    ) -> None:
        """The CALL each version builds is the expected one and fits the official schema."""
        command = neutral(name, **body)
        for version, expected in (("1.6", v16), ("2.0.1", v201)):
            adapter = ADAPTERS[version]
            action, payload = adapter.commands.build(command)
            assert (action, payload) == expected
            adapter.validate_request(action, payload)
            assert schema_errors(version, action, payload) == []

    @pytest.mark.parametrize(
        ("version", "name", "body", "message"),
        [
            ("1.6", "stop", {"transaction_id": "TX-1"}, "integers"),
            ("1.6", "reset", {"type": "soft", "evse_id": 1}, "whole charge point"),
            ("1.6", "unlock", {"evse_id": 1, "connector_id": 2}, "one connector"),
            ("2.0.1", "trigger-message", {"message": "X", "connector_id": 1}, "needs evse_id"),
        ],
    )
    def test_what_a_protocol_cannot_say_is_refused(
        self, version: str, name: str, body: dict[str, Any], message: str
    ) -> None:
        """A neutral request that has no meaning in a protocol is a 422, not a guess."""
        with pytest.raises(InvalidRequestError, match=message):
            ADAPTERS[version].commands.build(neutral(name, **body))


class TestSamplesAndMultipleOf:
    @pytest.mark.parametrize("version", ["1.6", "2.0.1"])
    def test_every_sample_request_is_valid_for_both_validators(self, version: str) -> None:
        """The compiled validator and the reference one accept every sample request."""
        for action, payload in REQUESTS[version].items():
            ADAPTERS[version].validate_request(action, payload)
            assert schema_errors(version, action, payload) == [], action

    @pytest.mark.parametrize("limit", [21.4, 0.3, 7.7, 16.1, 32.0, 11, 0.7, 4.3])
    def test_one_decimal_limits_are_multiples_of_a_tenth(self, limit: float) -> None:
        """21.4 / 0.1 is 213.99999999999997 in floats; decimal arithmetic says 214."""
        payload = REQUESTS["1.6"]["SetChargingProfile"]
        schedule = payload["csChargingProfiles"]["chargingSchedule"]
        changed = {
            **payload,
            "csChargingProfiles": {
                **payload["csChargingProfiles"],
                "chargingSchedule": {
                    **schedule,
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
                },
            },
        }
        ADAPTERS["1.6"].validate_request("SetChargingProfile", changed)
        assert schema_errors("1.6", "SetChargingProfile", changed) == []

    @pytest.mark.parametrize("limit", [21.45, 4.35, 0.01])
    def test_two_decimal_limits_are_refused(self, limit: float) -> None:
        """A limit with a second decimal is a PropertyConstraintViolation on 1.6."""
        answer: dict[str, Any] = {
            "status": "Accepted",
            "connectorId": 1,
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
            },
        }
        with pytest.raises(RpcError) as caught:
            ADAPTERS["1.6"].validate_response("GetCompositeSchedule", answer)
        assert caught.value.code == "PropertyConstraintViolation"
        assert schema_errors("1.6", "GetCompositeSchedule", answer, response=True)
        answer["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = 21.4
        ADAPTERS["1.6"].validate_response("GetCompositeSchedule", answer)


class TestEffects:
    def effects(self, version: str, action: str, response: dict[str, Any]) -> Any:
        adapter: Adapter = ADAPTERS[version]
        return adapter.commands.effects("CP-1", action, REQUESTS[version][action], response)

    def test_1_6_configuration_is_read_and_written_but_never_the_password(self) -> None:
        """GetConfiguration keys are kept (not AuthorizationKey); an accepted change too."""
        got = self.effects(
            "1.6",
            "GetConfiguration",
            {
                "configurationKey": [
                    {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
                    {"key": "AuthorizationKey", "readonly": False, "value": "secret"},
                ]
            },
        )
        assert [(k.key, k.value, k.readonly) for k in got.configuration] == [
            ("HeartbeatInterval", "300", False)
        ]
        changed = self.effects("1.6", "ChangeConfiguration", {"status": "Accepted"})
        assert [(k.key, k.value, k.readonly) for k in changed.configuration] == [
            ("HeartbeatInterval", "60", None)
        ]
        assert (
            self.effects("1.6", "ChangeConfiguration", {"status": "Rejected"}).configuration == ()
        )

    def test_2_0_1_variables_become_device_model_values(self) -> None:
        """Accepted GetVariables results and SetVariables values are kept; unknown ones not."""
        got = self.effects(
            "2.0.1",
            "GetVariables",
            {
                "getVariableResult": [
                    {
                        "attributeStatus": "Accepted",
                        "attributeValue": "300",
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                    },
                    {
                        "attributeStatus": "UnknownVariable",
                        "component": {"name": "Nope"},
                        "variable": {"name": "Nope"},
                    },
                ]
            },
        )
        assert [(e.component, e.variable, e.value) for e in got.device_model] == [
            ("OCPPCommCtrlr", "HeartbeatInterval", "300")
        ]
        request = REQUESTS["2.0.1"]["SetVariables"]["setVariableData"][0]
        result = {key: request[key] for key in ("component", "variable")}
        result["attributeStatus"] = "Accepted"
        written = self.effects("2.0.1", "SetVariables", {"setVariableResult": [result]})
        assert [(e.variable, e.value) for e in written.device_model] == [
            ("TxUpdatedInterval", "60")
        ]

    @pytest.mark.parametrize("version", ["1.6", "2.0.1"])
    def test_lists_reservations_and_profiles(self, version: str) -> None:
        """Local list version, reservation, cancellation, profile and clearing criteria."""
        accepted = {"status": "Accepted"}
        number = "listVersion" if version == "1.6" else "versionNumber"
        assert self.effects(version, "GetLocalListVersion", {number: 9}).local_list_version == 9
        sent = self.effects(version, "SendLocalList", accepted).local_list_version
        assert sent == (3 if version == "1.6" else 4)
        reservation = self.effects(version, "ReserveNow", accepted).reservation
        assert (reservation.evse_id, reservation.id_token, reservation.expires_at) == (
            1,
            "TAG-1",
            datetime(2030, 1, 1, tzinfo=UTC),
        )
        cancelled = self.effects(version, "CancelReservation", accepted).reservation_cancelled
        assert cancelled == reservation.reservation_id
        profile = self.effects(version, "SetChargingProfile", accepted).charging_profile
        assert (profile.evse_id, profile.purpose) == (1, "TxDefaultProfile")
        cleared = self.effects(version, "ClearChargingProfile", accepted).profiles_cleared
        assert cleared.profile_id == profile.profile_id
        assert self.effects(version, "ReserveNow", {"status": "Occupied"}).reservation is None


class TestSecrets:
    def test_1_6_authorization_key_is_masked_in_requests_and_answers(self) -> None:
        """The password is found, masked in the request and in a GetConfiguration answer."""
        commands = ADAPTERS["1.6"].commands
        request = {"key": "AuthorizationKey", "value": "0123456789abcdef"}
        assert commands.password("ChangeConfiguration", request) == "0123456789abcdef"
        assert commands.mask("ChangeConfiguration", request, False)["value"] == MASK
        assert request["value"] == "0123456789abcdef"  # the original is untouched
        answer = {
            "configurationKey": [{"key": "AuthorizationKey", "readonly": False, "value": "x"}]
        }
        assert (
            commands.mask("GetConfiguration", answer, True)["configurationKey"][0]["value"] == MASK
        )
        plain = {"key": "HeartbeatInterval", "value": "60"}
        assert commands.mask("ChangeConfiguration", plain, False) is plain

    def test_2_0_1_passwords_are_masked(self) -> None:
        """BasicAuthPassword in SetVariables / GetVariables and the APN password."""
        commands = ADAPTERS["2.0.1"].commands
        action, request = ADAPTERS["2.0.1"].set_password("0123456789abcdef")
        assert commands.password(action, request) == "0123456789abcdef"
        assert commands.mask(action, request, False)["setVariableData"][0]["attributeValue"] == MASK
        network = REQUESTS["2.0.1"]["SetNetworkProfile"]
        with_apn = {
            **network,
            "connectionData": {
                **network["connectionData"],
                "apn": {"apn": "internet", "apnAuthentication": "AUTO", "apnPassword": "pw"},
            },
        }
        masked = commands.mask("SetNetworkProfile", with_apn, False)
        assert masked["connectionData"]["apn"]["apnPassword"] == MASK
        assert commands.password("SetNetworkProfile", with_apn) is None
