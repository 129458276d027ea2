"""Commands over RabbitMQ: a message on the command queue, its answer on the reply-to queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest

from csms.app import Running
from scripts.simulate import OCPP201, SimStation
from tests.integration.command_queue_client import Requester, command_requester, csms_consuming
from tests.integration.conftest import StartCsms, ws_url
from tests.integration.vanishing import WAYS, SilentStation, vanish

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The broker side is what is tested here: one database kind is enough."""
    return sqlite_url


@pytest.fixture
async def requester(amqp_url: str) -> AsyncIterator[Requester]:
    async with command_requester(amqp_url) as client:
        yield client


@pytest.fixture
async def running(
    start_csms: StartCsms, amqp_url: str, requester: Requester
) -> AsyncIterator[Running]:
    async with csms_consuming(start_csms, amqp_url, requester) as csms:
        yield csms


class TestCommandQueue:
    async def test_a_command_gets_its_reply_on_the_reply_to_queue(
        self, running: Running, requester: Requester
    ) -> None:
        """Neutral and raw commands reach the station; the reply is the REST API's answer."""
        async with SimStation(ws_url(running), "AMQP-1", protocol=OCPP201) as cp:
            await cp.boot201()
            reply = await requester.send(
                {"station_id": "AMQP-1", "command": "reset", "type": "hard"}
            )
            assert reply["status"] == 200, reply
            assert (reply["body"]["status"], reply["body"]["source"]) == ("completed", "amqp")
            assert reply["body"]["response"] == {"status": "Accepted"}
            assert (await cp.wait_for_call("Reset")).payload == {"type": "Immediate"}
            raw = await requester.send(
                {
                    "station_id": "AMQP-1",
                    "action": "GetVariables",
                    "payload": {
                        "getVariableData": [
                            {
                                "component": {"name": "OCPPCommCtrlr"},
                                "variable": {"name": "HeartbeatInterval"},
                            }
                        ]
                    },
                }
            )
            assert raw["status"] == 200, raw
            assert raw["body"]["getVariableResult"][0]["attributeValue"] == "300"
            record = await running.storage.find_command(raw["command_id"])
            assert record is not None
            assert record.source == "amqp"
        queued = await requester.send(
            {"station_id": "AMQP-1", "command": "unlock", "payload": {"evse_id": 1}, "queue": True}
        )
        assert (queued["status"], queued["body"]["status"]) == (202, "queued")

    async def test_refusals_are_answered_like_the_rest_api(
        self, requester: Requester, running: Running
    ) -> None:
        """Bad JSON 400, unknown station or command 404, offline 409, invalid 422."""
        assert (await requester.send(b"{nope"))["status"] == 400
        unknown = await requester.send({"station_id": "GHOST", "command": "reset", "type": "soft"})
        assert (unknown["status"], unknown["body"]["error"]) == (404, "station_not_found")
        assert (await requester.send({"station_id": "X", "command": "launch"}))["status"] == 404
        assert (await requester.send({"station_id": "X", "payload": {}}))["status"] == 422
        async with SimStation(ws_url(running), "AMQP-2") as cp:
            await cp.boot()
            bad = await requester.send({"station_id": "AMQP-2", "action": "Reset", "payload": {}})
            assert (bad["status"], bad["body"]["error"]) == (422, "invalid_payload")
        offline = await requester.send({"station_id": "AMQP-2", "command": "reset", "type": "soft"})
        assert (offline["status"], offline["body"]["error"]) == (409, "station_not_connected")


class TestVanishedStations:
    async def test_stations_that_leave_mid_call_do_not_block_the_queue(
        self, running: Running, requester: Requester, amqp_url: str
    ) -> None:
        """20 commands (more than the prefetch) to stations that leave with the CALL
        unanswered are all answered 409 and acknowledged, their outcomes recorded at
        once, and the next command is still served."""

        async def one(n: int) -> tuple[dict[str, Any], str]:
            station_id = f"VANISH-{n}"
            async with SilentStation(ws_url(running), station_id) as cp:
                await cp.boot()
                asking = asyncio.create_task(
                    requester.send({"station_id": station_id, "command": "reset", "type": "soft"})
                )
                await cp.wait_for_call("Reset")
                newer = await vanish(cp, WAYS[n % len(WAYS)])
                reply = await asking
                if newer is not None:
                    await newer.close()
            return reply, station_id

        for reply, station_id in await asyncio.gather(*(one(n) for n in range(20))):
            assert reply["status"] == 409, reply
            message = f"station {station_id!r} disconnected before answering"
            assert reply["body"]["message"] == message
            record = await running.storage.find_command(reply["command_id"])
            assert record is not None
            assert record.status.value == "failed"
        async with SimStation(ws_url(running), "AFTER", protocol=OCPP201) as cp:
            await cp.boot201()
            after = await requester.send(
                {"station_id": "AFTER", "command": "reset", "type": "hard"}
            )
            assert after["status"] == 200, after
        await running.stop()  # an unacknowledged message would go back to the queue now
        connection = await aio_pika.connect(amqp_url, timeout=5)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(requester.queue, passive=True)
            assert queue.declaration_result.message_count == 0
