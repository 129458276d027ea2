"""Events from `csms serve` processes: after a SIGKILL, and with two processes on one database."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from csms.adapters.storage import open_storage
from csms.core.events import EventType
from scripts.simulate import SimStation
from tests.integration.broker import ONE_SESSION_EVENTS, EventTap, Received
from tests.integration.polling import poll_until
from tests.integration.test_process import csms_env, free_port

pytestmark = pytest.mark.rabbitmq

UNREACHABLE_BROKER = "amqp://guest:guest@127.0.0.1:1/"


class ServeProcess:
    """A `csms serve` (or `csms relay`) child on free ports; its output goes to a
    file (a pipe could fill up)."""

    def __init__(
        self, database_url: str, cwd: Path, name: str, command: str = "serve", **env: str
    ) -> None:
        self.port = free_port()
        self.http_port = free_port()
        self.log_path = cwd / f"{name}.log"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "csms", command),
                    *("--port", str(self.port), "--http-port", str(self.http_port)),
                ],
                env=csms_env(database_url, CSMS_UNKNOWN_STATIONS="accept", **env),
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    async def get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        async with aiohttp.ClientSession() as session, session.get(url) as r:
            return r.status, await r.text()

    async def wait_live(self) -> None:
        async def live() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"csms exited early: {self.log_path.read_text()}")
            try:
                return (await self.get("/health/live"))[0] == 200
            except aiohttp.ClientError:
                return False

        await poll_until(live, within=30, every=0.05)

    async def metric(self, name: str) -> float:
        _, text = await self.get("/metrics")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name:
                    return float(sample.value)
        raise AssertionError(f"no metric {name}")

    async def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.proc.wait, 15)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def serve(database_url: str, tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    """Start `csms serve` processes on the test's database; killed at teardown."""
    started: list[ServeProcess] = []

    def start(name: str, command: str = "serve", **env: str) -> ServeProcess:
        process = ServeProcess(database_url, tmp_path, name, command, **env)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.kill()


@pytest.fixture
async def tap(amqp_url: str) -> AsyncIterator[EventTap]:
    """A queue on a fresh exchange; request it before ``serve`` (servers stop first)."""
    opened = EventTap(amqp_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def of_type(received: list[Received], kind: str) -> list[Received]:
    return [m for m in received if m.type == kind]


async def outbox_ids(database_url: str) -> set[str]:
    storage = await open_storage(database_url, migrate=False)
    try:
        rows = await storage.outbox_list(10_000, pending_only=False)
    finally:
        await storage.close()
    return {row.event.event_id for row in rows}


async def charge(url: str, station_id: str, meter_start: int) -> None:
    async with SimStation(url, station_id) as cp:
        await cp.boot()
        await cp.status(1, "Available")
        tx = await cp.start(1, "TAG-1", meter_start)
        await cp.meter_values(1, tx, meter_start + 500)
        await cp.stop(tx, meter_start + 1_000)


class TestSigkill:
    @pytest.mark.parametrize("broker", ["unreachable", "reachable"])
    async def test_transaction_ended_is_published_after_a_restart(
        self,
        amqp_url: str,
        tap: EventTap,
        serve: Callable[..., ServeProcess],
        broker: str,
    ) -> None:
        """A server killed right after answering a stop publishes transaction.ended once restarted.

        With the broker unreachable before the kill the event can only have
        waited in the outbox; with it reachable the relay may have been faster.
        """
        first_url = UNREACHABLE_BROKER if broker == "unreachable" else amqp_url
        first = serve("first", CSMS_AMQP_URL=first_url, CSMS_AMQP_EXCHANGE=tap.exchange)
        await first.wait_live()
        async with SimStation(first.ws_url, "CP-KILL") as cp:
            await cp.boot()
            tx = await cp.start(1, "TAG-1", 1_000)
            await cp.stop(tx, 4_500)
            first.kill()
        second = serve("second", CSMS_AMQP_URL=amqp_url, CSMS_AMQP_EXCHANGE=tap.exchange)
        await second.wait_live()
        received = await tap.collect(
            lambda got: bool(of_type(got, EventType.TRANSACTION_ENDED)), within=15
        )
        ended = of_type(received, EventType.TRANSACTION_ENDED)
        assert {m.event_id for m in ended} == {ended[0].event_id}
        assert ended[0].body["data"]["transaction_id"] == str(tx)
        assert ended[0].body["data"]["energy_wh"] == 3_500
        assert await second.terminate() == 0


class TestTwoProcesses:
    async def test_two_servers_on_one_database_publish_each_event_once(
        self,
        database_url: str,
        amqp_url: str,
        tap: EventTap,
        serve: Callable[..., ServeProcess],
    ) -> None:
        """Both relays connect, one leads, each event arrives once; on SIGTERM the other leads."""
        env: dict[str, Any] = {"CSMS_AMQP_URL": amqp_url, "CSMS_AMQP_EXCHANGE": tap.exchange}
        a, b = serve("a", **env), serve("b", **env)
        await asyncio.gather(a.wait_live(), b.wait_live())

        async def one_leader() -> bool:
            leaders = [await p.metric("csms_outbox_relay_leader") for p in (a, b)]
            return sorted(leaders) == [0, 1]

        await poll_until(one_leader, within=10, every=0.05)
        await asyncio.gather(
            *(charge(a.ws_url, f"CP-A{n}", 1_000 * n) for n in range(4)),
            *(charge(b.ws_url, f"CP-B{n}", 1_000 * n) for n in range(4)),
        )
        await tap.collect(
            lambda got: len(of_type(got, EventType.STATION_DISCONNECTED)) == 8, within=15
        )
        expected = await outbox_ids(database_url)
        received = await tap.collect(lambda got: {m.event_id for m in got} >= expected, within=5)
        await tap.collect_for(0.5)  # a duplicate would arrive now
        assert len(expected) == 8 * 7
        assert {m.event_id for m in received} == expected
        assert len(received) == len(expected), "an event was published twice"
        for process in (a, b):
            _, body = await process.get("/health/ready")
            assert '"broker":"up"' in body.replace(" ", "")

        leader, standby = (a, b) if await a.metric("csms_outbox_relay_leader") else (b, a)
        assert await leader.terminate() == 0

        async def standby_leads() -> bool:
            return await standby.metric("csms_outbox_relay_leader") == 1

        await poll_until(standby_leads, within=10, every=0.05)
        await charge(standby.ws_url, "CP-AFTER", 0)
        await tap.collect(
            lambda got: any(
                m.type == EventType.TRANSACTION_ENDED and m.body["station_id"] == "CP-AFTER"
                for m in got
            ),
            within=10,
        )


class TestExternalRelay:
    async def test_csms_relay_publishes_what_a_server_without_a_relay_records(
        self,
        database_url: str,
        amqp_url: str,
        tap: EventTap,
        serve: Callable[..., ServeProcess],
    ) -> None:
        """CSMS_RELAY=external: the server only records; events wait until a
        `csms relay` process runs, then arrive in order, each once."""
        env: dict[str, Any] = {"CSMS_AMQP_URL": amqp_url, "CSMS_AMQP_EXCHANGE": tap.exchange}
        server = serve("server", CSMS_RELAY="external", **env)
        await server.wait_live()
        await charge(server.ws_url, "CP-EXT", 1_000)
        await tap.collect_for(0.5)
        assert tap.received == [], "the server published although CSMS_RELAY=external"
        # The server still reports the backlog: with no relay running, it alarms.

        async def backlog_reported() -> bool:
            return await server.metric("csms_outbox_pending_events") == 7

        await poll_until(backlog_reported, within=8, every=0.2)

        relay = serve("relay", "relay", **env)
        await relay.wait_live()
        expected = await outbox_ids(database_url)
        received = await tap.collect(lambda got: {m.event_id for m in got} >= expected, within=15)
        await tap.collect_for(0.3)
        assert len(received) == len(expected) == 7
        assert [m.type for m in received] == ONE_SESSION_EVENTS
        assert await relay.metric("csms_outbox_relay_leader") == 1
        for process in (server, relay):
            status, body = await process.get("/health/ready")
            assert status == 200
            assert '"broker": "up"' in body or '"broker":"up"' in body
        assert await relay.terminate() == 0
        assert await server.terminate() == 0

    def test_csms_relay_without_a_broker_url_is_a_configuration_error(
        self, database_url: str
    ) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "csms", "relay"],
            env=csms_env(database_url),
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert "csms relay needs CSMS_AMQP_URL" in done.stderr
