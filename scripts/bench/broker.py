#!/usr/bin/env python3
"""BENCHMARK HELPER, NOT PART OF THE PRODUCT: a benchmark's exchange on RabbitMQ.

``sink EXCHANGE`` declares the durable topic exchange the CSMS publishes to
and a durable queue bound to every routing key (length-capped), so that the
broker stores what it confirms, as it would with a real consumer's queue;
``drop EXCHANGE`` deletes both::

    python scripts/bench/broker.py sink bench.events.1234
    python scripts/bench/broker.py drop bench.events.1234
"""

from __future__ import annotations

import argparse
import asyncio

import aio_pika

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
SINK_MAX_LENGTH = 200_000


async def sink(url: str, exchange: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_exchange(
            exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(
            f"{exchange}.sink", durable=True, arguments={"x-max-length": SINK_MAX_LENGTH}
        )
        await queue.bind(declared, "#")


async def drop(url: str, exchange: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(f"{exchange}.sink")
        await channel.exchange_delete(exchange)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("action", choices=("sink", "drop"))
    parser.add_argument("exchange")
    parser.add_argument("--url", default=DEFAULT_URL)
    options = parser.parse_args()
    action = sink if options.action == "sink" else drop
    asyncio.run(action(options.url, options.exchange))


if __name__ == "__main__":
    main()
