"""SIGTERM drains `csms serve` for a rolling deploy: unready at once, stations closed in waves."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tests.integration.test_process import CSMS, Server, csms_env


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    """`csms serve` children started by the test; killed if still running at the end."""
    started: list[Server] = []
    yield started
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.communicate()


class Fleet:
    """``count`` stations connected to ``server``, each noting when and how it was closed."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.sockets: list[ClientConnection] = []
        self.closes: list[tuple[float, int | None]] = []
        self._watchers: list[asyncio.Task[None]] = []

    async def connect(self, count: int) -> None:
        for i in range(count):
            ws = await connect(
                f"{self.server.ws_url}/DRAIN-{i}", subprotocols=[Subprotocol("ocpp1.6")]
            )
            # An answer means the CSMS has the station registered.
            await ws.send(orjson.dumps([2, "hb", "Heartbeat", {}]).decode())
            assert orjson.loads(await ws.recv())[:2] == [3, "hb"]
            self.sockets.append(ws)
            self._watchers.append(asyncio.create_task(self._watch(ws)))

    async def _watch(self, ws: ClientConnection) -> None:
        await ws.wait_closed()
        self.closes.append((time.monotonic(), ws.close_code))

    @property
    def still_open(self) -> int:
        return len(self.sockets) - len(self.closes)

    async def all_closed(self, within: float) -> None:
        await asyncio.wait_for(asyncio.gather(*self._watchers), within)


def start(servers: list[Server], database_url: str, tmp_path: Path, **env: str) -> Server:
    server = Server(database_url, tmp_path, CSMS_UNKNOWN_STATIONS="accept", **env)
    servers.append(server)
    return server


async def get(server: Server, path: str) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{server.http_port}{path}"
    async with aiohttp.ClientSession() as session, session.get(url) as r:
        body = await r.read()
        return r.status, orjson.loads(body) if path.startswith("/health") else body


def sigterm(server: Server) -> asyncio.Task[tuple[str, str]]:
    """Send SIGTERM and read the child's output until it exits (a full pipe would block it)."""
    server.proc.send_signal(signal.SIGTERM)
    return asyncio.create_task(asyncio.to_thread(server.proc.communicate, timeout=30))


def waves(times: list[float], gap: float = 0.15) -> list[int]:
    """The sizes of the groups of close times that lie within ``gap`` s of each other."""
    sizes: list[int] = []
    previous: float | None = None
    for t in sorted(times):
        if previous is None or t - previous > gap:
            sizes.append(0)
        sizes[-1] += 1
        previous = t
    return sizes


class TestDrain:
    async def test_readiness_is_503_while_stations_are_still_connected(
        self, servers: list[Server], postgres_url: str, tmp_path: Path
    ) -> None:
        """Right after SIGTERM /health/ready says unready (draining), stations are still
        connected, and /metrics is still scraped."""
        server = start(servers, postgres_url, tmp_path, CSMS_SHUTDOWN_SECONDS="2")
        fleet = Fleet(server)
        await fleet.connect(20)
        assert (await get(server, "/health/ready"))[1]["checks"]["draining"] is False
        exited = sigterm(server)
        deadline = time.monotonic() + 1.0
        while (ready := await get(server, "/health/ready"))[0] == 200:
            assert time.monotonic() < deadline, "still ready 1 s after SIGTERM"
        open_when_unready = fleet.still_open
        status, body = ready
        assert status == 503
        assert body["status"] == "unready"
        assert body["checks"]["database"] == "up"
        assert body["checks"]["draining"] is True
        assert body["checks"]["broker"] == "disabled"
        assert open_when_unready > 0
        metrics_status, text = await get(server, "/metrics")
        assert metrics_status == 200
        assert b"csms_stations_connected" in text
        await fleet.all_closed(within=5)
        await exited
        assert server.proc.returncode == 0

    async def test_stations_are_closed_with_1001_in_waves_over_the_window(
        self, servers: list[Server], postgres_url: str, tmp_path: Path
    ) -> None:
        """60 stations under CSMS_SHUTDOWN_SECONDS=4 are closed in several waves at least
        1.5 s apart from first to last, none larger than a third, and the process exits 0
        within the window."""
        server = start(servers, postgres_url, tmp_path, CSMS_SHUTDOWN_SECONDS="4")
        fleet = Fleet(server)
        await fleet.connect(60)
        signalled = time.monotonic()
        exited = sigterm(server)
        await fleet.all_closed(within=6)
        out, _ = await exited
        took = time.monotonic() - signalled
        assert server.proc.returncode == 0
        assert took < 4 + 1.0
        assert {code for _, code in fleet.closes} == {1001}
        times = [t for t, _ in fleet.closes]
        assert max(times) - min(times) >= 1.5
        sizes = waves(times)
        assert len(sizes) >= 3, sizes
        assert max(sizes) <= 20, sizes
        lines = [orjson.loads(line) for line in out.splitlines()]
        draining = next(line for line in lines if line["event"] == "draining")
        assert (draining["stations"], draining["seconds"]) == (60, 2.0)
        drained = next(line for line in lines if line["event"] == "drained")
        assert (drained["stations"], drained["aborted"]) == (60, 0)

    async def test_sigterm_with_no_stations_does_not_wait_the_window(
        self, servers: list[Server], sqlite_url: str, tmp_path: Path
    ) -> None:
        """With nothing to drain, the process exits 0 well before the default 10 s."""
        server = start(servers, sqlite_url, tmp_path)
        signalled = time.monotonic()
        await sigterm(server)
        assert server.proc.returncode == 0
        assert time.monotonic() - signalled < 2.5


class TestShutdownSecondsSetting:
    @pytest.mark.parametrize("value", ["0", "-1", "soon", "nan"])
    def test_a_bad_value_is_refused_at_start(self, tmp_path: Path, value: str) -> None:
        """CSMS_SHUTDOWN_SECONDS that is not a positive number ends `csms serve` with the
        configuration exit code (2) and one line naming it."""
        result = subprocess.run(
            [*CSMS, "serve"],
            env=csms_env("sqlite:///x.db", CSMS_SHUTDOWN_SECONDS=value),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("csms: configuration error: CSMS_SHUTDOWN_SECONDS=")
        assert not (tmp_path / "x.db").exists()
