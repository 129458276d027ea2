"""The REST API as an operator or the app backend uses it, every route of the OpenAPI file."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from openapi_spec_validator import validate

from csms.app import Running
from csms.core.security import hash_password
from csms.edge.routes import OPENAPI
from scripts.simulate import CallError, SimStation
from tests.integration.conftest import StartCsms, http_url, ws_url
from tests.integration.polling import poll_until

# jsonschema is a dev dependency and ships no type hints: import it as Any.
jsonschema: Any = importlib.import_module("jsonschema")
TOKEN = "test-api-token-0123456789"
EXERCISED: set[tuple[str, str]] = set()


class Client:
    def __init__(self, running: Running, session: aiohttp.ClientSession, token: str | None):
        self.running = running
        self.session = session
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def request(
        self, method: str, path: str, template: str, body: Any = None, **params: str
    ) -> tuple[int, Any]:
        EXERCISED.add((method.lower(), template))
        async with self.session.request(
            method,
            http_url(self.running, path),
            json=body,
            params=params or None,
            headers=self.headers,
        ) as r:
            return r.status, None if r.status == 204 else await r.json()


@pytest.fixture
async def csms_api(start_csms: StartCsms) -> Running:
    return await start_csms(api_token=TOKEN, call_timeout=1.0)


@pytest.fixture
async def api(csms_api: Running) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(csms_api, session, TOKEN)


class TestAuthentication:
    async def test_missing_or_wrong_token_is_401(self, csms_api: Running) -> None:
        """With CSMS_API_TOKEN set, a request without the right bearer token is refused."""
        async with aiohttp.ClientSession() as session:
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                async with session.get(
                    http_url(csms_api, "/api/v1/stations"), headers=headers
                ) as r:
                    assert r.status == 401
                    assert (await r.json())["error"] == "unauthorized"
            async with session.get(http_url(csms_api, "/health/live")) as r:
                assert r.status == 200

    async def test_every_documented_route_refuses_a_missing_or_wrong_token(
        self, csms_api: Running
    ) -> None:
        """No route of the OpenAPI file answers without the bearer token."""
        async with aiohttp.ClientSession() as session:
            for template, item in OPENAPI["paths"].items():
                path = template.replace("{", "").replace("}", "")  # any value will do
                for method in item:
                    for headers in ({}, {"Authorization": f"Bearer {TOKEN}x"}):
                        async with session.request(
                            method, http_url(csms_api, path), json={}, headers=headers
                        ) as r:
                            assert r.status == 401, (method, template)

    async def test_without_token_loopback_is_allowed(self, csms: Running) -> None:
        """Without CSMS_API_TOKEN the API answers local clients."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(http_url(csms, "/api/v1/stations")) as r,
        ):
            assert r.status == 200


def answer_schema(document: dict[str, Any], method: str, path: str, status: int) -> Any:
    """The documented body of ``status`` for ``method path``, resolvable on its own."""
    answer = document["paths"][path][method]["responses"][str(status)]
    [content] = answer["content"].values()
    return {**content["schema"], "components": document["components"]}


def assert_documented(
    document: dict[str, Any], method: str, path: str, status: int, body: Any
) -> None:
    jsonschema.validate(
        body,
        answer_schema(document, method, path, status),
        cls=jsonschema.Draft202012Validator,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


class TestOpenApi:
    async def test_document_is_served_and_valid(self, api: Client) -> None:
        """/api/v1/openapi.json is a valid OpenAPI 3.1 document."""
        status, body = await api.request("GET", "/api/v1/openapi.json", "/api/v1/openapi.json")
        assert status == 200
        validate(body)

    async def test_every_served_route_is_documented_and_every_documented_one_served(
        self, csms_api: Running
    ) -> None:
        """The document and the router list the same /api/v1 operations."""
        served = {
            (route.method.lower(), route.resource.canonical)
            for route in csms_api.http.app.router.routes()
            if route.resource is not None
            and route.resource.canonical.startswith("/api/v1/")
            and route.method != "HEAD"
            and not route.resource.canonical.startswith("/api/v1/docs/static")
        }
        documented = {(m, path) for path, item in OPENAPI["paths"].items() for m in item}
        assert served == documented

    async def test_answers_match_their_documented_schema(
        self, api: Client, csms_api: Running
    ) -> None:
        """Real answers (station, page, transaction, token, command, error) fit the document."""
        _, document = await api.request("GET", "/api/v1/openapi.json", "/api/v1/openapi.json")
        one, token = "/api/v1/stations/{station_id}", "/api/v1/id-tokens/{id_token}"
        async with SimStation(ws_url(csms_api), "DOC-201", protocol="ocpp2.0.1") as cp:
            await cp.boot201()
            await cp.status201(1, 1, "Available")
            status, station = await api.request("GET", "/api/v1/stations/DOC-201", one)
            assert_documented(document, "get", one, status, station)
            assert station["evses"][0]["connectors"][0]["updated_at"].endswith("Z")
            status, page = await api.request("GET", "/api/v1/stations", "/api/v1/stations")
            assert_documented(document, "get", "/api/v1/stations", status, page)
            path = "/api/v1/stations/{station_id}/commands/{command}"
            status, record = await api.request(
                "POST", "/api/v1/stations/DOC-201/commands/reset", path, {"type": "soft"}
            )
            assert_documented(document, "post", path, status, record)
        async with SimStation(ws_url(csms_api), "DOC-16") as cp16:
            tx = await cp16.start(1, "TAG-D", 100)
            await cp16.meter_values(1, tx, 600)
            await cp16.stop(tx, 1_100)
        path = "/api/v1/transactions/{transaction_id}"
        status, detail = await api.request("GET", f"/api/v1/transactions/{tx}", path)
        assert detail["meter_samples"]
        assert_documented(document, "get", path, status, detail)
        body = {"status": "Blocked", "expires_at": "2030-01-01T00:00:00+01:00"}
        status, stored = await api.request("PUT", "/api/v1/id-tokens/DOC-T", token, body)
        assert stored["expires_at"] == "2029-12-31T23:00:00.000Z"
        assert_documented(document, "put", token, status, stored)
        status, error = await api.request("GET", "/api/v1/stations/NOPE", one)
        assert_documented(document, "get", one, status, error)
        for path, template in (
            ("/api/v1/transactions", "/api/v1/transactions"),
            ("/api/v1/id-tokens", "/api/v1/id-tokens"),
            ("/api/v1/stations/DOC-201/commands", "/api/v1/stations/{station_id}/commands"),
        ):
            status, listed = await api.request("GET", path, template)
            assert listed["items"], path
            assert_documented(document, "get", template, status, listed)
        status, bad = await api.request(
            "GET", "/api/v1/transactions", "/api/v1/transactions", started_after="soon"
        )
        assert (status, bad["error"]) == (400, "invalid_query")
        assert_documented(document, "get", "/api/v1/transactions", status, bad)

    async def test_the_api_page_and_its_assets_are_served(self, api: Client) -> None:
        """/api/v1/docs is Swagger UI for our document, its scripts from this server."""
        EXERCISED.add(("get", "/api/v1/docs"))
        base = http_url(api.running, "")
        async with api.session.get(f"{base}/api/v1/docs", headers=api.headers) as r:
            assert (r.status, r.content_type) == (200, "text/html")
            page = await r.text()
        assert '"/api/v1/openapi.json"' in page
        assert "://" not in page  # nothing from a CDN
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
            assert f"/api/v1/docs/static/{asset}" in page
            async with api.session.get(
                f"{base}/api/v1/docs/static/{asset}", headers=api.headers
            ) as r:
                assert r.status == 200, asset
                assert len(await r.read()) > 1000
            async with api.session.get(f"{base}/api/v1/docs/static/{asset}") as r:
                assert r.status == 401, asset  # the same rule as the API


class TestStations:
    @pytest.mark.parametrize("profile", [True, 2.0, "2", 0, 4])
    async def test_a_security_profile_is_an_integer_from_1_to_3(
        self, api: Client, profile: object
    ) -> None:
        """true, 2.0, "2", 0 and 4 are not profiles: 422, nothing stored."""
        path, template = "/api/v1/stations/SP-BAD", "/api/v1/stations/{station_id}"
        status, error = await api.request("PUT", path, template, {"security_profile": profile})
        assert (status, error["error"]) == (422, "invalid_value")
        status, _ = await api.request("GET", path, template)
        assert status == 404

    async def test_put_sets_what_the_next_boot_is_answered(
        self, api: Client, csms_api: Running
    ) -> None:
        """boot_status Pending by PUT: shown, and the station's next BootNotification is Pending."""
        path, template = "/api/v1/stations/BOOT-PUT", "/api/v1/stations/{station_id}"
        status, station = await api.request("PUT", path, template, {"boot_status": "Pending"})
        assert (status, station["boot_status"]) == (201, "Pending")
        async with SimStation(ws_url(csms_api), "BOOT-PUT") as cp:
            assert (await cp.boot())["status"] == "Pending"
        status, station = await api.request("PUT", path, template, {"boot_status": "Accepted"})
        assert (status, station["boot_status"]) == (200, "Accepted")
        async with SimStation(ws_url(csms_api), "BOOT-PUT") as cp:
            assert (await cp.boot())["status"] == "Accepted"
        status, error = await api.request("PUT", path, template, {"boot_status": "Maybe"})
        assert (status, error["error"]) == (422, "invalid_value")

    async def test_list_and_detail_show_protocol_connection_and_evses(
        self, api: Client, csms_api: Running
    ) -> None:
        """A connected 2.0.1 station and an offline 1.6 one are listed with their state."""
        await csms_api.storage.register_station("OFF-16", at=datetime.now(UTC))
        async with SimStation(ws_url(csms_api), "ON-201", protocol="ocpp2.0.1") as cp:
            await cp.boot201()
            await cp.status201(1, 1, "Available")
            await cp.status201(1, 2, "Occupied")
            status, page = await api.request("GET", "/api/v1/stations", "/api/v1/stations")
            assert status == 200
            by_id = {s["id"]: s for s in page["items"]}
            assert by_id["ON-201"]["connected"] is True
            assert by_id["ON-201"]["ocpp_version"] == "2.0.1"
            assert by_id["OFF-16"]["connected"] is False
            status, only = await api.request(
                "GET", "/api/v1/stations", "/api/v1/stations", connected="true"
            )
            assert [s["id"] for s in only["items"]] == ["ON-201"]
            status, one = await api.request(
                "GET", "/api/v1/stations/ON-201", "/api/v1/stations/{station_id}"
            )
            assert status == 200
            assert one["vendor"] == "CSMS-Sim"
            [evse] = one["evses"]
            assert evse["evse_id"] == 1
            assert [(c["connector_id"], c["status"]) for c in evse["connectors"]] == [
                (1, "Available"),
                (2, "Occupied"),
            ]

    async def test_unknown_station_is_404(self, api: Client) -> None:
        """Asking for a station that does not exist says so."""
        status, body = await api.request(
            "GET", "/api/v1/stations/NOPE", "/api/v1/stations/{station_id}"
        )
        assert (status, body["error"]) == (404, "station_not_found")

    async def test_list_filters(self, api: Client, csms_api: Running) -> None:
        """By id prefix, vendor and model; paging keeps the total."""
        for station_id in ("NORTH-1", "NORTH-2", "SOUTH-1"):
            await csms_api.storage.register_station(station_id, at=datetime.now(UTC))
        async with SimStation(ws_url(csms_api), "NORTH-2") as cp:
            await cp.boot(vendor="ACME", model="Wallbox")
        path = "/api/v1/stations"
        _, north = await api.request("GET", path, path, id_prefix="NORTH-")
        assert [s["id"] for s in north["items"]] == ["NORTH-1", "NORTH-2"]
        _, acme = await api.request("GET", path, path, vendor="ACME", model="Wallbox")
        assert [s["id"] for s in acme["items"]] == ["NORTH-2"]
        _, page = await api.request("GET", path, path, id_prefix="NORTH-", limit="1", offset="1")
        assert ([s["id"] for s in page["items"]], page["total"]) == (["NORTH-2"], 2)
        _, none = await api.request("GET", path, path, model="Nope")
        assert none["items"] == []

    async def test_register_update_and_delete(self, api: Client, csms_api: Running) -> None:
        """POST registers (409 twice), PUT updates or registers, DELETE deregisters."""
        collection, one = "/api/v1/stations", "/api/v1/stations/{station_id}"
        status, created = await api.request(
            "POST", collection, collection, {"id": "REG-1", "security_profile": 2}
        )
        assert (status, created["id"], created["security_profile"]) == (201, "REG-1", 2)
        assert (created["has_password"], created["configuration"]) == (False, [])
        status, body = await api.request("POST", collection, collection, {"id": "REG-1"})
        assert (status, body["error"]) == (409, "station_exists")
        for bad in ({"id": ""}, {"id": "X", "password": "x" * 41}, {"id": "X", "color": "red"}):
            status, _ = await api.request("POST", collection, collection, bad)
            assert status == 422, bad
        status, updated = await api.request(
            "PUT", "/api/v1/stations/REG-1", one, {"password": "a-long-password-123"}
        )
        assert (status, updated["has_password"], updated["security_profile"]) == (200, True, 2)
        status, fresh = await api.request("PUT", "/api/v1/stations/REG-2", one, {})
        assert (status, fresh["security_profile"]) == (201, 1)
        status, _ = await api.request("PUT", "/api/v1/stations/REG-2", one, {"security_profile": 4})
        assert status == 422
        async with SimStation(ws_url(csms_api), "REG-2") as cp:
            await cp.heartbeat()
            status, _ = await api.request("DELETE", "/api/v1/stations/REG-2", one)
            assert status == 204
            assert await cp.wait_closed() == 1000
        status, _ = await api.request("DELETE", "/api/v1/stations/REG-2", one)
        assert status == 404
        assert await csms_api.storage.find_station("REG-2") is None


class TestRawCalls:
    PATH = "/api/v1/stations/{station_id}/ocpp/{action}"

    async def test_call_is_sent_and_the_answer_returned(
        self, api: Client, csms_api: Running
    ) -> None:
        """POST .../ocpp/Reset reaches the 1.6 station with a valid request; its answer returns."""
        async with SimStation(ws_url(csms_api), "RAW-1") as cp:
            status, body = await api.request(
                "POST", "/api/v1/stations/RAW-1/ocpp/Reset", self.PATH, {"type": "Soft"}
            )
            assert (status, body) == (200, {"status": "Accepted"})
            received = await cp.wait_for_call("Reset")
            assert received.payload == {"type": "Soft"}

    async def test_2_0_1_station_gets_its_own_protocol(
        self, api: Client, csms_api: Running
    ) -> None:
        """A 2.0.1 GetVariables goes out and the station's result comes back."""
        async with SimStation(ws_url(csms_api), "RAW-2", protocol="ocpp2.0.1") as cp:
            payload = {
                "getVariableData": [
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                    }
                ]
            }
            status, body = await api.request(
                "POST", "/api/v1/stations/RAW-2/ocpp/GetVariables", self.PATH, payload
            )
            assert status == 200
            assert body["getVariableResult"][0]["attributeValue"] == "300"
            assert (await cp.wait_for_call("GetVariables")).payload == payload

    async def test_error_cases(self, api: Client, csms_api: Running) -> None:
        """404 unknown, 409 not connected, 422 invalid payload, 502 CALLERROR, 504 no answer."""
        status, _ = await api.request(
            "POST", "/api/v1/stations/GHOST/ocpp/Reset", self.PATH, {"type": "Soft"}
        )
        assert status == 404
        await csms_api.storage.register_station("SLEEPY", at=datetime.now(UTC))
        status, body = await api.request(
            "POST", "/api/v1/stations/SLEEPY/ocpp/Reset", self.PATH, {"type": "Soft"}
        )
        assert (status, body["error"]) == (409, "station_not_connected")

        class Grumpy(SimStation):
            async def on_call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
                if action == "ClearCache":
                    raise CallError("NotSupported", "no cache here", {"hint": "none"})
                if action == "Reset":
                    await asyncio.sleep(3)
                return await super().on_call(action, payload)

        async with Grumpy(ws_url(csms_api), "GRUMPY") as cp:
            status, body = await api.request(
                "POST", "/api/v1/stations/GRUMPY/ocpp/Reset", self.PATH, {"type": "Sideways"}
            )
            assert (status, body["error"], body["code"]) == (
                422,
                "invalid_payload",
                "PropertyConstraintViolation",
            )
            status, body = await api.request(
                "POST", "/api/v1/stations/GRUMPY/ocpp/ClearCache", self.PATH, {}
            )
            assert status == 502
            assert (body["code"], body["description"], body["details"]) == (
                "NotSupported",
                "no cache here",
                {"hint": "none"},
            )
            status, body = await api.request(
                "POST", "/api/v1/stations/GRUMPY/ocpp/Reset", self.PATH, {"type": "Hard"}
            )
            assert (status, body["error"]) == (504, "station_timeout")
            assert cp.received_calls[0].action == "ClearCache"


class TestPasswordRotation:
    PATH = "/api/v1/stations/{station_id}/password"

    async def test_connected_station_gets_and_accepts_the_new_password(
        self, api: Client, csms_api: Running
    ) -> None:
        """The station is sent the password; old and new both work until it reconnects."""
        await csms_api.storage.register_station(
            "ROT-1", password_hash=hash_password("old-password-123456"), at=datetime.now(UTC)
        )
        async with SimStation(ws_url(csms_api), "ROT-1", password="old-password-123456") as cp:
            status, body = await api.request(
                "POST",
                "/api/v1/stations/ROT-1/password",
                self.PATH,
                {"password": "new-password-abcdef"},
            )
            assert (status, body) == (200, {"status": "Accepted"})
            call = await cp.wait_for_call("ChangeConfiguration")
            assert call.payload == {"key": "AuthorizationKey", "value": "new-password-abcdef"}
        async with SimStation(ws_url(csms_api), "ROT-1", password="old-password-123456") as cp:
            await cp.heartbeat()  # not locked out before it used the new one
        async with SimStation(ws_url(csms_api), "ROT-1", password="new-password-abcdef") as cp:
            await cp.heartbeat()
        with pytest.raises(Exception, match="401"):
            await SimStation(ws_url(csms_api), "ROT-1", password="old-password-123456").connect()

    async def test_offline_station_gets_it_when_it_comes_back(
        self, api: Client, csms_api: Running
    ) -> None:
        """202 while offline; on its next connect with the old password it is sent the new one."""
        await csms_api.storage.register_station(
            "ROT-2", password_hash=hash_password("old-password-123456"), at=datetime.now(UTC)
        )
        status, body = await api.request(
            "POST",
            "/api/v1/stations/ROT-2/password",
            self.PATH,
            {"password": "new-password-abcdef"},
        )
        assert (status, body) == (202, {"status": "Pending"})
        async with SimStation(
            ws_url(csms_api), "ROT-2", password="old-password-123456", protocol="ocpp2.0.1"
        ) as cp:
            call = await cp.wait_for_call("SetVariables")
            assert call.payload["setVariableData"][0]["attributeValue"] == "new-password-abcdef"

    async def test_bad_body_and_unknown_station(self, api: Client) -> None:
        """An empty or over-long password is 422, an unknown station 404."""
        for bad in ("", "x" * 41):
            status, _ = await api.request(
                "POST", "/api/v1/stations/X/password", self.PATH, {"password": bad}
            )
            assert status == 422
        status, _ = await api.request(
            "POST", "/api/v1/stations/X/password", self.PATH, {"password": "long-enough-password-1"}
        )
        assert status == 404


class TestTransactions:
    async def test_list_filter_and_detail(self, api: Client, csms_api: Running) -> None:
        """Transactions are listed with filters and shown with their meter samples."""
        async with SimStation(ws_url(csms_api), "TX-ST") as cp:
            tx1 = await cp.start(1, "TAG-A", 100)
            await cp.meter_values(1, tx1, 600)
            await cp.stop(tx1, 1_100)
            tx2 = await cp.start(1, "TAG-B", 1_100)
        status, page = await api.request(
            "GET", "/api/v1/transactions", "/api/v1/transactions", station_id="TX-ST"
        )
        assert status == 200
        assert [t["transaction_id"] for t in page["items"]] == [str(tx2), str(tx1)]
        _, active = await api.request(
            "GET", "/api/v1/transactions", "/api/v1/transactions", active="true", station_id="TX-ST"
        )
        assert [t["transaction_id"] for t in active["items"]] == [str(tx2)]
        _, by_token = await api.request(
            "GET", "/api/v1/transactions", "/api/v1/transactions", id_token="TAG-A"
        )
        assert [t["energy_wh"] for t in by_token["items"]] == [1_000]
        status, one = await api.request(
            "GET", f"/api/v1/transactions/{tx1}", "/api/v1/transactions/{transaction_id}"
        )
        assert status == 200
        assert one["energy_wh"] == 1_000
        assert one["active"] is False
        assert len(one["meter_samples"]) == 6
        status, _ = await api.request(
            "GET", "/api/v1/transactions/999999", "/api/v1/transactions/{transaction_id}"
        )
        assert status == 404
        status, _ = await api.request(
            "GET", "/api/v1/transactions", "/api/v1/transactions", limit="0"
        )
        assert status == 400


class TestIdTokens:
    PATH = "/api/v1/id-tokens/{id_token}"

    async def test_put_creates_updates_and_takes_effect(
        self, api: Client, csms_api: Running
    ) -> None:
        """A token PUT over the API is answered on the station's next Authorize."""
        status, body = await api.request(
            "PUT",
            "/api/v1/id-tokens/CARD-9",
            self.PATH,
            {"status": "Accepted", "group_id": "FLEET", "type": "ISO15693"},
        )
        assert status == 200
        assert body["status"] == "Accepted"
        assert (body["group_id"], body["type"], body["expires_at"]) == ("FLEET", "ISO15693", None)
        async with SimStation(ws_url(csms_api), "AUTH-1") as cp:
            assert (await cp.authorize("CARD-9"))["idTagInfo"]["status"] == "Accepted"
            await api.request("PUT", "/api/v1/id-tokens/CARD-9", self.PATH, {"status": "Blocked"})
            assert (await cp.authorize("CARD-9"))["idTagInfo"]["status"] == "Blocked"
        status, one = await api.request("GET", "/api/v1/id-tokens/CARD-9", self.PATH)
        assert (status, one["status"], one["type"]) == (200, "Blocked", "ISO14443")
        status, listed = await api.request("GET", "/api/v1/id-tokens", "/api/v1/id-tokens")
        assert [t["id_token"] for t in listed["items"]] == ["CARD-9"]
        status, _ = await api.request("GET", "/api/v1/id-tokens/NOPE", self.PATH)
        assert status == 404

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"status": "Maybe"},
            {"status": "Accepted", "expires_at": "soon"},
            {"status": "Accepted", "type": "Barcode"},
        ],
    )
    async def test_invalid_body_is_422(self, api: Client, body: dict[str, Any]) -> None:
        """Missing or invalid fields are refused with a message."""
        status, answer = await api.request("PUT", "/api/v1/id-tokens/CARD-1", self.PATH, body)
        assert status == 422
        assert answer["message"]

    async def test_delete_removes_the_token(self, api: Client, csms_api: Running) -> None:
        """A deleted token is unknown to the next Authorize; a second delete is 404."""
        await api.request("PUT", "/api/v1/id-tokens/CARD-2", self.PATH, {"status": "Accepted"})
        status, _ = await api.request("DELETE", "/api/v1/id-tokens/CARD-2", self.PATH)
        assert status == 204
        async with SimStation(ws_url(csms_api), "AUTH-2") as cp:
            assert (await cp.authorize("CARD-2"))["idTagInfo"]["status"] == "Invalid"
        status, body = await api.request("DELETE", "/api/v1/id-tokens/CARD-2", self.PATH)
        assert (status, body) == (404, {"error": "not_found", "message": "no such id token"})


class TestCommands:
    PATH = "/api/v1/stations/{station_id}/commands/{command}"
    LIST = "/api/v1/stations/{station_id}/commands"
    ONE = "/api/v1/commands/{command_id}"

    async def test_neutral_commands_answer_their_record(
        self, api: Client, csms_api: Running
    ) -> None:
        """Each neutral command reaches a 1.6 station; the record comes back and is listed."""
        async with SimStation(ws_url(csms_api), "CMD-1") as cp:
            bodies = {
                "start": {"id_token": "TAG-1", "evse_id": 1},
                "stop": {"transaction_id": 5},
                "reset": {"type": "hard"},
                "unlock": {"evse_id": 1},
                "change-availability": {"operative": True},
                "trigger-message": {"message": "Heartbeat"},
            }
            ids = []
            for name, body in bodies.items():
                status, record = await api.request(
                    "POST", f"/api/v1/stations/CMD-1/commands/{name}", self.PATH, body
                )
                assert (status, record["status"], record["command"]) == (200, "completed", name)
                assert record["payload"] == cp.received_calls[-1].payload
                ids.append(record["id"])
        status, one = await api.request("GET", f"/api/v1/commands/{ids[2]}", self.ONE)
        assert (status, one["action"], one["payload"]) == (200, "Reset", {"type": "Hard"})
        status, listed = await api.request("GET", "/api/v1/stations/CMD-1/commands", self.LIST)
        assert [c["id"] for c in listed["items"]] == ids[::-1]
        _, done = await api.request(
            "GET", "/api/v1/stations/CMD-1/commands", self.LIST, status="completed", limit="2"
        )
        assert [c["id"] for c in done["items"]] == ids[:-3:-1]

    async def test_error_cases(self, api: Client, csms_api: Running) -> None:
        """404, 409, 422, 502 and 504 as for raw calls; failures are recorded."""
        status, body = await api.request(
            "POST", "/api/v1/stations/GHOST/commands/reset", self.PATH, {"type": "soft"}
        )
        assert (status, body["error"]) == (404, "station_not_found")
        status, body = await api.request("GET", "/api/v1/commands/nope", self.ONE)
        assert status == 404
        status, body = await api.request("GET", "/api/v1/stations/GHOST/commands", self.LIST)
        assert status == 404
        status, body = await api.request(
            "GET", "/api/v1/stations/GHOST/commands", self.LIST, status="lost"
        )
        assert status == 400
        await csms_api.storage.register_station("OFFLINE", at=datetime.now(UTC))
        status, body = await api.request(
            "POST", "/api/v1/stations/OFFLINE/commands/reset", self.PATH, {"type": "soft"}
        )
        assert (status, body["error"]) == (409, "station_not_connected")

        class Grumpy(SimStation):
            async def on_call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
                if action == "UnlockConnector":
                    raise CallError("NotSupported", "no lock here")
                if action == "Reset":
                    await asyncio.sleep(3)
                return await super().on_call(action, payload)

        async with Grumpy(ws_url(csms_api), "GRUMPY-2", protocol="ocpp2.0.1") as cp:
            status, body = await api.request(
                "POST", "/api/v1/stations/GRUMPY-2/commands/launch", self.PATH, {}
            )
            assert (status, body["error"]) == (404, "unknown_command")
            status, body = await api.request(
                "POST", "/api/v1/stations/GRUMPY-2/commands/reset", self.PATH, {"type": "x"}
            )
            assert (status, body["error"]) == (422, "invalid_command")
            status, body = await api.request(
                "POST",
                "/api/v1/stations/GRUMPY-2/commands/trigger-message",
                self.PATH,
                {"message": "NoSuchMessage"},
            )
            assert (status, body["error"], body["code"]) == (
                422,
                "invalid_payload",
                "PropertyConstraintViolation",
            )
            status, body = await api.request(
                "POST", "/api/v1/stations/GRUMPY-2/commands/unlock", self.PATH, {"evse_id": 1}
            )
            assert (status, body["error"], body["code"]) == (
                502,
                "station_call_error",
                "NotSupported",
            )
            _, failed = await api.request("GET", f"/api/v1/commands/{body['command_id']}", self.ONE)
            assert (failed["status"], failed["error"]["description"]) == ("failed", "no lock here")
            status, body = await api.request(
                "POST", "/api/v1/stations/GRUMPY-2/commands/reset", self.PATH, {"type": "hard"}
            )
            assert (status, body["error"]) == (504, "station_timeout")
            _, late = await api.request("GET", f"/api/v1/commands/{body['command_id']}", self.ONE)
            assert late["status"] == "failed"
            assert [c.action for c in cp.received_calls] == ["UnlockConnector", "Reset"]

    async def test_an_offline_station_gets_its_queued_command_when_it_connects(
        self, api: Client, csms_api: Running
    ) -> None:
        """202 with the record; sent on connect; completed afterwards."""
        async with SimStation(ws_url(csms_api), "LATER") as cp:
            await cp.boot()
        status, queued = await api.request(
            "POST",
            "/api/v1/stations/LATER/commands/change-availability",
            self.PATH,
            {"operative": False, "evse_id": 1, "queue": {"expires_at": "2099-01-01T00:00:00Z"}},
        )
        assert (status, queued["error"]) == (422, "invalid_queue")  # beyond 30 days
        status, queued = await api.request(
            "POST",
            "/api/v1/stations/LATER/commands/change-availability",
            self.PATH,
            {"operative": False, "evse_id": 1},
            queue="true",
            expires_in="600",
        )
        assert (status, queued["status"]) == (202, "queued")
        async with SimStation(ws_url(csms_api), "LATER") as cp:
            call = await cp.wait_for_call("ChangeAvailability")
            assert call.payload == {"connectorId": 1, "type": "Inoperative"}

            async def completed() -> bool:
                _, done = await api.request("GET", f"/api/v1/commands/{queued['id']}", self.ONE)
                return bool(done["status"] == "completed")

            await poll_until(completed, within=5)
        _, done = await api.request("GET", f"/api/v1/commands/{queued['id']}", self.ONE)
        assert done["response"] == {"status": "Accepted"}


def test_every_route_of_the_openapi_file_is_exercised() -> None:
    """Runs last in this module: each path and method documented was called by a test."""
    documented = {(method, path) for path, item in OPENAPI["paths"].items() for method in item}
    assert documented <= EXERCISED, sorted(documented - EXERCISED)
