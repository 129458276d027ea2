"""The `csms` command as an operator runs it: start, configuration errors, CLI, SIGTERM, restart."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from csms.adapters.storage import open_storage
from scripts.simulate import SimStation

CSMS = [sys.executable, "-m", "csms"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def csms_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    env.update({"CSMS_DATABASE_URL": database_url, "CSMS_HOST": "127.0.0.1", **extra})
    return env


def run_cli(
    database_url: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CSMS, *args],
        env=csms_env(database_url),
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        check=False,
    )


class Server:
    """A `csms serve` child process on free ports."""

    def __init__(self, database_url: str, cwd: Path, **env: str) -> None:
        self.port = free_port()
        self.http_port = free_port()
        self.proc = subprocess.Popen(
            [*CSMS, "serve", "--port", str(self.port), "--http-port", str(self.http_port)],
            env=csms_env(database_url, **env),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.wait_live()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as r:
                return int(r.status), bytes(r.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())

    def wait_live(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"csms exited early: {self.proc.stderr.read() if self.proc.stderr else ''}"
                )
            try:
                if self.get("/health/live")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("csms did not become live in 30 s")

    def terminate(self) -> tuple[int, float, str]:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=15)
        return self.proc.returncode, time.monotonic() - started, out


@pytest.fixture
def server_factory(database_url: str, tmp_path: Path) -> Iterator[type[Server] | object]:
    started: list[Server] = []

    def make(**env: str) -> Server:
        server = Server(database_url, tmp_path, **env)
        started.append(server)
        return server

    yield make
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


class TestConfigurationErrors:
    @pytest.mark.parametrize(
        ("env", "needle"),
        [
            ({"CSMS_DATABASE_URL": "mysql://x"}, "CSMS_DATABASE_URL"),
            ({"CSMS_PORT": "abc"}, "CSMS_PORT"),
            ({"CSMS_DATABASE_URL": "postgresql://nobody:pw@127.0.0.1:1/db"}, "CSMS_DATABASE_URL"),
        ],
    )
    def test_bad_configuration_is_one_line_on_stderr(
        self, tmp_path: Path, env: dict[str, str], needle: str
    ) -> None:
        """A bad URL or an unreachable database ends with a non-zero code and no traceback."""
        result = subprocess.run(
            [*CSMS, "serve"],
            env={**csms_env("sqlite:///x.db"), **env},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert needle in lines[0]
        assert "Traceback" not in result.stderr
        assert "pw@" not in result.stderr

    def test_port_in_use_is_a_clear_error(self, tmp_path: Path) -> None:
        """Another process on CSMS_PORT makes `csms serve` fail with one line."""
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            result = subprocess.run(
                [*CSMS, "serve", "--port", str(port), "--http-port", str(free_port())],
                env=csms_env("sqlite:///x.db"),
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        assert result.returncode != 0
        assert result.stderr.strip().splitlines() == [
            f"csms: configuration error: CSMS_PORT={port}: address already in use"
        ]


class TestCli:
    def test_migrate_is_idempotent(self, database_url: str) -> None:
        """A second `csms migrate` has nothing to do."""
        assert run_cli(database_url, "migrate").returncode == 0
        again = run_cli(database_url, "migrate")
        assert again.returncode == 0
        assert "up to date" in again.stdout

    def test_stations_and_tokens_are_added_updated_and_listed(self, database_url: str) -> None:
        """`stations add/list` and `tokens add/list` write and read the registry."""
        assert (
            run_cli(database_url, "stations", "add", "CP-9", "--password", "pw-123456").returncode
            == 0
        )
        assert (
            run_cli(database_url, "stations", "add", "CP-9", "--security-profile", "2").returncode
            == 0
        )
        listed = run_cli(database_url, "stations", "list").stdout
        assert "CP-9" in listed
        assert "pw-123456" not in listed
        row = next(line for line in listed.splitlines() if line.startswith("CP-9"))
        assert row.split()[1:3] == ["2", "yes"]

        assert run_cli(database_url, "tokens", "add", "RFID1").returncode == 0
        assert (
            run_cli(
                database_url,
                "tokens",
                "add",
                "RFID1",
                "--status",
                "Blocked",
                "--expires",
                "2030-01-01T00:00:00Z",
                "--group-id",
                "G",
                "--type",
                "ISO15693",
            ).returncode
            == 0
        )
        tokens = run_cli(database_url, "tokens", "list").stdout
        row = next(line for line in tokens.splitlines() if line.startswith("RFID1"))
        assert row.split() == ["RFID1", "Blocked", "ISO15693", "2030-01-01T00:00:00.000Z", "G"]

    def test_bad_token_status_is_refused(self, database_url: str) -> None:
        """An unknown --status is a usage error."""
        result = run_cli(database_url, "tokens", "add", "X", "--status", "Maybe")
        assert result.returncode == 2


class TestServeLifecycle:
    async def test_sigterm_closes_stations_with_1001_and_exits_0(
        self, server_factory: object
    ) -> None:
        """Stations see 'going away' and the process exits 0 well within 10 s."""
        server = server_factory(CSMS_UNKNOWN_STATIONS="accept")  # type: ignore[operator]
        status, body = server.get("/health/ready")
        assert status == 200
        assert orjson.loads(body)["checks"]["broker"] == "disabled"
        async with SimStation(server.ws_url, "CP-T") as cp:
            await cp.boot()
            code, seconds, out = await asyncio.to_thread(server.terminate)
            assert await cp.wait_closed() == 1001
        assert code == 0
        assert seconds < 10
        for line in out.strip().splitlines():
            orjson.loads(line)  # every stdout line is a JSON object

    async def test_transaction_started_before_restart_stops_after(
        self, server_factory: object, database_url: str
    ) -> None:
        """State survives SIGTERM: the session is stopped with the right energy afterwards."""
        first = server_factory(CSMS_UNKNOWN_STATIONS="accept")  # type: ignore[operator]
        async with SimStation(first.ws_url, "CP-R") as cp:
            await cp.boot()
            tx_id = await cp.start(1, "TAG", 2_000)
            await asyncio.to_thread(first.terminate)
        second = server_factory(CSMS_UNKNOWN_STATIONS="accept")  # type: ignore[operator]
        async with SimStation(second.ws_url, "CP-R") as cp:
            await cp.boot()
            await cp.stop(tx_id, 9_500)
        await asyncio.to_thread(second.terminate)
        storage = await open_storage(database_url, migrate=False)
        try:
            tx = await storage.find_transaction("CP-R", str(tx_id))
        finally:
            await storage.close()
        assert tx is not None
        assert tx.energy_wh == 7_500


class TestLogs:
    async def test_log_lines_are_json_with_context_and_never_a_password(
        self, server_factory: object, database_url: str
    ) -> None:
        """Handshakes with right and wrong passwords log JSON naming the station, not the secret."""
        assert (
            run_cli(
                database_url, "stations", "add", "CP-LOG", "--password", "Right-Horse-9"
            ).returncode
            == 0
        )
        server = server_factory(CSMS_UNKNOWN_STATIONS="reject")  # type: ignore[operator]
        async with SimStation(server.ws_url, "CP-LOG", password="Right-Horse-9") as cp:
            await cp.boot()
        with pytest.raises(Exception, match="401"):
            await SimStation(server.ws_url, "CP-LOG", password="Wrong-Battery-7").connect()
        code, _, out = await asyncio.to_thread(server.terminate)
        assert code == 0
        lines = [orjson.loads(line) for line in out.strip().splitlines()]
        assert "Right-Horse-9" not in out
        assert "Wrong-Battery-7" not in out
        connected = [line for line in lines if line["event"] == "station_connected"]
        assert connected[0]["station_id"] == "CP-LOG"
        assert connected[0]["ocpp_version"] == "1.6"
        refused = [line for line in lines if line["event"] == "handshake_refused"]
        assert refused[0]["reason"] == "wrong_password"
        assert all("timestamp" in line and "level" in line for line in lines)
