"""What a broker outage looks like in the logs: a line when it begins, one when it ends.

The outage is a TCP proxy between the CSMS and the shared RabbitMQ that the
test cuts and restores (tests/integration/tcp_proxy.py): the broker itself
keeps running for everyone else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog

from csms.core.events import Event
from csms.core.ports import EventAppended
from csms.telemetry.log import quiet_amqp_libraries
from tests.integration.broker import EventTap, unique_name
from tests.integration.conftest import StartCsms
from tests.integration.polling import poll_until
from tests.integration.tcp_proxy import TcpProxy

OUTAGE_S = 2.0
AMQP_LIBRARIES = ("aio_pika", "aiormq")


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url


@pytest.fixture
async def proxy(amqp_url: str) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy.to(amqp_url)
    await proxy.start()
    yield proxy
    await proxy.close()


@pytest.fixture
def quiet_libraries() -> Iterator[None]:
    """The AMQP libraries' log levels as ``csms serve`` sets them at INFO; restored after."""
    loggers = [logging.getLogger(name) for name in AMQP_LIBRARIES]
    levels = [logger.level for logger in loggers]
    quiet_amqp_libraries(logging.INFO)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def meter_event(n: int) -> Event:
    now = datetime.now(UTC)
    return Event.new("meter.values", "CP-OUTAGE", "1.6", now, now, {"n": n})


async def wait_for(predicate: Callable[[], bool], within: float = 15.0) -> None:
    await poll_until(predicate, within=within, every=0.02)


def lines(
    logs: Sequence[MutableMapping[str, Any]], event: str, **fields: Any
) -> list[MutableMapping[str, Any]]:
    return [
        e for e in logs if e["event"] == event and all(e.get(k) == v for k, v in fields.items())
    ]


@pytest.mark.usefixtures("quiet_libraries")
async def test_a_broker_outage_logs_when_it_began_and_when_it_ended(
    start_csms: StartCsms,
    amqp_url: str,
    proxy: TcpProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """During a 2 s outage the relay and the command consumer each log one warning
    when the broker goes, their retries at debug only, and one line when it is back
    with how long it was down (the relay also how many events waited); the AMQP
    libraries add no warning or error of their own."""
    caplog.set_level(logging.DEBUG)
    tap = EventTap(amqp_url)
    await tap.open()
    try:
        with structlog.testing.capture_logs() as logs:
            running = await start_csms(
                amqp_url=proxy.url(amqp_url),
                amqp_exchange=tap.exchange,
                amqp_command_queue=unique_name(),
            )
            relay, consumer = running.relay, running.command_queue
            assert relay is not None
            assert consumer is not None
            async with asyncio.timeout(15):
                await consumer.wait_consuming()
            await wait_for(lambda: relay.broker_state == "up")

            await proxy.cut()
            await wait_for(lambda: relay.broker_state == "down")
            waiting = [meter_event(n) for n in range(3)]
            await running.storage.commit([EventAppended(e) for e in waiting])
            await asyncio.sleep(OUTAGE_S)
            await proxy.restore()

            await wait_for(lambda: bool(lines(logs, "relay_connected", events_waiting=3)))
            await wait_for(lambda: len(lines(logs, "command_queue_consuming")) == 2)
            received = await tap.collect(lambda got: len(got) >= len(waiting))
    finally:
        await tap.close()

    assert {r.event_id for r in received} == {e.event_id for e in waiting}
    loud = [(e["event"], e.get("error")) for e in logs if e["log_level"] in ("warning", "error")]
    assert sorted(event for event, _ in loud) == ["command_queue_broker_lost", "relay_broker_lost"]
    retries = lines(logs, "relay_broker_unavailable", log_level="debug")
    assert retries, "the relay retried during the outage"
    [relay_back] = lines(logs, "relay_connected", events_waiting=3)
    assert relay_back["log_level"] == "info"
    assert relay_back["down_seconds"] >= OUTAGE_S
    assert relay_back["retries"] == len(retries)
    consumer_back = lines(logs, "command_queue_consuming")[-1]
    assert consumer_back["down_seconds"] >= OUTAGE_S
    library = [
        (r.name, r.levelname, r.getMessage())
        for r in caplog.records
        if r.name.startswith(AMQP_LIBRARIES) and r.levelno >= logging.WARNING
    ]
    assert library == []
