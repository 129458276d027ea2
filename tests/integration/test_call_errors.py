"""Every bad frame gets the CALLERROR the spec names, and the station stays connected."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from csms.app import Running
from scripts.simulate import SimStation
from tests.integration.conftest import ws_url

BAD_FRAMES: list[tuple[str, str | bytes, str, str]] = [
    # (case, frame, expected code, expected message id)
    ("not json", "{{{", "FormationViolation", "-1"),
    ("not an array", '{"a": 1}', "FormationViolation", "-1"),
    ("id not a string", '[2, 17, "Heartbeat", {}]', "FormationViolation", "-1"),
    ("payload not an object", '[2, "b1", "Heartbeat", [1]]', "FormationViolation", "b1"),
    ("too many elements", '[2, "b2", "Heartbeat", {}, {}]', "FormationViolation", "b2"),
    ("incomplete call", '[2, "b3", "Heartbeat"]', "ProtocolError", "b3"),
    ("unknown action", '[2, "b4", "BrewCoffee", {}]', "NotImplemented", "b4"),
    (
        "CSMS-only action",
        '[2, "b5", "RemoteStartTransaction", {"idTag": "x"}]',
        "NotSupported",
        "b5",
    ),
    (
        "missing required field",
        '[2, "b6", "BootNotification", {"chargePointVendor": "V"}]',
        "OccurrenceConstraintViolation",
        "b6",
    ),
    (
        "wrong type",
        '[2, "b7", "StartTransaction", {"connectorId": "one", "idTag": "T", '
        '"meterStart": 0, "timestamp": "2026-01-01T00:00:00Z"}]',
        "TypeConstraintViolation",
        "b7",
    ),
    (
        "string too long",
        '[2, "b8", "Authorize", {"idTag": "' + "X" * 21 + '"}]',
        "TypeConstraintViolation",
        "b8",
    ),
    (
        "value not in enum",
        '[2, "b9", "StatusNotification", {"connectorId": 1, '
        '"errorCode": "NoError", "status": "Sleeping"}]',
        "PropertyConstraintViolation",
        "b9",
    ),
    ("unknown field", '[2, "b10", "Heartbeat", {"extra": 1}]', "FormationViolation", "b10"),
    (
        "empty meterValue list",
        '[2, "b11", "MeterValues", {"connectorId": 1, "meterValue": []}]',
        "OccurrenceConstraintViolation",
        "b11",
    ),
    (
        "meter value not a number",
        '[2, "b12", "MeterValues", {"connectorId": 1, "meterValue": '
        '[{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "lots"}]}]}]',
        "PropertyConstraintViolation",
        "b12",
    ),
    (
        "bad timestamp",
        '[2, "b13", "StartTransaction", {"connectorId": 1, "idTag": "T", '
        '"meterStart": 0, "timestamp": "yesterday"}]',
        "TypeConstraintViolation",
        "b13",
    ),
]
# A binary frame closes the connection (1003) unless tolerated: test_interoperability.py.


GENERIC = {
    "not json",
    "not an array",
    "id not a string",
    "payload not an object",
    "too many elements",
    "incomplete call",
    "unknown action",
}
T = '"2026-01-01T00:00:00Z"'
BAD_FRAMES_201: list[tuple[str, str | bytes, str, str]] = [
    *[case for case in BAD_FRAMES if case[0] in GENERIC],
    (
        "CSMS-only action",
        '[2, "c5", "RequestStartTransaction", {"remoteStartId": 1, '
        '"idToken": {"idToken": "x", "type": "Central"}}]',
        "NotSupported",
        "c5",
    ),
    (
        "missing required field",
        '[2, "c6", "BootNotification", {"reason": "PowerUp"}]',
        "OccurrenceConstraintViolation",
        "c6",
    ),
    (
        "wrong type",
        '[2, "c7", "StatusNotification", {"timestamp": ' + T + ", "
        '"connectorStatus": "Available", "evseId": "one", "connectorId": 1}]',
        "TypeConstraintViolation",
        "c7",
    ),
    (
        "string too long",
        '[2, "c8", "Authorize", {"idToken": {"idToken": "' + "X" * 37 + '", "type": "ISO14443"}}]',
        "TypeConstraintViolation",
        "c8",
    ),
    (
        "value not in enum",
        '[2, "c9", "StatusNotification", {"timestamp": ' + T + ", "
        '"connectorStatus": "Sleeping", "evseId": 1, "connectorId": 1}]',
        "PropertyConstraintViolation",
        "c9",
    ),
    ("unknown field", '[2, "c10", "Heartbeat", {"extra": 1}]', "FormationViolation", "c10"),
    (
        "empty meterValue list",
        '[2, "c11", "MeterValues", {"evseId": 1, "meterValue": []}]',
        "OccurrenceConstraintViolation",
        "c11",
    ),
    (
        "meter value not a number",
        '[2, "c12", "MeterValues", {"evseId": 1, "meterValue": '
        '[{"timestamp": ' + T + ', "sampledValue": [{"value": "lots"}]}]}]',
        "TypeConstraintViolation",
        "c12",
    ),
    (
        "bad timestamp",
        '[2, "c13", "Heartbeat", {}]'.replace("Heartbeat", "StatusNotification").replace(
            "{}",
            '{"timestamp": "yesterday", "connectorStatus": "Available", '
            '"evseId": 1, "connectorId": 1}',
        ),
        "TypeConstraintViolation",
        "c13",
    ),
    ("unknown message type", '[5, "c14", "Heartbeat", {}]', "MessageTypeNotSupported", "c14"),
]


class TestBadFrames:
    @pytest.mark.parametrize(
        ("frame", "code", "message_id"),
        [case[1:] for case in BAD_FRAMES],
        ids=[case[0] for case in BAD_FRAMES],
    )
    async def test_bad_frame_gets_its_call_error_and_connection_stays(
        self, station: SimStation, frame: str | bytes, code: str, message_id: str
    ) -> None:
        """The answer is [4, id, code, description, details]; a Heartbeat still works."""
        await self._assert_answer_and_alive(station, frame, code, message_id)

    @pytest.mark.parametrize(
        ("frame", "code", "message_id"),
        [case[1:] for case in BAD_FRAMES_201],
        ids=[case[0] for case in BAD_FRAMES_201],
    )
    async def test_the_same_rules_hold_on_ocpp201(
        self, csms: Running, frame: str | bytes, code: str, message_id: str
    ) -> None:
        """A 2.0.1 station gets the same CALLERROR for the same fault and stays connected."""
        async with SimStation(ws_url(csms), "EV-BAD", protocol="ocpp2.0.1") as station:
            await self._assert_answer_and_alive(station, frame, code, message_id)

    async def _assert_answer_and_alive(
        self, station: SimStation, frame: str | bytes, code: str, message_id: str
    ) -> None:
        answer: list[Any] = await station.send_raw(frame)
        assert answer[0] == 4
        assert (answer[1], answer[2]) == (message_id, code)
        assert isinstance(answer[3], str)
        assert isinstance(answer[4], dict)
        assert "currentTime" in await station.heartbeat()

    async def test_answers_to_nothing_we_asked_are_ignored(self, station: SimStation) -> None:
        """A stray CALLRESULT or CALLERROR gets no answer and breaks nothing."""
        await station.ws.send(orjson.dumps([3, "nobody-asked", {}]).decode())
        await station.ws.send(orjson.dumps([4, "nobody-asked", "GenericError", "", {}]).decode())
        assert "currentTime" in await station.heartbeat()

    async def test_repeated_message_id_gets_the_identical_answer(self, station: SimStation) -> None:
        """A CALL resent with its message id is answered byte-for-byte the same, not re-run."""
        frame = orjson.dumps(
            [
                2,
                "same-id",
                "StartTransaction",
                {
                    "connectorId": 1,
                    "idTag": "T",
                    "meterStart": 0,
                    "timestamp": "2026-01-01T00:00:00Z",
                },
            ]
        )
        first = await station.send_raw(frame.decode())
        second = await station.send_raw(frame.decode())
        assert first == second
        assert first[0] == 3


class TestActionsWithoutAHandler:
    @pytest.mark.parametrize(
        ("protocol", "action", "payload"),
        [
            (
                "ocpp2.0.1",
                "Get15118EVCertificate",
                {
                    "iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef",
                    "action": "Install",
                    "exiRequest": "AA==",
                },
            ),
            (
                "ocpp2.0.1",
                "GetCertificateStatus",
                {
                    "ocspRequestData": {
                        "hashAlgorithm": "SHA256",
                        "issuerNameHash": "a",
                        "issuerKeyHash": "b",
                        "serialNumber": "1",
                        "responderURL": "http://ocsp.example",
                    }
                },
            ),
        ],
    )
    async def test_a_station_action_the_csms_does_not_handle_says_so(
        self, csms: Running, protocol: str, action: str, payload: dict[str, Any]
    ) -> None:
        """A station's certificate request is NotSupported because the CSMS lacks it, not
        because stations never send it; the station stays connected."""
        async with SimStation(ws_url(csms), f"CERT-{protocol}", protocol=protocol) as station:
            answer = await station.send_raw(orjson.dumps([2, "c1", action, payload]).decode())
            assert answer[:4] == [4, "c1", "NotSupported", f"the CSMS does not handle {action} yet"]
            assert "currentTime" in await station.heartbeat()

    @pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
    async def test_sign_certificate_without_a_ca_is_rejected(
        self, csms: Running, protocol: str
    ) -> None:
        """Without CSMS_CA_CERT / CSMS_CA_KEY a SignCertificate is answered Rejected and kept."""
        csr = "-----BEGIN CERTIFICATE REQUEST-----"
        async with SimStation(ws_url(csms), f"SIGN-{protocol}", protocol=protocol) as station:
            answer = await station.call("SignCertificate", {"csr": csr})
            assert answer["status"] == "Rejected"
        [kept] = await csms.storage.list_notifications(f"SIGN-{protocol}", "SignCertificate")
        assert kept.payload == {"csr": csr}
