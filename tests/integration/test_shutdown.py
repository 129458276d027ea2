"""A graceful shutdown answers every CALL whose work it committed, then closes with 1001."""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from csms.adapters.storage import open_storage
from tests.integration.conftest import StartCsms, ws_url

STATIONS = 40


async def charge_until_closed(ws: ClientConnection, station: int, answered: set[int]) -> int:
    """Send MeterValues as fast as answered, each with its own register value; return the
    close code. A value is in ``answered`` once its CALLRESULT arrived."""
    await ws.send(
        orjson.dumps(
            [2, "boot", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]
        ).decode()
    )
    await ws.recv()
    n = 0
    with contextlib.suppress(ConnectionClosed):
        while True:
            n += 1
            value = station * 1_000_000 + n
            meter = [{"timestamp": "2026-12-03T09:00:00Z", "sampledValue": [{"value": str(value)}]}]
            await ws.send(
                orjson.dumps(
                    [2, f"m{n}", "MeterValues", {"connectorId": 1, "meterValue": meter}]
                ).decode()
            )
            reply = orjson.loads(await ws.recv())
            assert reply[:2] == [3, f"m{n}"]
            answered.add(value)
    await ws.wait_closed()
    assert ws.close_code is not None
    return ws.close_code


class TestGracefulShutdown:
    async def test_every_booked_call_was_answered_before_the_close(
        self, start_csms: StartCsms, database_url: str
    ) -> None:
        """Under load, stop() books nothing it did not answer: a station never has to resend
        work that is durable, and every socket closes with 1001."""
        running = await start_csms()
        answered: set[int] = set()
        sockets = [
            await connect(f"{ws_url(running)}/DRAIN-{i}", subprotocols=[Subprotocol("ocpp1.6")])
            for i in range(STATIONS)
        ]
        load = [
            asyncio.create_task(charge_until_closed(ws, i, answered))
            for i, ws in enumerate(sockets)
        ]
        await asyncio.sleep(1.0)
        assert answered, "the stations were charging"
        await running.stop()
        codes = await asyncio.gather(*load)
        assert set(codes) == {1001}
        storage = await open_storage(database_url)
        try:
            rows = await storage.outbox_list(1_000_000, pending_only=False)
        finally:
            await storage.close()
        booked = {
            int(sample["value"])
            for row in rows
            if row.event.type == "meter.values"
            for sample in row.event.data["samples"]
        }
        assert booked == answered
