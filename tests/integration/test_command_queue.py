"""Commands over RabbitMQ: a message on the command queue, its answer on the reply-to queue."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import orjson
import pytest

from csms.app import Running
from scripts.simulate import OCPP201, SimStation
from tests.integration.broker import BROKER_ERRORS, unique_name
from tests.integration.conftest import StartCsms, ws_url
from tests.integration.vanishing import WAYS, SilentStation, vanish

pytestmark = pytest.mark.rabbitmq


class Requester:
    """A client of the command queue with its own exclusive reply queue."""

    def __init__(self, channel: aio_pika.abc.AbstractChannel, queue: str) -> None:
        self.channel = channel
        self.queue = queue
        self.replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.reply_to = ""

    async def open(self) -> None:
        replies = await self.channel.declare_queue(exclusive=True, auto_delete=True)
        self.reply_to = replies.name
        await replies.consume(self._on_reply, no_ack=True)

    async def _on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        future = self.replies.get(message.correlation_id or "")
        if future is not None and not future.done():
            future.set_result(orjson.loads(message.body))

    async def send(self, body: dict[str, Any] | bytes, within: float = 10.0) -> dict[str, Any]:
        correlation_id = unique_name()
        self.replies[correlation_id] = asyncio.get_running_loop().create_future()
        await self.channel.default_exchange.publish(
            aio_pika.Message(
                body if isinstance(body, bytes) else orjson.dumps(body),
                content_type="application/json",
                correlation_id=correlation_id,
                reply_to=self.reply_to,
            ),
            routing_key=self.queue,
        )
        async with asyncio.timeout(within):
            return await self.replies[correlation_id]


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The broker side is what is tested here: one database kind is enough."""
    return sqlite_url


@pytest.fixture
async def requester(amqp_url: str) -> AsyncIterator[Requester]:
    connection = await aio_pika.connect(amqp_url, timeout=5)
    try:
        client = Requester(await connection.channel(), unique_name())
        await client.open()
        yield client
    finally:
        with contextlib.suppress(*BROKER_ERRORS):
            channel = await connection.channel()
            await channel.queue_delete(client.queue)
        await connection.close()


@pytest.fixture
async def running(
    start_csms: StartCsms, amqp_url: str, requester: Requester
) -> AsyncIterator[Running]:
    exchange = unique_name()
    running = await start_csms(
        amqp_url=amqp_url, amqp_exchange=exchange, amqp_command_queue=requester.queue
    )
    assert running.command_queue is not None
    async with asyncio.timeout(10):
        await running.command_queue.wait_consuming()
    yield running
    await running.stop()
    with contextlib.suppress(*BROKER_ERRORS):
        await requester.channel.exchange_delete(exchange)


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
