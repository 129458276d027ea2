"""Every bad frame gets the CALLERROR the spec names, and the station stays connected."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from scripts.simulate import SimStation

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
    ("invalid utf-8 binary frame", b"\xff\xfe[2,", "FormationViolation", "-1"),
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
