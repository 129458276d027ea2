"""Hostile input through a real server: every handler of both versions gets
random and schema-near payloads; each CALL is answered exactly once, never
with InternalError, the server keeps serving other stations and what it
stored stays readable.

Hypothesis runs derandomized with a fixed budget, so the suite is
reproducible and bounded in time.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from csms.app import Running
from protocols import ocpp16, ocpp201
from protocols.ocpp16.routes import ROUTES as ROUTES16
from protocols.ocpp201.routes import ROUTES as ROUTES201
from scripts.simulate import SimStation
from tests.hostile import RANDOM_JSON, bent_payloads, load_schema, to_json, valid_payloads
from tests.integration.conftest import StartCsms, http_url, ws_url

VERSIONS = {"1.6": ocpp16.SUBPROTOCOL, "2.0.1": ocpp201.SUBPROTOCOL}
ROUTES = {"1.6": sorted(ROUTES16), "2.0.1": sorted(ROUTES201)}
# Every code a CALLERROR of ours may carry for a station's fault (ADR 0003).
PEER_FAULT_CODES = {
    "FormationViolation",
    "ProtocolError",
    "NotImplemented",
    "NotSupported",
    "TypeConstraintViolation",
    "OccurrenceConstraintViolation",
    "PropertyConstraintViolation",
    "MessageTypeNotSupported",
}
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Prober:
    """One raw WebSocket per station: send any text, read the one answer."""

    def __init__(self, url: str, station_id: str, subprotocol: str) -> None:
        self.url = f"{url}/{station_id}"
        self.subprotocol = Subprotocol(subprotocol)
        self.ws: ClientConnection | None = None
        self.reconnects = 0
        self._ids = itertools.count()

    async def open(self) -> None:
        self.ws = await connect(self.url, subprotocols=[self.subprotocol], max_size=None)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    def next_id(self) -> str:
        return f"fz-{next(self._ids)}"

    async def exchange(self, text: str) -> list[Any] | None:
        """Send one frame; return the decoded answer, or None if the server closed."""
        assert self.ws is not None
        try:
            await self.ws.send(text)
            async with asyncio.timeout(10):
                answer = await self.ws.recv()
        except ConnectionClosed:
            self.reconnects += 1
            await self.open()
            return None
        decoded: list[Any] = orjson.loads(answer)
        return decoded

    async def call(self, action: str, payload: Any) -> list[Any] | None:
        unique_id = self.next_id()
        answer = await self.exchange(to_json([2, unique_id, action, payload]))
        if answer is not None:
            assert_one_answer(answer, unique_id, action, payload)
        return answer


def assert_one_answer(answer: list[Any], unique_id: str, action: str, payload: Any) -> None:
    """A CALLRESULT or a peer-fault CALLERROR, for exactly this CALL."""
    context = f"{action} {to_json(payload)[:300]} -> {answer!r:.300}"
    assert answer[0] in (3, 4), context
    if answer[1] == "-1":  # only a frame the server could not parse loses its id
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(to_json([2, unique_id, action, payload]))
    else:
        assert answer[1] == unique_id, context
    if answer[0] == 4:
        assert answer[2] in PEER_FAULT_CODES, context


@pytest.fixture
async def target(start_csms: StartCsms) -> AsyncIterator[tuple[Running, dict[str, Prober]]]:
    """A CSMS and one raw connection per protocol version (no message pacing: the
    fuzzers send far faster, and far more invalid frames, than a station would)."""
    csms = await start_csms(station_message_rate=0, station_max_refusals=0)
    probers = {
        version: Prober(ws_url(csms), f"FUZZ-{version}", subprotocol)
        for version, subprotocol in VERSIONS.items()
    }
    for prober in probers.values():
        await prober.open()
    yield csms, probers
    for prober in probers.values():
        await prober.close()


async def assert_still_serving(csms: Running, probers: dict[str, Prober]) -> None:
    """The fuzzed stations still work, a bystander runs a whole session, and
    what the server stored reads back through the REST API."""
    for version, prober in probers.items():
        answer = await prober.call("Heartbeat", {})
        assert answer is not None
        assert answer[0] == 3, (version, answer)
        assert prober.reconnects == 0
    async with SimStation(ws_url(csms), "BYSTANDER") as cp:
        await cp.boot()
        tx = await cp.start(1, "TAG-1", meter_start_wh=100)
        await cp.meter_values(1, tx, 500)
        await cp.stop(tx, 900)
    async with aiohttp.ClientSession() as http:
        for path in (
            "/api/v1/stations",
            "/api/v1/transactions?limit=500",
            "/api/v1/stations/FUZZ-1.6",
            "/api/v1/stations/FUZZ-2.0.1",
        ):
            async with http.get(http_url(csms, path)) as response:
                assert response.status == 200, (path, await response.text())


def calls(version: str) -> st.SearchStrategy[tuple[str, Any]]:
    """(action, payload): valid or bent payloads of every action the version routes."""
    return st.sampled_from(ROUTES[version]).flatmap(
        lambda action: st.tuples(
            st.just(action),
            valid_payloads(load_schema(version, action))
            | bent_payloads(load_schema(version, action)),
        )
    )


class TestSchemaNearPayloads:
    @pytest.mark.parametrize("version", ["1.6", "2.0.1"])
    async def test_every_handler_answers_each_call_once(
        self, target: tuple[Running, dict[str, Prober]], version: str
    ) -> None:
        """Valid and bent payloads of every action get one CALLRESULT or a peer-fault CALLERROR."""
        csms, probers = target
        prober = probers[version]

        loop = asyncio.get_running_loop()

        @FUZZ
        @given(calls(version))
        def run(call: tuple[str, Any]) -> None:
            asyncio.run_coroutine_threadsafe(prober.call(*call), loop).result()

        await asyncio.to_thread(run)  # Hypothesis drives from a thread; I/O stays on the loop
        await assert_still_serving(csms, probers)


def json_nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


FRAMES = (
    st.binary(max_size=300)
    | st.text(max_size=300)
    | st.lists(st.integers(-1, 6) | st.text(max_size=40) | RANDOM_JSON, max_size=6).map(to_json)
)


class TestRawFrames:
    async def test_random_text_and_binary_frames_are_answered_or_close_one_connection(
        self, target: tuple[Running, dict[str, Prober]]
    ) -> None:
        """Any frame gets one CALLERROR or nothing (a stray answer), or closes only its own
        connection (invalid UTF-8 in a text frame: 1007); other stations keep working."""
        csms, probers = target
        loop = asyncio.get_running_loop()
        prober = Prober(ws_url(csms), "RAW-1", ocpp16.SUBPROTOCOL)
        await prober.open()

        async def send(frame: str | bytes) -> None:
            assert prober.ws is not None
            try:
                await prober.ws.send(frame)
                marker = prober.next_id()
                await prober.ws.send(to_json([2, marker, "Heartbeat", {}]))
                async with asyncio.timeout(10):
                    while True:  # at most one answer to the frame, then the marker's
                        answer = orjson.loads(await prober.ws.recv())
                        assert answer[0] in (3, 4), answer
                        if answer[1] == marker:
                            break
                        assert answer[0] == 4
                        assert answer[2] in PEER_FAULT_CODES
            except ConnectionClosed:
                assert prober.ws.close_code in (1003, 1007, 1009), prober.ws.close_code
                await prober.open()

        @FUZZ
        @given(FRAMES)
        def run(frame: str | bytes) -> None:
            asyncio.run_coroutine_threadsafe(send(frame), loop).result()

        await asyncio.to_thread(run)
        await prober.close()
        await assert_still_serving(csms, probers)

    async def test_invalid_utf8_text_frame_closes_only_that_connection(
        self, target: tuple[Running, dict[str, Prober]]
    ) -> None:
        """A text frame that is not UTF-8 breaks the WebSocket protocol: 1007 for that socket."""
        csms, probers = target
        async with SimStation(ws_url(csms), "BAD-UTF8") as cp:
            # Bypass the client's own UTF-8 encoding: a raw text frame with 0xff.
            await cp.ws.send([b"\xff\xfe"], text=True)
            assert await cp.wait_closed() == 1007
        await assert_still_serving(csms, probers)


class TestStrayAnswers:
    async def test_answers_with_unknown_ids_do_not_resolve_the_csms_call(
        self, target: tuple[Running, dict[str, Prober]]
    ) -> None:
        """While the CSMS waits for its CALL's answer, answers with other ids are ignored
        (and not answered); the right one resolves the call."""
        csms, probers = target
        loop = asyncio.get_running_loop()
        async with SimStation(ws_url(csms), "STRAY") as cp:
            await cp.heartbeat()

            async def round_trip(stray: list[tuple[bool, str]]) -> None:
                asking = asyncio.create_task(
                    csms.stations.call("STRAY", "GetConfiguration", {"key": ["Probe"]})
                )
                try:
                    # The simulator answers on its own; hold it back by answering first.
                    for is_result, uid in stray:
                        frame = (
                            [3, uid, {"configurationKey": []}]
                            if is_result
                            else [4, uid, "GenericError", "", {}]
                        )
                        await cp.ws.send(to_json(frame))
                    answer = await asyncio.wait_for(asking, 10)
                    assert "unknownKey" in answer or "configurationKey" in answer
                finally:
                    asking.cancel()

            @FUZZ
            @given(
                st.lists(
                    st.tuples(
                        st.booleans(), st.text(min_size=1, max_size=36).map(lambda s: "x" + s)
                    ),
                    max_size=5,
                )
            )
            def run(stray: list[tuple[bool, str]]) -> None:
                asyncio.run_coroutine_threadsafe(round_trip(stray), loop).result()

            await asyncio.to_thread(run)
            await cp.heartbeat()
        await assert_still_serving(csms, probers)


class TestRegressions:
    """Inputs the fuzzers found (or the review feared) that once reached the database or
    crashed a handler."""

    @pytest.mark.parametrize(
        ("protocol", "action", "payload", "code"),
        [
            pytest.param(
                "ocpp1.6",
                "StatusNotification",
                {"connectorId": 2**31, "errorCode": "NoError", "status": "Available"},
                "PropertyConstraintViolation",
                id="1.6-connector-id-beyond-int32",
            ),
            pytest.param(
                "ocpp1.6",
                "StatusNotification",
                {"connectorId": 2**63, "errorCode": "NoError", "status": "Available"},
                "PropertyConstraintViolation",
                id="1.6-connector-id-beyond-int64",
            ),
            pytest.param(
                "ocpp1.6",
                "StartTransaction",
                {
                    "connectorId": 2**70,
                    "idTag": "T",
                    "meterStart": 0,
                    "timestamp": "2026-01-01T00:00:00Z",
                },
                "TypeConstraintViolation",  # JSON reads 2**70 as a float
                id="1.6-connector-id-2**70",
            ),
            pytest.param(
                "ocpp2.0.1",
                "StatusNotification",
                {
                    "timestamp": "2026-01-01T00:00:00Z",
                    "connectorStatus": "Available",
                    "evseId": 2**70,
                    "connectorId": 1,
                },
                "PropertyConstraintViolation",  # draft-06 calls 1.18e21 an integer
                id="2.0.1-evse-id-2**70",
            ),
            pytest.param(
                "ocpp2.0.1",
                "MeterValues",
                {
                    "evseId": 1,
                    "meterValue": [
                        {
                            "timestamp": "2026-01-01T00:00:00Z",
                            "sampledValue": [
                                {"value": 1.0, "unitOfMeasure": {"multiplier": 2**31 - 1}}
                            ],
                        }
                    ],
                },
                "PropertyConstraintViolation",  # 10.0**multiplier overflowed
                id="2.0.1-multiplier-overflow",
            ),
            pytest.param(
                "ocpp1.6",
                "MeterValues",
                {
                    "connectorId": 1,
                    "meterValue": [
                        {
                            "timestamp": "2026-01-01T00:00:00Z",
                            "sampledValue": [{"value": "1e308", "unit": "kWh"}],
                        }
                    ],
                },
                "PropertyConstraintViolation",  # 1e308 kWh is infinite Wh
                id="1.6-kwh-to-infinity",
            ),
            pytest.param(
                "ocpp1.6",
                "StatusNotification",
                {
                    "connectorId": 1,
                    "errorCode": "NoError",
                    "status": "Available",
                    "timestamp": "9999-12-31T23:59:59-01:00",
                },
                "PropertyConstraintViolation",  # the year 10000 in UTC
                id="1.6-timestamp-beyond-9999",
            ),
            pytest.param(
                "ocpp1.6",
                "Authorize",
                {"idTag": "04\u0000A1"},
                "PropertyConstraintViolation",  # PostgreSQL text cannot hold NUL
                id="1.6-nul-in-id-tag",
            ),
            pytest.param(
                "ocpp2.0.1",
                "DataTransfer",
                {"vendorId": "v", "data": json_nested(300)},
                "FormationViolation",  # orjson writes at most 254 levels
                id="2.0.1-deeply-nested-data",
            ),
        ],
    )
    async def test_out_of_range_input_is_refused_before_storage(
        self, csms: Running, protocol: str, action: str, payload: dict[str, Any], code: str
    ) -> None:
        """The CALL gets the named CALLERROR; the station and the server carry on."""
        prober = Prober(ws_url(csms), "REGRESS", protocol)
        await prober.open()
        try:
            answer = await prober.call(action, payload)
            assert answer is not None
            assert answer[:3] == [4, answer[1], code], answer
            heartbeat = await prober.call("Heartbeat", {})
            assert heartbeat is not None
            assert heartbeat[0] == 3
        finally:
            await prober.close()


class TestRepeatOffenders:
    async def test_a_flood_of_invalid_frames_closes_that_connection_alone(
        self, csms: Running
    ) -> None:
        """Thirty unreadable frames in a row: each answered with its CALLERROR,
        then the connection closed with 1008; a station beside it is served."""
        async with SimStation(ws_url(csms), "NEIGHBOUR") as good:
            await good.boot()
            async with SimStation(ws_url(csms), "FLOODER") as bad:
                answers = 0
                for _ in range(40):
                    try:
                        answer = await bad.send_raw("[2, not json")
                    except ConnectionClosed:
                        break
                    assert answer[0] == 4
                    answers += 1
                assert answers == 30
                assert bad.close_code == 1008
                assert bad.close_reason == "too many invalid messages"
            assert (await good.heartbeat())["currentTime"]
