"""scripts/billing_consumer.py: one bill line per session, duplicates skipped."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import pytest

from csms.adapters.amqp.publisher import properties
from csms.core.events import EventType
from scripts.billing_consumer import RecentIds, bill_line
from scripts.simulate import SimStation
from tests.integration.broker import unique_name
from tests.integration.conftest import StartCsms, ws_url

pytestmark = pytest.mark.rabbitmq

CONSUMER = Path(__file__).parents[2] / "scripts" / "billing_consumer.py"


class Names:
    def __init__(self) -> None:
        self.exchange = unique_name()
        self.queue = unique_name()


@pytest.fixture
async def names(amqp_url: str) -> AsyncIterator[Names]:
    """Fresh exchange and queue names; both deleted afterwards."""
    chosen = Names()
    yield chosen
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(chosen.queue)
        await channel.exchange_delete(chosen.exchange)


async def bill(amqp_url: str, names: Names, *extra: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CONSUMER),
        *("--amqp-url", amqp_url, "--exchange", names.exchange, "--queue", names.queue),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


class TestBillingConsumer:
    async def test_bills_each_session_once_from_its_own_queue(
        self, amqp_url: str, names: Names, start_csms: StartCsms
    ) -> None:
        """Two sessions and a redelivered event make exactly two bill lines with the right kWh."""
        # The consumer's first run only declares its queue; then the sessions happen.
        code, out, _ = await bill(amqp_url, names, "--max-seconds", "0.5")
        assert (code, out) == (0, "")
        running = await start_csms(amqp_url=amqp_url, amqp_exchange=names.exchange)
        async with SimStation(ws_url(running), "CP-BILL") as cp:
            await cp.boot()
            first = await cp.start(1, "TAG-A", 1_000, "2024-05-01T10:00:00Z")
            await cp.stop(first, 13_500, timestamp="2024-05-01T11:30:05Z")
            second = await cp.start(1, "TAG-B", 13_500, "2024-05-01T12:00:00Z")
            await cp.stop(second, 14_000, timestamp="2024-05-01T12:10:00Z")
        ended = [
            row.event
            for row in reversed(await running.storage.outbox_list(100, pending_only=False))
            if row.event.type == EventType.TRANSACTION_ENDED
        ]
        await running.stop()
        # What a redelivery looks like: the same event published again.
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(names.exchange)
            duplicate = aio_pika.Message(
                orjson.dumps(ended[0].body()), message_id=properties(ended[0]).message_id
            )
            await exchange.publish(duplicate, EventType.TRANSACTION_ENDED)

        code, out, err = await bill(amqp_url, names, "--max-seconds", "3")
        assert code == 0, err
        lines = out.splitlines()
        assert [line.split()[:5] for line in lines] == [
            ["BILL", "station=CP-BILL", "token=TAG-A", "kWh=12.500", "duration=1h30m05s"],
            ["BILL", "station=CP-BILL", "token=TAG-B", "kWh=0.500", "duration=0h10m00s"],
        ]
        assert "skipped 1 duplicates" in err

    async def test_max_events_ends_the_run(self, amqp_url: str, names: Names) -> None:
        """--max-events stops after that many bills, leaving the rest queued."""
        body: dict[str, Any] = {
            "event_id": "00000000-0000-4000-8000-000000000001",
            "type": "transaction.ended",
            "schema_version": 1,
            "station_id": "CP-X",
            "ocpp_version": "2.0.1",
            "occurred_at": "2024-05-01T10:00:00.000Z",
            "recorded_at": "2024-05-01T10:00:00.000Z",
            "data": {
                "transaction_id": "t-1",
                "id_token": None,
                "energy_wh": 2_000,
                "started_at": "2024-05-01T09:00:00.000Z",
                "ended_at": "2024-05-01T10:00:00.000Z",
                "anomalies": ["meter_stop_missing"],
            },
        }
        await bill(amqp_url, names, "--max-seconds", "0.5")  # declares the queue
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(names.exchange)
            for n in range(3):
                copy = {**body, "event_id": body["event_id"][:-1] + str(n)}
                await exchange.publish(aio_pika.Message(orjson.dumps(copy)), "transaction.ended")
        code, out, _ = await bill(amqp_url, names, "--max-events", "2", "--max-seconds", "20")
        assert code == 0
        assert len(out.splitlines()) == 2
        assert out.splitlines()[0].endswith("check=meter_stop_missing")
        assert "token=-" in out


class TestPieces:
    def test_recent_ids_forget_the_oldest_beyond_the_window(self) -> None:
        """The window holds the last N ids seen first; an evicted one counts as new again."""
        recent = RecentIds(2)
        assert [recent.seen(i) for i in ("a", "b", "a", "c", "a", "b")] == [
            False,
            False,
            True,
            False,
            False,
            False,
        ]

    def test_bill_line_shows_station_token_kwh_and_duration(self) -> None:
        """A clean session's bill has no check= field."""
        body: dict[str, Any] = {
            "event_id": "e",
            "station_id": "CP-1",
            "data": {
                "transaction_id": "7",
                "id_token": "T",
                "energy_wh": 1234.0,
                "started_at": "2024-05-01T10:00:00.000Z",
                "ended_at": "2024-05-01T10:00:59.600Z",
                "anomalies": [],
            },
        }
        assert bill_line(body) == (
            "BILL station=CP-1 token=T kWh=1.234 duration=0h01m00s transaction=7 event=e"
        )
