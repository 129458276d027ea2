"""A client of the CSMS's AMQP command queue, and a CSMS consuming one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import orjson

from csms.app import Running
from tests.integration.broker import BROKER_ERRORS, unique_name
from tests.integration.conftest import StartCsms


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


@contextlib.asynccontextmanager
async def command_requester(amqp_url: str) -> AsyncIterator[Requester]:
    """A Requester on its own connection; its queue is deleted afterwards."""
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


@contextlib.asynccontextmanager
async def csms_consuming(
    start_csms: StartCsms, amqp_url: str, requester: Requester
) -> AsyncIterator[Running]:
    """A CSMS consuming ``requester``'s queue, on its own exchange (deleted afterwards)."""
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
