"""The fault suite (issue 15, item 5): stations charging while the CSMS's
world breaks, and an account of what they were answered against what the
outbox holds.

Each station sends its own message ids. When an answer does not come (the
CSMS was killed or stopped, the socket closed) it reconnects, to the same or
the restarted CSMS, and resends the same frame with the same message id, as
firmware does. Afterwards, for every station: every acknowledged MeterValues
has exactly one `meter.values` event and every acknowledged
StatusNotification one `station.status_changed`, so that nothing acknowledged
was lost and nothing was booked twice under two event ids; no CALL was
answered with a CALLERROR. The broker's own stop is `TestBrokerOutage` in
test_events.py (serial: it stops the shared RabbitMQ).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from websockets.exceptions import InvalidStatus, WebSocketException

from scripts.simulate import SimStation
from tests.integration.conftest import StartCsms, ws_url
from tests.integration.private_postgres import PrivatePostgres
from tests.integration.test_process import CSMS, csms_env, free_port

pytestmark = [pytest.mark.asyncio, pytest.mark.postgres]

STATIONS = 12


class Charger:
    """One station charging in a loop with its own message ids, resending a
    CALL whose answer it lost, on a new connection."""

    def __init__(self, url: Callable[[], str], station_id: str) -> None:
        self.url = url
        self.station_id = station_id
        self.acknowledged: collections.Counter[str] = collections.Counter()
        self.call_errors: list[Any] = []
        self.resent = 0
        self._ids = itertools.count(1)
        self._cp: SimStation | None = None
        self._energy = 0

    async def _connected(self) -> SimStation:
        while self._cp is None or not self._cp.connected:
            cp = SimStation(self.url(), self.station_id, call_timeout=20, open_timeout=5)
            try:
                await cp.connect()
            except (OSError, InvalidStatus, WebSocketException, TimeoutError):
                await asyncio.sleep(0.2)  # the CSMS is restarting: try again
                continue
            self._cp = cp
        return self._cp

    async def send(self, action: str, payload: dict[str, Any]) -> Any:
        frame = orjson.dumps([2, f"{self.station_id}-{next(self._ids)}", action, payload])
        first = True
        while True:
            cp = await self._connected()
            if not first:
                self.resent += 1
            first = False
            try:
                answer = await cp.send_raw(frame.decode())
            except (WebSocketException, TimeoutError, OSError):
                await cp.close()
                self._cp = None
                continue
            if answer[0] == 4:
                self.call_errors.append(answer)
                return None
            self.acknowledged[action] += 1
            return answer[2]

    async def run(self, stop: asyncio.Event) -> None:
        await self.send(
            "BootNotification", {"chargePointVendor": "Fault", "chargePointModel": "Suite"}
        )
        started = await self.send(
            "StartTransaction",
            {"connectorId": 1, "idTag": "TAG-1", "meterStart": 0, "timestamp": _now()},
        )
        transaction_id = started["transactionId"]
        for k in itertools.count():
            if stop.is_set():
                break
            self._energy += 10
            if k % 2:
                await self.send(
                    "StatusNotification",
                    {"connectorId": 1, "errorCode": "NoError", "status": "Charging",
                     "info": f"round {k}"},
                )  # fmt: skip
            else:
                await self.send(
                    "MeterValues",
                    {
                        "connectorId": 1,
                        "transactionId": transaction_id,
                        "meterValue": [
                            {"timestamp": _now(), "sampledValue": [{"value": str(self._energy)}]}
                        ],
                    },
                )
        await self.send(
            "StopTransaction",
            {"transactionId": transaction_id, "meterStop": self._energy, "timestamp": _now()},
        )
        if self._cp is not None:
            await self._cp.close()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def fleet_through(
    url: Callable[[], str], fault: Callable[[], Any], *, before: float = 1.5, after: float = 2.5
) -> list[Charger]:
    """Run STATIONS chargers, apply ``fault`` after ``before`` s, stop ``after`` s later."""
    chargers = [Charger(url, f"FAULT-{i}") for i in range(STATIONS)]
    stop = asyncio.Event()
    runs = [asyncio.create_task(c.run(stop)) for c in chargers]
    await asyncio.sleep(before)
    outcome = fault()
    if asyncio.iscoroutine(outcome):
        await outcome
    await asyncio.sleep(after)
    stop.set()
    async with asyncio.timeout(60):
        await asyncio.gather(*runs)
    return chargers


async def account(database_url: str, chargers: list[Charger]) -> None:
    """What the stations were answered is what the outbox holds, once each."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT station_id, type, data::text AS data, count(*) AS n,"
            " count(DISTINCT event_id) AS ids FROM outbox GROUP BY station_id, type, data"
        )
    finally:
        await connection.close()
    by_station: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for row in rows:
        assert row["n"] == row["ids"] == 1 or row["type"] in (
            "station.connected",
            "station.disconnected",
            "station.booted",
        ), f"booked twice: {row['station_id']} {row['type']} {row['data']}"
        by_station[row["station_id"]][row["type"]] += row["n"]
    for charger in chargers:
        events = by_station[charger.station_id]
        assert charger.call_errors == [], charger.station_id
        assert events["meter.values"] == charger.acknowledged["MeterValues"], charger.station_id
        assert events["station.status_changed"] == charger.acknowledged["StatusNotification"], (
            charger.station_id
        )
        assert events["transaction.started"] == events["transaction.ended"] == 1
        assert events["station.connected"] == events["station.disconnected"] >= 1


class TestDatabaseFaults:
    @pytest.fixture
    def database_url(self, private_pg: PrivatePostgres) -> str:
        return private_pg.url

    @pytest.mark.parametrize("fault", ["restart", "stop-3s"])
    async def test_a_database_restart_or_short_stop_costs_nothing_but_latency(
        self, start_csms: StartCsms, private_pg: PrivatePostgres, fault: str
    ) -> None:
        """PostgreSQL restarted, or stopped 3 s, under the fleet: no CALLERROR,
        every acknowledged CALL booked once."""
        running = await start_csms(database_outage_wait=15)

        async def break_it() -> None:
            if fault == "restart":
                await asyncio.to_thread(private_pg.restart)
            else:
                await asyncio.to_thread(private_pg.stop)
                await asyncio.sleep(3)
                await asyncio.to_thread(private_pg.start)

        chargers = await fleet_through(lambda: ws_url(running), break_it)
        await running.stop()  # flush: every acknowledged unit is in the outbox
        await account(private_pg.url, chargers)


class TestProcessFaults:
    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url

    @pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
    async def test_a_killed_or_stopped_csms_loses_nothing_and_books_resends_once(
        self, postgres_url: str, tmp_path: Path, how: signal.Signals
    ) -> None:
        """`csms serve` killed (or stopped) under the fleet and started again on
        the same port and node id: the stations resend what they lost, with
        the same message ids; nothing acknowledged is lost, nothing is booked
        twice, no CALLERROR."""
        env = {
            "CSMS_UNKNOWN_STATIONS": "accept",
            "CSMS_NODE_ID": "csms-fault",
            "CSMS_SHUTDOWN_SECONDS": "2",
        }
        port, http_port = free_port(), free_port()
        start = functools.partial(Serve, postgres_url, tmp_path, port, http_port, **env)
        current = [await asyncio.to_thread(start)]

        async def kill_and_restart() -> None:
            current[0].proc.send_signal(how)
            await asyncio.to_thread(current[0].proc.wait)
            current[0] = await asyncio.to_thread(start)

        try:
            chargers = await fleet_through(lambda: current[0].ws_url, kill_and_restart)
            current[0].proc.send_signal(signal.SIGTERM)  # flush what is pending
            await asyncio.to_thread(current[0].proc.wait, 15)
        finally:
            current[0].end()
        assert sum(c.resent for c in chargers) > 0  # the fault hit CALLs in flight
        await account(postgres_url, chargers)


class Serve:
    """`csms serve` on given ports, its output discarded (a fleet's logs would
    fill an unread pipe and stall it)."""

    def __init__(self, database_url: str, cwd: Path, port: int, http_port: int, **env: str) -> None:
        self.port, self.http_port = port, http_port
        self.proc = subprocess.Popen(
            [*CSMS, "serve", "--port", str(port), "--http-port", str(http_port)],
            env=csms_env(database_url, **env),
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "csms exited early"
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{http_port}/health/ready", timeout=2
                ) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("csms did not become ready in 30 s")

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
