"""A database restart or a short stop costs stations latency, not errors
(issue 15, item 1). The tests run a PostgreSQL of their own
(tests/integration/private_postgres.py) and restart or stop it under load.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

import pytest

from csms.telemetry.outage import DATABASE
from scripts.simulate import CallError, SimStation
from tests.integration.conftest import StartCsms, ws_url
from tests.integration.private_postgres import PrivatePostgres

pytestmark = [pytest.mark.asyncio, pytest.mark.postgres]


@pytest.fixture
def database_url(private_pg: PrivatePostgres) -> str:
    return private_pg.url


def status(state: str = "Available") -> dict[str, Any]:
    return {"connectorId": 1, "errorCode": "NoError", "status": state}


class Load:
    """Stations sending StatusNotification and Authorize in a loop, counting answers."""

    def __init__(self, url: str, stations: int) -> None:
        self.url = url
        self.stations = stations
        self.answered = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.slowest = 0.0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        ready = [asyncio.Event() for _ in range(self.stations)]
        self._tasks = [asyncio.create_task(self._run(i, ready[i])) for i in range(self.stations)]
        await asyncio.gather(*(e.wait() for e in ready))

    async def _run(self, i: int, ready: asyncio.Event) -> None:
        async with SimStation(self.url, f"LOAD-{i}", call_timeout=30) as cp:
            await cp.boot()
            ready.set()
            k = 0
            while not self._stop.is_set():
                k += 1
                started = time.monotonic()
                try:
                    if k % 3:
                        await cp.call("StatusNotification", status())
                    else:
                        await cp.call("Authorize", {"idTag": "TAG-1"})
                except CallError as exc:
                    self.errors[exc.code] += 1
                else:
                    self.answered += 1
                self.slowest = max(self.slowest, time.monotonic() - started)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


class TestOutageAbsorbed:
    async def test_a_restart_under_load_answers_every_call(
        self, start_csms: StartCsms, private_pg: PrivatePostgres
    ) -> None:
        """PostgreSQL restarted (fast: its sessions terminated) under 30
        stations' StatusNotification and Authorize: every CALL is answered,
        none with a CALLERROR, the slowest within the outage wait."""
        DATABASE.recovered()
        running = await start_csms(database_outage_wait=15)
        load = Load(ws_url(running), 30)
        await load.start()
        await asyncio.sleep(1)
        before = load.answered
        await asyncio.to_thread(private_pg.restart)
        await asyncio.sleep(2)
        await load.stop()
        assert load.errors == {}
        assert load.answered > before
        assert load.slowest < 15

    async def test_a_short_stop_makes_calls_wait_and_a_long_one_fails_them(
        self, start_csms: StartCsms, private_pg: PrivatePostgres
    ) -> None:
        """Stopped for 2 s with a 5 s wait: the CALL sent meanwhile is answered
        once the database is back. Stopped for longer than the wait: the CALL
        gets InternalError after the wait, not at once."""
        DATABASE.recovered()
        running = await start_csms(database_outage_wait=5)
        async with SimStation(ws_url(running), "WAITER", call_timeout=30) as cp:
            await cp.boot()
            await asyncio.to_thread(private_pg.stop)
            started = time.monotonic()
            pending = asyncio.create_task(cp.call("StatusNotification", status("Charging")))
            await asyncio.sleep(2)
            assert not pending.done()
            await asyncio.to_thread(private_pg.start)
            await pending
            assert time.monotonic() - started >= 2
            stored = await running.storage.list_connectors("WAITER")
            assert [c.status for c in stored] == ["Charging"]
            await asyncio.to_thread(private_pg.stop)
            started = time.monotonic()
            with pytest.raises(CallError) as refused:
                await cp.call("StatusNotification", status("Faulted"))
            waited = time.monotonic() - started
            assert refused.value.code == "InternalError"
            assert 4 <= waited < 30
            await asyncio.to_thread(private_pg.start)

    async def test_an_outage_longer_than_the_lease_keeps_the_stations_connected(
        self, start_csms: StartCsms, private_pg: PrivatePostgres
    ) -> None:
        """Stopped 12 s (longer than the 5 s lease renewals can miss without a
        lapse, shorter than the 15 s wait): the lease lapses, but nobody took
        the connection for dead, so the station keeps it and its CALL is answered."""
        DATABASE.recovered()
        running = await start_csms(database_outage_wait=15)
        async with SimStation(ws_url(running), "STAYS", call_timeout=30) as cp:
            await cp.boot()
            await asyncio.to_thread(private_pg.stop)
            pending = asyncio.create_task(cp.call("StatusNotification", status("Charging")))
            await asyncio.sleep(12)
            await asyncio.to_thread(private_pg.start)
            await pending
            await asyncio.sleep(6)  # a lease round after the database came back
            assert cp.connected
            await cp.heartbeat()
