"""A test's own corner of RabbitMQ: an exchange name and a queue bound to all of it.

Names are ``csms.test.<hex>``, fresh per test; the queue is exclusive (gone
with the test's connection) unless it must outlive a broker restart, then
durable with an expiry as a safety net. ``EventTap.close`` deletes both.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq.exceptions
import orjson

from csms.core.events import EventType

BROKER_ERRORS = (OSError, TimeoutError, aiormq.exceptions.AMQPError, RuntimeError)

# What a 1.6 station publishes, in order, when it connects, boots, reports a
# status, charges once (start, one meter value, stop) and disconnects.
ONE_SESSION_EVENTS = [
    EventType.STATION_CONNECTED,
    EventType.STATION_BOOTED,
    EventType.STATION_STATUS_CHANGED,
    EventType.TRANSACTION_STARTED,
    EventType.METER_VALUES,
    EventType.TRANSACTION_ENDED,
    EventType.STATION_DISCONNECTED,
]


def unique_name() -> str:
    return f"csms.test.{secrets.token_hex(6)}"


@dataclass(frozen=True, slots=True)
class Received:
    """One message as a consumer sees it."""

    body: dict[str, Any]
    routing_key: str | None
    message_id: str | None
    type: str | None
    content_type: str | None
    delivery_mode: int
    headers: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.body["event_id"])


class EventTap:
    """Collects every event published to ``exchange`` (declared here as the relay does)."""

    def __init__(self, url: str, *, durable: bool = False) -> None:
        self.url = url
        self.exchange = unique_name()
        self.queue = unique_name()
        self.durable = durable
        self.received: list[Received] = []
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._arrived = asyncio.Event()

    async def open(self) -> None:
        """Declare the exchange and the queue, and start consuming."""
        await self._subscribe()

    async def collect(
        self, until: Callable[[list[Received]], bool], within: float = 10.0
    ) -> list[Received]:
        """Wait until ``until(self.received)`` holds; TimeoutError after ``within`` s.

        A consumer lost to a broker restart is resubscribed (durable taps).
        """
        try:
            async with asyncio.timeout(within):
                while not until(self.received):
                    self._arrived.clear()
                    if self._channel is None or self._channel.is_closed:
                        try:
                            await self._subscribe()
                        except BROKER_ERRORS:
                            await asyncio.sleep(0.1)
                            continue
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.2):
                            await self._arrived.wait()
        except TimeoutError:
            raise TimeoutError(
                f"after {within} s the tap holds {len(self.received)} messages: "
                f"{[(r.type, r.body.get('station_id')) for r in self.received]}"
            ) from None
        return self.received

    async def collect_for(self, seconds: float) -> list[Received]:
        """Wait ``seconds`` for whatever else arrives."""
        with contextlib.suppress(TimeoutError):
            await self.collect(lambda _: False, within=seconds)
        return self.received

    async def _subscribe(self) -> None:
        channel = await self._open_channel()
        exchange = await channel.declare_exchange(
            self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await self._declare_queue(channel)
        await queue.bind(exchange, "#")
        await queue.consume(self._on_message)

    async def _on_message(self, incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
        # Appended before the first await: messages keep their delivery order.
        self.received.append(_received(incoming))
        self._arrived.set()
        await incoming.ack()

    async def close(self) -> None:
        """Delete the queue and the exchange (best effort: the broker may be down)."""
        if self._connection is not None:
            with contextlib.suppress(*BROKER_ERRORS):
                await self._connection.close()  # an exclusive queue goes with it
        try:
            connection = await aio_pika.connect(self.url, timeout=5)
        except BROKER_ERRORS:
            return
        try:
            channel = await connection.channel()
            if self.durable:
                await channel.queue_delete(self.queue)
            await channel.exchange_delete(self.exchange)
        except BROKER_ERRORS:
            pass
        finally:
            await connection.close()

    async def _open_channel(self) -> aio_pika.abc.AbstractChannel:
        """The open channel, or a new one on a new connection after a broker restart."""
        if self._channel is not None and not self._channel.is_closed:
            return self._channel
        if self._connection is not None:
            try:
                self._channel = await self._connection.channel()
            except BROKER_ERRORS:
                self._connection = None
            else:
                return self._channel
        self._connection = await aio_pika.connect(self.url, timeout=5)
        self._channel = await self._connection.channel()
        return self._channel

    async def _declare_queue(
        self, channel: aio_pika.abc.AbstractChannel
    ) -> aio_pika.abc.AbstractQueue:
        if self.durable:
            return await channel.declare_queue(
                self.queue, durable=True, arguments={"x-expires": 300_000}
            )
        return await channel.declare_queue(self.queue, exclusive=True, auto_delete=True)


def _received(incoming: aio_pika.abc.AbstractIncomingMessage) -> Received:
    return Received(
        body=orjson.loads(incoming.body),
        routing_key=incoming.routing_key,
        message_id=incoming.message_id,
        type=incoming.type,
        content_type=incoming.content_type,
        delivery_mode=int(incoming.delivery_mode or 0),
        headers=dict(incoming.headers),
    )


def first_deliveries(received: list[Received]) -> list[Received]:
    """Each event once, at its first arrival."""
    seen: set[str] = set()
    firsts = []
    for message in received:
        if message.event_id not in seen:
            seen.add(message.event_id)
            firsts.append(message)
    return firsts
