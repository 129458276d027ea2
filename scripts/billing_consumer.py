#!/usr/bin/env python3
"""An example downstream service: one bill line per finished charging session.

It declares its own durable queue, binds it to the CSMS's exchange with the
routing key ``transaction.ended``, and prints one line per session::

    python scripts/billing_consumer.py --amqp-url amqp://guest:guest@127.0.0.1:5672/ \\
        --exchange csms.events --queue billing.sessions

    BILL station=CP-001 token=04A1B2C3 kWh=32.250 duration=3h29m07s transaction=1842 ...

Each message is acknowledged after its line is printed, so a crash in
between redelivers it; the queue keeps what arrives while the consumer is
down. ``--max-seconds`` and ``--max-events`` bound a run (tests, demos).

Deduplication. The CSMS delivers at least once: the same event can arrive
twice, with the same ``event_id``. This consumer remembers the last
``--dedup-window`` ids (default 100,000: about 10 MB) and skips a repeat.
The memory stays bounded, at a price: a duplicate arriving after that many
newer events, or after this process restarted, is billed again. A real
billing service closes both gaps by writing the bill and the event id (or
the station and transaction id) in one database transaction under a unique
key: unbounded but durable, and exact. The window here only shows the idea.

Order. Events of one station arrive in the order they happened; a single
consumer on the queue keeps it (``nack`` with requeue would not).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import signal
import sys
from datetime import datetime
from typing import Any, TextIO

import aio_pika
import aiormq.exceptions
import orjson

ROUTING_KEY = "transaction.ended"
SCHEMA_VERSION = 1
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


class RecentIds:
    """The last ``size`` event ids seen: bounded memory, oldest forgotten first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()

    def seen(self, event_id: str) -> bool:
        """True if ``event_id`` came before (within the window); else remember it."""
        if event_id in self._ids:
            return True
        self._ids[event_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return False


def bill_line(body: dict[str, Any]) -> str:
    """The bill of one ``transaction.ended`` event."""
    data = body["data"]
    energy_wh = data.get("energy_wh") or 0.0
    started = datetime.fromisoformat(data["started_at"])
    ended = datetime.fromisoformat(data["ended_at"])
    seconds = max(0, round((ended - started).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    duration = f"{hours}h{rest // 60:02d}m{rest % 60:02d}s"
    line = (
        f"BILL station={body['station_id']} token={data.get('id_token') or '-'}"
        f" kWh={energy_wh / 1000:.3f} duration={duration}"
        f" transaction={data['transaction_id']} event={body['event_id']}"
    )
    anomalies = data.get("anomalies") or []
    return line + (f" check={','.join(anomalies)}" if anomalies else "")


class Biller:
    """Turns messages into bill lines; counts what it did."""

    def __init__(self, out: TextIO, window: int) -> None:
        self.out = out
        self.recent = RecentIds(window)
        self.billed = 0
        self.duplicates = 0
        self.refused = 0

    def handle(self, raw: bytes) -> None:
        try:
            body = orjson.loads(raw)
            event_id = str(body["event_id"])
            version = body["schema_version"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.refused += 1
            print(f"skipped a message that is not a CSMS event: {raw[:120]!r}", file=sys.stderr)
            return
        if version != SCHEMA_VERSION:
            # A newer shape: set it aside rather than misread it.
            self.refused += 1
            print(f"skipped {event_id}: schema_version {version} is unknown here", file=sys.stderr)
            return
        if self.recent.seen(event_id):
            self.duplicates += 1
            return
        print(bill_line(body), file=self.out, flush=True)
        self.billed += 1


async def consume(options: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Bill until interrupted, ``--max-seconds`` passed or ``--max-events`` were billed."""
    biller = Biller(out, options.dedup_window)
    finished = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, finished.set)
    # A robust connection redeclares the queue and resumes consuming after a broker restart.
    connection = await aio_pika.connect_robust(options.amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)
        exchange = await channel.declare_exchange(
            options.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(options.queue, durable=True)
        await queue.bind(exchange, ROUTING_KEY)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            if finished.is_set():
                return  # left unacknowledged: the broker requeues it in place at close
            biller.handle(message.body)
            # Decided before the first await: callbacks of prefetched messages interleave there.
            if options.max_events and biller.billed >= options.max_events:
                finished.set()
            await message.ack()

        tag = await queue.consume(on_message)
        print(f"consuming {options.queue} <- {options.exchange} ({ROUTING_KEY})", file=sys.stderr)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(options.max_seconds):
                await finished.wait()
        await queue.cancel(tag)
    print(
        f"billed {biller.billed}, skipped {biller.duplicates} duplicates"
        f" and {biller.refused} unusable messages",
        file=sys.stderr,
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Print one bill line per finished charging session (transaction.ended)."
    )
    parser.add_argument(
        "--amqp-url",
        default=os.environ.get("CSMS_AMQP_URL") or DEFAULT_URL,
        help="RabbitMQ URL (default: $CSMS_AMQP_URL, else the local broker)",
    )
    parser.add_argument(
        "--exchange",
        default=os.environ.get("CSMS_AMQP_EXCHANGE") or "csms.events",
        help="the CSMS's exchange (default: $CSMS_AMQP_EXCHANGE, else csms.events)",
    )
    parser.add_argument("--queue", default="billing.sessions", help="durable queue (%(default)s)")
    parser.add_argument("--max-seconds", type=float, default=None, help="stop after S seconds")
    parser.add_argument("--max-events", type=int, default=0, help="stop after N bills")
    parser.add_argument(
        "--dedup-window", type=int, default=100_000, help="event ids remembered (%(default)s)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    try:
        return asyncio.run(consume(options))
    except (OSError, TimeoutError, aiormq.exceptions.AMQPError) as exc:
        print(f"billing_consumer: cannot consume: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
