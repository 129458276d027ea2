"""Events as a downstream service sees them: on its own queue, through broker outages."""

from __future__ import annotations

import asyncio
import importlib
import shutil
from collections import defaultdict
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from csms.app import Running
from csms.core.events import EventType
from scripts.simulate import SimStation
from tests.conftest import service_missing
from tests.integration.broker import ONE_SESSION_EVENTS, EventTap, Received, first_deliveries
from tests.integration.conftest import StartCsms, http_url, ws_url
from tests.integration.polling import poll_until

pytestmark = pytest.mark.rabbitmq

SCHEMAS = Path(__file__).parents[2] / "docs" / "events"


@cache
def validator(kind: str) -> Any:
    """A JSON Schema validator for one event type."""
    # jsonschema is a dev dependency and ships no type hints: import it as Any.
    jsonschema: Any = importlib.import_module("jsonschema")
    schema = orjson.loads((SCHEMAS / f"{kind}.schema.json").read_bytes())
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def assert_contract(message: Received) -> None:
    """The body fits its type's schema and the AMQP properties are the contract's."""
    kind = message.body["type"]
    errors = sorted(validator(kind).iter_errors(message.body), key=str)
    assert not errors, f"{kind}: {errors[0].message} at {list(errors[0].absolute_path)}"
    assert message.routing_key == kind
    assert message.type == kind
    assert message.message_id == message.body["event_id"]
    assert message.content_type == "application/json"
    assert message.delivery_mode == 2
    assert message.headers["station_id"] == message.body["station_id"]


@pytest.fixture
async def tap(amqp_url: str) -> AsyncIterator[EventTap]:
    """An exclusive queue bound to every routing key of a fresh exchange.

    Request it before ``start_csms``: the CSMS then stops first, and its relay
    cannot declare the exchange again after the tap deleted it.
    """
    opened = EventTap(amqp_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def durable_tap(amqp_url: str) -> AsyncIterator[EventTap]:
    """Like ``tap``, but its queue survives a broker restart."""
    opened = EventTap(amqp_url, durable=True)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def ready(running: Running) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(http_url(running, "/health/ready")) as r,
    ):
        return r.status, await r.json()


async def wait_for_broker(running: Running, state: str, within: float = 15.0) -> None:
    """Poll readiness until it reports the broker ``state``; it must stay 200 throughout."""

    async def reports_state() -> bool:
        status, body = await ready(running)
        assert status == 200, body
        return bool(body["checks"]["broker"] == state)

    await poll_until(reports_state, within=within, every=0.05)


async def rabbitmqctl(command: str) -> None:
    if shutil.which("rabbitmqctl") is None:
        service_missing("rabbitmqctl is not installed: cannot stop and start the broker")
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        command,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode == 0, f"rabbitmqctl {command}: {err.decode()}"


async def session16(cp: SimStation, meter_start: int, steps: int) -> int:
    """Start, ``steps`` meter values of +250 Wh, stop; return the transaction id."""
    tx = await cp.start(1, "TAG-1", meter_start)
    for step in range(1, steps + 1):
        await cp.meter_values(1, tx, meter_start + 250 * step)
    await cp.stop(tx, meter_start + 250 * steps)
    return tx


def types_of(received: list[Received]) -> list[str]:
    return [m.type or "" for m in first_deliveries(received)]


class TestChargingSession:
    async def test_a_16_session_publishes_every_event_by_the_contract(
        self, amqp_url: str, tap: EventTap, start_csms: StartCsms
    ) -> None:
        """A 1.6 session publishes each event valid, with the contract's AMQP properties."""
        running = await start_csms(amqp_url=amqp_url, amqp_exchange=tap.exchange)
        async with SimStation(ws_url(running), "CP-EV1") as cp:
            await cp.boot()
            await cp.status(1, "Available")
            tx = await cp.start(1, "TAG-1", 10_000)
            await cp.meter_values(1, tx, 12_500)
            await cp.stop(tx, 17_250)
        received = await tap.collect(
            lambda got: EventType.STATION_DISCONNECTED in types_of(got), within=10
        )
        assert types_of(received) == ONE_SESSION_EVENTS
        for message in received:
            assert_contract(message)
            assert message.body["station_id"] == "CP-EV1"
            assert message.body["ocpp_version"] == "1.6"
        by_type = {m.type: m.body["data"] for m in received}
        assert by_type[EventType.STATION_STATUS_CHANGED] == {
            "evse_id": 1,
            "connector_id": 1,
            "status": "Available",
            "error_code": "NoError",
            "info": None,
            "vendor_id": None,
            "vendor_error_code": None,
        }
        started = by_type[EventType.TRANSACTION_STARTED]
        assert (started["transaction_id"], started["id_token"]) == (str(tx), "TAG-1")
        assert (started["evse_id"], started["connector_id"], started["meter_start_wh"]) == (
            1,
            1,
            10_000,
        )
        energy = by_type[EventType.METER_VALUES]["samples"][0]
        assert (energy["measurand"], energy["value"], energy["unit"]) == (
            "Energy.Active.Import.Register",
            12_500,
            "Wh",
        )
        ended = by_type[EventType.TRANSACTION_ENDED]
        assert ended["transaction_id"] == str(tx)
        assert (ended["meter_start_wh"], ended["meter_stop_wh"], ended["energy_wh"]) == (
            10_000,
            17_250,
            7_250,
        )
        assert (ended["stop_reason"], ended["anomalies"]) == ("Local", [])

    async def test_ready_reports_the_broker_up_while_connected(
        self, amqp_url: str, tap: EventTap, start_csms: StartCsms
    ) -> None:
        """With a reachable broker the readiness check says broker "up"."""
        running = await start_csms(amqp_url=amqp_url, amqp_exchange=tap.exchange)
        await wait_for_broker(running, "up", within=5)

    async def test_unreachable_broker_is_down_ready_and_events_wait(
        self, start_csms: StartCsms
    ) -> None:
        """A broker that never answers leaves the CSMS ready, the broker "down", events pending."""
        running = await start_csms(amqp_url="amqp://guest:guest@127.0.0.1:1/")
        async with SimStation(ws_url(running), "CP-NOMQ") as cp:
            await cp.boot()
        status, body = await ready(running)
        assert (status, body["checks"]["broker"]) == (200, "down")
        pending = await running.storage.outbox_list(10, pending_only=True)
        assert {row.event.type for row in pending} >= {"station.connected", "station.booted"}


@pytest.mark.serial  # stops RabbitMQ: nothing else may use the broker meanwhile
class TestBrokerOutage:
    async def test_stations_keep_charging_and_every_event_arrives_in_order(
        self, amqp_url: str, durable_tap: EventTap, start_csms: StartCsms
    ) -> None:
        """Stations get answers while the broker is stopped; then every event arrives, in order."""
        running = await start_csms(amqp_url=amqp_url, amqp_exchange=durable_tap.exchange)
        await wait_for_broker(running, "up", within=5)
        async with (
            SimStation(ws_url(running), "CP-A") as a,
            SimStation(ws_url(running), "CP-B") as b,
        ):
            await asyncio.gather(a.boot(), b.boot())
            await durable_tap.collect(lambda got: len(got) >= 4, within=5)
            try:
                await rabbitmqctl("stop_app")
                await wait_for_broker(running, "down", within=5)
                await asyncio.gather(session16(a, 1_000, 3), session16(b, 50_000, 3))
                await a.status(1, "Available")
                assert (await ready(running))[0] == 200
            finally:
                await rabbitmqctl("start_app")
            await wait_for_broker(running, "up", within=15)
        await durable_tap.collect(
            lambda got: types_of(got).count(EventType.STATION_DISCONNECTED) == 2, within=15
        )
        outbox = await running.storage.outbox_list(1_000, pending_only=False)
        expected = {row.event.event_id for row in outbox}
        received = await durable_tap.collect(
            lambda got: {m.event_id for m in got} >= expected, within=5
        )
        assert {m.event_id for m in received} == expected
        for message in received:
            assert_contract(message)
        seq_order: dict[str, list[str]] = defaultdict(list)
        for row in sorted(outbox, key=lambda r: r.seq):
            seq_order[row.event.station_id].append(row.event.event_id)
        delivered_order: dict[str, list[str]] = defaultdict(list)
        for message in first_deliveries(received):
            delivered_order[message.body["station_id"]].append(message.event_id)
        assert delivered_order == seq_order
        assert [t for t in types_of(received) if t == EventType.TRANSACTION_ENDED] == [
            EventType.TRANSACTION_ENDED
        ] * 2
