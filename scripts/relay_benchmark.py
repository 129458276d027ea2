#!/usr/bin/env python3
"""How fast the outbox relay publishes, and what it costs: loopback only, bounded in time.

Fills a fresh outbox with N meter.values events (six samples each, the
common event), starts an ``OutboxRelay`` against the local RabbitMQ and
times it until every event is confirmed and marked delivered. Then it lets
the relay sit idle and measures what polling costs. The exchange and a
durable queue bound to it (so the broker really persists the messages) are
created for the run and deleted afterwards::

    python scripts/relay_benchmark.py --events 20000
    python scripts/relay_benchmark.py --database-url postgresql://postgres@127.0.0.1/postgres

CPU is this process's (``time.process_time``: the event loop plus the SQLite
thread), per confirmed event; the broker's and PostgreSQL's own CPU is not
in it. Pin it for steadier figures: ``taskset -c 1 python scripts/...``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import asyncpg

from csms.adapters.amqp.publisher import AmqpPublisher, Publisher
from csms.adapters.amqp.relay import OutboxRelay
from csms.adapters.storage import open_storage
from csms.core.events import Event, EventType
from csms.core.ports import EventAppended, Storage
from csms.telemetry import metrics

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
FILL_BATCH = 500


@dataclass(frozen=True, slots=True)
class Result:
    events: int
    seconds: float
    cpu_seconds: float
    idle_cpu_percent: float

    def report(self, label: str) -> str:
        rate = self.events / self.seconds if self.seconds else 0.0
        per_event = self.cpu_seconds / self.events * 1e6 if self.events else 0.0
        return (
            f"{label}: {self.events} events confirmed in {self.seconds:.2f} s = {rate:,.0f}/s;"
            f" CPU {per_event:.0f} us/event ({self.cpu_seconds / self.seconds * 100:.0f} % of a"
            f" core); idle: {self.idle_cpu_percent:.2f} % of a core"
        )


def meter_event(station: int, n: int) -> Event:
    now = datetime.now(UTC)
    stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    samples = [
        {
            "timestamp": stamp,
            "measurand": measurand,
            "value": value,
            "unit": unit,
            "phase": phase,
            "context": "Sample.Periodic",
            "location": "Outlet",
        }
        for measurand, value, unit, phase in (
            ("Energy.Active.Import.Register", 1_200_000.0 + n * 250, "Wh", None),
            ("Power.Active.Import", 11_040.0, "W", None),
            ("Current.Import", 16.0, "A", "L1"),
            ("Voltage", 230.1, "V", "L1-N"),
            ("SoC", 54.0, "Percent", None),
            ("Temperature", 28.5, "Celsius", None),
        )
    ]
    data = {"transaction_id": str(station), "evse_id": 1, "samples": samples}
    return Event.new(EventType.METER_VALUES, f"BENCH-{station:04d}", "1.6", now, now, data)


async def fill(storage: Storage, count: int, stations: int) -> None:
    for start in range(0, count, FILL_BATCH):
        unit = [
            EventAppended(meter_event(n % stations, n))
            for n in range(start, min(count, start + FILL_BATCH))
        ]
        await storage.commit(unit)


async def wait_published(count: int, deadline: float) -> None:
    """Until the relay counted ``count`` events confirmed and marked delivered.

    Reads the relay's own counter: polling the database would cost CPU
    that the measurement would then blame on the relay.
    """
    while _published() < count:
        if time.monotonic() > deadline:
            raise TimeoutError("the relay did not drain the outbox within --max-seconds")
        await asyncio.sleep(0.01)


def _published() -> float:
    value = metrics.REGISTRY.get_sample_value(
        "csms_events_published_total", {"type": EventType.METER_VALUES}
    )
    return value or 0.0


async def run(options: argparse.Namespace) -> int:
    exchange, queue = f"csms.bench.{secrets.token_hex(4)}", f"csms.bench.{secrets.token_hex(4)}"
    admin = await aio_pika.connect(options.amqp_url, timeout=5)
    channel = await admin.channel()
    try:
        declared = await channel.declare_exchange(
            exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        if options.queue:
            bound = await channel.declare_queue(
                queue, durable=True, arguments={"x-expires": 600_000}
            )
            await bound.bind(declared, "#")
        with tempfile.TemporaryDirectory() as scratch:
            database_url = options.database_url or f"sqlite:///{Path(scratch) / 'bench.db'}"
            storage, drop = await fresh_storage(database_url)
            try:
                result = await measure(storage, options, exchange)
            finally:
                await storage.close()
                await drop()
    finally:
        # Also after a failed run: nothing of it stays on the broker.
        await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)
        await admin.close()
    queued = "durable queue" if options.queue else "no queue"
    label = f"{urlsplit(database_url).scheme}, batch {options.batch}, {queued}"
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(result.report(label))
    print(f"  load average at the end: {load} on {os.cpu_count()} cores")
    return 0


async def measure(storage: Storage, options: argparse.Namespace, exchange: str) -> Result:
    """Fill the outbox, time the relay draining it, then its idle cost."""
    await fill(storage, options.events, options.stations)

    async def connect(on_close: Callable[[], None]) -> Publisher:
        return await AmqpPublisher.connect(options.amqp_url, exchange, on_close)

    relay = OutboxRelay(storage, connect, retention=timedelta(hours=1), batch_size=options.batch)
    before = _published()
    wall, cpu = time.monotonic(), time.process_time()
    relay.start()
    try:
        await wait_published(before + options.events, wall + options.max_seconds)
        seconds, cpu_seconds = time.monotonic() - wall, time.process_time() - cpu
        idle_cpu = time.process_time()
        await asyncio.sleep(options.idle_seconds)
        idle = (time.process_time() - idle_cpu) / options.idle_seconds * 100
    finally:
        await relay.stop(1.0)
    if (await storage.outbox_backlog()).pending:
        raise AssertionError("events left pending after the relay counted them published")
    return Result(options.events, seconds, cpu_seconds, idle)


async def fresh_storage(url: str) -> tuple[Storage, Callable[[], Awaitable[None]]]:
    """SQLite as given; on PostgreSQL a new database on that server, dropped afterwards."""
    if not url.startswith("postgres"):
        storage = await open_storage(url)

        async def nothing() -> None:
            return None

        return storage, nothing
    name = f"csms_bench_{secrets.token_hex(4)}"
    server = await asyncpg.connect(url)
    await server.execute(f'CREATE DATABASE "{name}"')
    storage = await open_storage(urlsplit(url)._replace(path=f"/{name}").geturl())

    async def drop() -> None:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()

    return storage, drop


def _loopback(url: str, what: str) -> str:
    host = urlsplit(url).hostname
    if not url or url.startswith("sqlite") or host in LOOPBACK:
        return url
    raise argparse.ArgumentTypeError(f"{what} must be on loopback, not {host!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--amqp-url",
        default="amqp://guest:guest@127.0.0.1:5672/",
        type=lambda url: _loopback(url, "--amqp-url"),
    )
    parser.add_argument(
        "--database-url",
        default="",
        type=lambda url: _loopback(url, "--database-url"),
        help="a PostgreSQL server to create a scratch database on (default: a SQLite file)",
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--stations", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=500, help="relay batch (%(default)s)")
    parser.add_argument(
        "--no-queue",
        dest="queue",
        action="store_false",
        help="bind no queue: the broker confirms without persisting (isolates the relay)",
    )
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    options = parser.parse_args(argv)
    return asyncio.run(run(options))


if __name__ == "__main__":
    sys.exit(main())
