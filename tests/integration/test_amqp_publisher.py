"""The relay's publisher against the real RabbitMQ: what a consumer receives,
and how a refused publish is reported (the relay resends from there)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aio_pika
import pytest

from csms.adapters.amqp.publisher import AmqpPublisher, BrokerError
from csms.core.events import Event
from csms.core.ports import OutboxRow
from tests.integration.broker import EventTap, unique_name
from tests.integration.tcp_proxy import TcpProxy


def rows(count: int, data: dict[str, object] | None = None) -> list[OutboxRow]:
    moment = datetime.now(UTC)
    return [
        OutboxRow(
            seq,
            Event.new("meter.values", "CP-1", "1.6", moment, moment, data or {"n": seq}),
            None,
        )
        for seq in range(count)
    ]


@pytest.fixture
async def tap(amqp_url: str) -> AsyncIterator[EventTap]:
    tap = EventTap(amqp_url)
    await tap.open()
    yield tap
    await tap.close()


@pytest.fixture
async def publisher(amqp_url: str, tap: EventTap) -> AsyncIterator[AmqpPublisher]:
    publisher = await AmqpPublisher.connect(amqp_url, tap.exchange, lambda: None)
    yield publisher
    await publisher.close()


async def test_a_batch_arrives_whole_and_in_order_with_the_contract_properties(
    publisher: AmqpPublisher, tap: EventTap
) -> None:
    batch = rows(300)
    outcome = await publisher.publish(batch)
    assert (outcome.confirmed, outcome.error) == (300, None)
    received = await tap.collect(lambda got: len(got) >= 300)
    assert [r.body["data"]["n"] for r in received] == list(range(300))
    first = received[0]
    assert first.body == batch[0].event.body()
    assert (first.routing_key, first.type, first.message_id) == (
        "meter.values",
        "meter.values",
        batch[0].event.event_id,
    )
    assert (first.content_type, first.delivery_mode) == ("application/json", 2)
    assert first.headers == {"station_id": "CP-1"}


async def test_a_body_larger_than_one_frame_arrives_intact(
    publisher: AmqpPublisher, tap: EventTap
) -> None:
    """RabbitMQ's frames hold 128 KiB: a larger event is split and reassembled."""
    big: dict[str, object] = {"blob": "x" * 400_000}
    outcome = await publisher.publish(rows(2, big))
    assert outcome.confirmed == 2
    received = await tap.collect(lambda got: len(got) >= 2)
    assert [r.body["data"] for r in received] == [big, big]


async def test_a_refused_publish_reports_the_confirmed_prefix(
    amqp_url: str, publisher: AmqpPublisher, tap: EventTap
) -> None:
    """A full queue that rejects publishes makes the broker nack: the relay learns
    how many leading events were confirmed, and resends from the first refused."""
    queue_name = unique_name()
    connection = await aio_pika.connect(amqp_url, timeout=5)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            queue_name,
            exclusive=True,
            arguments={"x-max-length": 5, "x-overflow": "reject-publish"},
        )
        await queue.bind(tap.exchange, "#")
        outcome = await publisher.publish(rows(12))
        assert outcome.confirmed == 5
        assert outcome.error is not None
        assert "nack" in outcome.error.lower()
        # The link stays usable for the resend once the queue has room.
        await queue.purge()
        again = await publisher.publish(rows(3))
        assert (again.confirmed, again.error) == (3, None)
    finally:
        with contextlib.suppress(Exception):
            await connection.close()


async def test_an_idle_link_stays_open_on_heartbeats(amqp_url: str, tap: EventTap) -> None:
    """With a one-second heartbeat the broker would drop a silent client within
    seconds: the link beats, so after an idle spell it is open and publishes."""
    separator = "&" if "?" in amqp_url else "?"
    publisher = await AmqpPublisher.connect(
        f"{amqp_url}{separator}heartbeat=1", tap.exchange, lambda: None
    )
    try:
        await asyncio.sleep(3.5)
        assert publisher.is_open
        outcome = await publisher.publish(rows(2))
        assert (outcome.confirmed, outcome.error) == (2, None)
    finally:
        await publisher.close()
    assert not publisher.is_open


async def test_a_link_lost_with_a_batch_in_flight_reports_it_unconfirmed(
    amqp_url: str, tap: EventTap
) -> None:
    """A network that stalls and then drops the connection: the batch on the wire is
    reported unconfirmed (the relay sends it again), the link says it closed, once."""
    proxy = TcpProxy.to(amqp_url)
    await proxy.start()
    closed: list[int] = []
    try:
        publisher = await AmqpPublisher.connect(
            proxy.url(amqp_url), tap.exchange, lambda: closed.append(1)
        )
        proxy.hold()
        in_flight = await publisher.send(rows(10))
        await proxy.cut()
        outcome = await in_flight
        assert outcome.confirmed == 0
        assert outcome.error is not None
        assert "lost" in outcome.error
        assert not publisher.is_open
        later = await (await publisher.send(rows(1)))
        assert (later.confirmed, later.error) == (0, outcome.error)
        await publisher.close()
        assert closed == [1]
    finally:
        await proxy.close()
    assert await tap.collect_for(0.3) == []


async def test_an_exchange_of_another_type_is_refused_with_the_brokers_reason(
    amqp_url: str,
) -> None:
    """The events exchange exists as a direct exchange: connecting says so, with
    RabbitMQ's own reason, instead of publishing where no binding matches."""
    name = unique_name()
    connection = await aio_pika.connect(amqp_url, timeout=5)
    try:
        channel = await connection.channel()
        await channel.declare_exchange(name, aio_pika.ExchangeType.DIRECT, auto_delete=True)
        with pytest.raises(BrokerError, match="cannot declare the exchange") as refused:
            await AmqpPublisher.connect(amqp_url, name, lambda: None)
        assert "PRECONDITION_FAILED" in str(refused.value)
        await channel.exchange_delete(name)
    finally:
        await connection.close()
