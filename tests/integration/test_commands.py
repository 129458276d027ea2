"""Every command both protocols define, sent through the REST API to a simulated
station of each protocol; what the answers leave behind; secrets; the queue."""

from __future__ import annotations

import asyncio
import importlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import structlog

from csms.app import Running
from csms.core.domain import Command, CommandStatus
from csms.core.events import EventType
from csms.core.ports import CommandRecorded
from csms.core.security import hash_password
from scripts.simulate import OCPP16, OCPP201, CallError, SimStation
from tests.integration.conftest import StartCsms, http_url, ws_url
from tests.integration.polling import poll_until
from tests.integration.vanishing import WAYS, SilentStation, vanish
from tests.ocpp_samples import REQUESTS, schema_errors

TOKEN = "test-commands-token-0123456789"
PROTOCOLS = {"1.6": OCPP16, "2.0.1": OCPP201}
SCHEMA = Path(__file__).parents[2] / "docs" / "events" / "command.completed.schema.json"


def event_errors(body: dict[str, Any]) -> list[str]:
    """What docs/events/command.completed.schema.json finds wrong with an event body."""
    jsonschema: Any = importlib.import_module("jsonschema")  # dev dependency, untyped
    validator = jsonschema.Draft202012Validator(
        orjson.loads(SCHEMA.read_bytes()),
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )
    return [error.message for error in validator.iter_errors(body)]


class Api:
    """A bearer-token client of one running CSMS."""

    def __init__(self, running: Running, session: aiohttp.ClientSession) -> None:
        self.running = running
        self.session = session

    async def call(
        self, method: str, path: str, body: Any = None, **params: str
    ) -> tuple[int, Any, dict[str, str]]:
        async with self.session.request(
            method,
            http_url(self.running, path),
            json=body,
            params=params or None,
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as r:
            return r.status, await r.json(), dict(r.headers)

    async def post(self, path: str, body: Any = None, **params: str) -> tuple[int, Any]:
        status, answer, _ = await self.call("POST", path, body, **params)
        return status, answer

    async def get(self, path: str, **params: str) -> Any:
        status, answer, _ = await self.call("GET", path, **params)
        assert status == 200, answer
        return answer


class RecordingStation(SimStation):
    """A simulated station that keeps every answer it gave the CSMS."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answers: list[tuple[str, dict[str, Any]]] = []

    async def on_call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        answer = await super().on_call(action, payload)
        self.answers.append((action, answer))
        return answer


async def boot(station: SimStation) -> None:
    if station.protocol == OCPP16:
        await station.boot()
    else:
        await station.boot201()


@pytest.fixture
async def running(start_csms: StartCsms) -> Running:
    return await start_csms(api_token=TOKEN, call_timeout=1.0)


@pytest.fixture
async def api(running: Running) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(running, session)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
class TestEveryCommand:
    async def test_each_call_arrives_valid_and_its_answer_returns_and_is_recorded(
        self, api: Api, running: Running, version: str
    ) -> None:
        """Every CSMS-to-station action: schema-valid at the station, answered, stored."""
        station_id = f"ALL-{version}"
        async with RecordingStation(ws_url(running), station_id, protocol=PROTOCOLS[version]) as cp:
            await boot(cp)
            for action, payload in REQUESTS[version].items():
                status, body = await api.post(
                    f"/api/v1/stations/{station_id}/ocpp/{action}", payload
                )
                assert status == 200, (action, body)
                received = await cp.wait_for_call(action)
                assert received.payload == payload
                assert schema_errors(version, action, received.payload) == [], action
                assert (action, body) == cp.answers[-1]
                if action == "SetChargingProfile":
                    detail = await api.get(f"/api/v1/stations/{station_id}")
                    [profile] = detail["charging_profiles"]
                    assert profile["profile"]["chargingSchedule"] is not None
        detail = await api.get(f"/api/v1/stations/{station_id}")
        assert detail["charging_profiles"] == []  # ClearChargingProfile removed it
        [reservation] = detail["reservations"]
        assert (reservation["status"], reservation["evse_id"]) == ("Cancelled", 1)
        if version == "1.6":
            assert detail["local_list_version"] == 3
            keys = {k["key"]: (k["value"], k["readonly"]) for k in detail["configuration"]}
            assert keys == {
                "HeartbeatInterval": ("60", False),
                "MeterValueSampleInterval": ("60", False),
            }
        else:
            assert detail["local_list_version"] == 4
            values = {(e["component"], e["variable"]): e["value"] for e in detail["device_model"]}
            assert values == {
                ("OCPPCommCtrlr", "HeartbeatInterval"): "300",
                ("SampledDataCtrlr", "TxUpdatedInterval"): "60",
            }
        listed = await api.get(f"/api/v1/stations/{station_id}/commands", limit="100")
        assert sorted(c["action"] for c in listed["items"]) == sorted(REQUESTS[version])
        assert {c["status"] for c in listed["items"]} == {"completed"}
        events = [
            row.event
            for row in await running.storage.outbox_list(500, pending_only=False)
            if row.event.type == EventType.COMMAND_COMPLETED
        ]
        assert len(events) == len(REQUESTS[version])
        assert {e.ocpp_version for e in events} == {version}
        assert [error for e in events for error in event_errors(e.body())] == []


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
class TestNeutralCommands:
    @pytest.fixture
    def database_url(self, sqlite_url: str) -> str:
        """Nothing here depends on the database kind (TestEveryCommand runs on both)."""
        return sqlite_url

    async def test_neutral_commands_are_translated_for_the_station(
        self, api: Api, running: Running, version: str
    ) -> None:
        """start, stop, reset, unlock, change-availability, trigger-message in either protocol."""
        station_id = f"NEUTRAL-{version}"
        commands: list[tuple[str, dict[str, Any], str]] = [
            ("start", {"id_token": "TAG-1", "evse_id": 1}, "RemoteStartTransaction"),
            ("stop", {"transaction_id": "17"}, "RemoteStopTransaction"),
            ("reset", {"type": "soft"}, "Reset"),
            ("unlock", {"evse_id": 1}, "UnlockConnector"),
            ("change-availability", {"operative": False, "evse_id": 1}, "ChangeAvailability"),
            ("trigger-message", {"message": "Heartbeat"}, "TriggerMessage"),
        ]
        async with RecordingStation(ws_url(running), station_id, protocol=PROTOCOLS[version]) as cp:
            await boot(cp)
            for name, body, action16 in commands:
                status, answer = await api.post(
                    f"/api/v1/stations/{station_id}/commands/{name}", body
                )
                assert status == 200, (name, answer)
                sent_action = answer["action"]
                if version == "1.6":
                    assert sent_action == action16
                received = await cp.wait_for_call(sent_action)
                assert received.payload == answer["payload"]
                assert schema_errors(version, sent_action, received.payload) == []
                assert (answer["command"], answer["status"]) == (name, "completed")
                assert answer["response"] == cp.answers[-1][1]
                assert await api.get(f"/api/v1/commands/{answer['id']}") == answer
        assert [c.action for c in cp.received_calls] == [
            "RemoteStartTransaction" if version == "1.6" else "RequestStartTransaction",
            "RemoteStopTransaction" if version == "1.6" else "RequestStopTransaction",
            "Reset",
            "UnlockConnector",
            "ChangeAvailability",
            "TriggerMessage",
        ]


class TestVanishedStation:
    @pytest.mark.parametrize("way", WAYS)
    async def test_a_station_that_leaves_before_answering_gets_the_caller_a_409(
        self, api: Api, running: Running, way: str
    ) -> None:
        """The REST caller is answered 409 "disconnected before answering" at once, and
        the command shows it failed that way."""
        async with SilentStation(ws_url(running), "LEAVER") as cp:
            await cp.boot()
            asking = asyncio.create_task(
                api.post("/api/v1/stations/LEAVER/commands/reset", {"type": "soft"})
            )
            await cp.wait_for_call("Reset")
            newer = await vanish(cp, way)
            status, body = await asyncio.wait_for(asking, 5)
            if newer is not None:
                await newer.close()
        assert status == 409, body
        assert body["error"] == "station_not_connected"
        assert body["message"] == "station 'LEAVER' disconnected before answering"
        command = await api.get(f"/api/v1/commands/{body['command_id']}")
        assert command["status"] == "failed"
        assert command["error"]["message"] == "station 'LEAVER' disconnected before answering"


class TestSecrets:
    @pytest.fixture
    def database_url(self, sqlite_url: str) -> str:
        """Masking happens before storage: one database kind is enough."""
        return sqlite_url

    async def test_a_password_sent_raw_is_masked_and_rotated(
        self, api: Api, running: Running
    ) -> None:
        """The station gets it; records show ********; the station may log in with it."""
        await running.storage.register_station(
            "SECRET-16", password_hash=hash_password("old-password-123456"), at=datetime.now(UTC)
        )
        async with SimStation(ws_url(running), "SECRET-16", password="old-password-123456") as cp:
            status, body, headers = await api.call(
                "POST",
                "/api/v1/stations/SECRET-16/ocpp/ChangeConfiguration",
                {"key": "AuthorizationKey", "value": "new-password-abcdef"},
            )
            assert (status, body) == (200, {"status": "Accepted"})
            received = await cp.wait_for_call("ChangeConfiguration")
            assert received.payload["value"] == "new-password-abcdef"
            status, queued = await api.post(
                "/api/v1/stations/SECRET-16/ocpp/ChangeConfiguration",
                {"key": "AuthorizationKey", "value": "x" * 41},
            )
            assert (status, queued["error"]) == (422, "invalid_password")
        record = await api.get(headers["Location"])
        assert record["request"]["value"] == record["payload"]["value"] == "********"
        async with SimStation(ws_url(running), "SECRET-16", password="new-password-abcdef") as cp:
            await cp.heartbeat()
            status, body = await api.post(
                "/api/v1/stations/SECRET-16/ocpp/GetConfiguration", {"key": ["AuthorizationKey"]}
            )
            assert status == 200
        status, refused = await api.post(
            "/api/v1/stations/SECRET-16/ocpp/ChangeConfiguration",
            {"key": "AuthorizationKey", "value": "another-password-123"},
            queue="true",
        )
        assert (status, refused["error"]) == (422, "cannot_queue_secret")
        events = await running.storage.outbox_list(200, pending_only=False)
        assert "new-password-abcdef" not in str([row.event.data for row in events])

    async def test_2_0_1_password_and_apn_password_are_masked(
        self, api: Api, running: Running
    ) -> None:
        """SetVariables BasicAuthPassword and SetNetworkProfile apnPassword never show."""
        async with SimStation(ws_url(running), "SECRET-201", protocol=OCPP201) as cp:
            password = {
                "setVariableData": [
                    {
                        "attributeValue": "new-password-abcdef",
                        "component": {"name": "SecurityCtrlr"},
                        "variable": {"name": "BasicAuthPassword"},
                    }
                ]
            }
            status, _ = await api.post("/api/v1/stations/SECRET-201/ocpp/SetVariables", password)
            assert status == 200
            assert cp.password == "new-password-abcdef"
            network = REQUESTS["2.0.1"]["SetNetworkProfile"]
            apn = {"apn": "internet", "apnAuthentication": "AUTO", "apnPassword": "apn-secret"}
            network = {**network, "connectionData": {**network["connectionData"], "apn": apn}}
            status, _ = await api.post(
                "/api/v1/stations/SECRET-201/ocpp/SetNetworkProfile", network
            )
            assert status == 200
            assert (await cp.wait_for_call("SetNetworkProfile")).payload == network
        listed = await api.get("/api/v1/stations/SECRET-201/commands")
        text = str(listed)
        assert "new-password-abcdef" not in text
        assert "apn-secret" not in text
        detail = await api.get("/api/v1/stations/SECRET-201")
        assert "new-password-abcdef" not in str(detail)


class TestQueue:
    async def test_queued_commands_survive_a_restart_and_go_out_in_order(
        self, start_csms: StartCsms
    ) -> None:
        """202 while offline; after a restart the station gets them on connect, one by one."""
        first = await start_csms(api_token=TOKEN)
        async with aiohttp.ClientSession() as session:
            api = Api(first, session)
            async with SimStation(ws_url(first), "Q-1", protocol=OCPP201) as cp:
                await cp.boot201()
            status, reset = await api.post(
                "/api/v1/stations/Q-1/commands/reset",
                {"type": "hard", "queue": {"expires_in": 600}},
            )
            assert (status, reset["status"], reset["action"]) == (202, "queued", None)
            status, raw = await api.post(
                "/api/v1/stations/Q-1/ocpp/GetVariables",
                REQUESTS["2.0.1"]["GetVariables"],
                queue="true",
                expires_at="2999-01-01T00:00:00Z",
            )
            assert (status, raw["error"]) == (422, "invalid_queue")  # at most 30 days
            status, raw = await api.post(
                "/api/v1/stations/Q-1/ocpp/GetVariables",
                REQUESTS["2.0.1"]["GetVariables"],
                queue="true",
            )
            assert (status, raw["status"]) == (202, "queued")
            status, doomed = await api.post(
                "/api/v1/stations/Q-1/commands/unlock",
                {"evse_id": 1, "queue": {"expires_in": 0.05}},
            )
            assert status == 202
            await first.stop()

            second = await start_csms(api_token=TOKEN)
            api = Api(second, session)
            assert (await api.get(f"/api/v1/commands/{reset['id']}"))["status"] == "queued"
            await asyncio.sleep(0.1)
            await second.commands.sweep()
            expired = await api.get(f"/api/v1/commands/{doomed['id']}")
            assert expired["status"] == "expired"
            async with SimStation(ws_url(second), "Q-1", protocol=OCPP201) as cp:
                await cp.wait_for_call("Reset")
                await cp.wait_for_call("GetVariables")

                async def answered() -> bool:
                    record = await api.get(f"/api/v1/commands/{raw['id']}")
                    return bool(record["status"] == "completed")

                await poll_until(answered, within=5)
            assert [c.action for c in cp.received_calls] == ["Reset", "GetVariables"]
            assert cp.received_calls[0].payload == {"type": "Immediate"}
            done = await api.get(f"/api/v1/commands/{reset['id']}")
            assert (done["status"], done["action"], done["response"]) == (
                "completed",
                "Reset",
                {"status": "Accepted"},
            )
            queued = await api.get("/api/v1/stations/Q-1/commands", status="queued")
            assert queued["items"] == []
        events = [
            row.event
            for row in await second.storage.outbox_list(200, pending_only=False)
            if row.event.type == EventType.COMMAND_COMPLETED
        ]
        assert [error for e in events for error in event_errors(e.body())] == []
        outcomes = {e.data["command_id"]: e.data["status"] for e in events}
        assert outcomes == {
            reset["id"]: "completed",
            raw["id"]: "completed",
            doomed["id"]: "expired",
        }

    async def test_a_command_left_sent_by_a_stopped_csms_fails_on_reconnect(
        self, api: Api, running: Running
    ) -> None:
        """No answer will ever come for it: failed (and reported) when its station is back."""
        await running.storage.register_station("ORPHAN", at=datetime.now(UTC))
        lost = Command(
            id=str(uuid.uuid4()),
            station_id="ORPHAN",
            name=None,
            action="Reset",
            ocpp_version="1.6",
            request={"type": "Soft"},
            status=CommandStatus.SENT,
            source="api",
            created_at=datetime.now(UTC) - timedelta(hours=1),
            payload={"type": "Soft"},
            sent_at=datetime.now(UTC) - timedelta(hours=1),
        )
        await running.storage.commit([CommandRecorded(lost)])
        async with SimStation(ws_url(running), "ORPHAN"):

            async def settled() -> bool:
                found = await running.storage.find_command(lost.id)
                return found is not None and found.status == CommandStatus.FAILED

            await poll_until(settled, within=5)
        record = await api.get(f"/api/v1/commands/{lost.id}")
        assert record["error"]["error"] == "station_not_connected"

    async def test_what_cannot_be_queued(self, api: Api, running: Running) -> None:
        """404 unknown, 409 offline without queue, 409 a station never seen (protocol unknown)."""
        status, body = await api.post("/api/v1/stations/GHOST/commands/reset", {"type": "soft"})
        assert (status, body["error"]) == (404, "station_not_found")
        await running.storage.register_station("NEW", at=datetime.now(UTC))
        status, body = await api.post("/api/v1/stations/NEW/commands/reset", {"type": "soft"})
        assert (status, body["error"]) == (409, "station_not_connected")
        status, body = await api.post(
            "/api/v1/stations/NEW/commands/reset", {"type": "soft", "queue": True}
        )
        assert (status, body["error"]) == (409, "station_protocol_unknown")


class SlowFirstAnswer(SimStation):
    """Answers the CSMS's first CALL only after half a second, the others at once."""

    calls = 0
    first_call: asyncio.Event | None = None

    async def on_call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 1:
            assert self.first_call is not None
            self.first_call.set()
            await asyncio.sleep(0.5)
        return {"status": "Accepted"}


class TestCancelledCaller:
    async def test_a_caller_that_gives_up_leaves_the_link_usable(self, running: Running) -> None:
        """A call() cancelled while waiting frees the station for the next one, whose answer
        is its own (the late answer to the first is ignored)."""
        async with SlowFirstAnswer(ws_url(running), "PATIENT") as cp:
            cp.first_call = asyncio.Event()
            await cp.boot()
            first = asyncio.create_task(running.stations.call("PATIENT", "Reset", {"type": "Soft"}))
            await asyncio.wait_for(cp.first_call.wait(), 5)
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            answer = await running.stations.call("PATIENT", "Reset", {"type": "Hard"})
            assert answer == {"status": "Accepted"}
            assert cp.calls == 2


class Refusing(SimStation):
    """Answers every CSMS CALL with a CALLERROR NotSupported."""

    async def on_call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        raise CallError("NotSupported", "not on this model", {})


class TestFailureLogs:
    async def test_a_failed_command_is_a_warning_with_the_stations_code(
        self, api: Api, running: Running
    ) -> None:
        """An operator looking for broken stations filters on the warning and
        the OCPP error code (issue 21, item 6)."""
        async with Refusing(ws_url(running), "REFUSER") as cp:
            await cp.boot()
            with structlog.testing.capture_logs() as logs:
                status, _ = await api.post(
                    "/api/v1/stations/REFUSER/commands/unlock", {"evse_id": 1}
                )
        assert status == 502
        [failed] = [e for e in logs if e["event"] == "command_failed"]
        assert failed["log_level"] == "warning"
        assert (failed["code"], failed["error"]) == ("NotSupported", "station_call_error")
        assert failed["station_id"] == "REFUSER"


class TestHeartbeatIntervalKept:
    async def test_a_1_6_interval_set_through_the_csms_survives_the_next_boot(
        self, api: Api, running: Running
    ) -> None:
        """ChangeConfiguration HeartbeatInterval=120, accepted: the next
        BootNotification answer says 120, not CSMS_HEARTBEAT_INTERVAL (issue 21 item 2)."""
        async with SimStation(ws_url(running), "HB-16") as cp:
            first = await cp.boot()
            assert first["interval"] == 300
            # A factory value it reports is not the CSMS's setting: still 300.
            cp.configuration["HeartbeatInterval"] = "86400"
            status, _ = await api.post("/api/v1/stations/HB-16/ocpp/GetConfiguration", {})
            assert status == 200
            assert (await cp.boot())["interval"] == 300
            status, _ = await api.post(
                "/api/v1/stations/HB-16/ocpp/ChangeConfiguration",
                {"key": "HeartbeatInterval", "value": "120"},
            )
            assert status == 200
            again = await cp.boot()
        assert again["interval"] == 120

    async def test_a_2_0_1_interval_set_through_the_csms_survives_the_next_boot(
        self, api: Api, running: Running
    ) -> None:
        async with SimStation(ws_url(running), "HB-201", protocol=OCPP201) as cp:
            assert (await cp.boot201())["interval"] == 300
            status, _ = await api.post(
                "/api/v1/stations/HB-201/ocpp/SetVariables",
                {
                    "setVariableData": [
                        {
                            "component": {"name": "OCPPCommCtrlr"},
                            "variable": {"name": "HeartbeatInterval"},
                            "attributeValue": "90",
                        }
                    ]
                },
            )
            assert status == 200
            assert (await cp.boot201())["interval"] == 90
