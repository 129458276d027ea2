"""`csms call` through a running server's REST API, and `csms stations show`."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

import pytest

from csms.adapters.storage import open_storage
from csms.core.domain import ConfigurationKey, ConnectorStatus
from csms.core.ports import ConfigurationChanged, ConnectorStatusChanged
from scripts.simulate import SimStation
from tests.integration.conftest import StartCsms, http_url, ws_url
from tests.integration.test_process import csms_env, run_cli

TOKEN = "cli-token-0123456789abcdef"
AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


async def csms_call(
    url: str, *args: str, token: str = TOKEN, stdin: str = ""
) -> tuple[int, str, str]:
    """Run `csms call --url URL ARGS...` without blocking the loop the server runs on."""
    env = csms_env("sqlite:///unused.db", CSMS_API_TOKEN=token)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csms", "call", "--url", url, *args,
        env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


class TestCall:
    @pytest.fixture
    def database_url(self, sqlite_url: str) -> str:
        """`csms call` talks HTTP only: one database kind is enough."""
        return sqlite_url

    async def test_a_call_prints_the_answer_and_errors_exit_non_zero(
        self, start_csms: StartCsms
    ) -> None:
        """200 prints the CALLRESULT; 409, a wrong token, bad JSON exit non-zero with a reason."""
        running = await start_csms(api_token=TOKEN)
        url = http_url(running, "")
        async with SimStation(ws_url(running), "CLI-1") as cp:
            code, out, err = await csms_call(url, "CLI-1", "Reset", '{"type": "Soft"}')
            assert (code, err) == (0, "")
            assert out.split() == ["{", '"status":', '"Accepted"', "}"]
            assert (await cp.wait_for_call("Reset")).payload == {"type": "Soft"}
            code, out, _ = await csms_call(url, "CLI-1", "ClearCache", "-", stdin="{}")
            assert code == 0
        code, out, err = await csms_call(url, "CLI-1", "Reset", '{"type": "Soft"}')
        assert code == 1
        assert "HTTP 409" in err
        assert "station_not_connected" in err
        code, _, err = await csms_call(url, "CLI-1", "Reset", "{}", token="wrong")
        assert (code, "HTTP 401" in err) == (1, True)
        code, _, err = await csms_call(url, "CLI-1", "Reset", "{nope")
        assert (code, "not JSON" in err) == (2, True)
        code, _, err = await csms_call("http://127.0.0.1:9", "CLI-1", "Reset", "{}")
        assert (code, "cannot reach" in err) == (1, True)


class TestStationsShow:
    async def test_show_prints_the_station_and_its_state(self, database_url: str) -> None:
        """Registration, connectors and configuration as the database has them."""
        storage = await open_storage(database_url)
        try:
            await storage.register_station("SHOW-1", at=AT)
            await storage.commit(
                [
                    ConnectorStatusChanged(
                        ConnectorStatus("SHOW-1", 1, 1, "Charging", "NoError", None, None, None, AT)
                    ),
                    ConfigurationChanged(
                        "SHOW-1", (ConfigurationKey("HeartbeatInterval", "60", False),), AT
                    ),
                ]
            )
        finally:
            await storage.close()
        shown = run_cli(database_url, "stations", "show", "SHOW-1")
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert lines[0].split() == ["id", "SHOW-1"]
        assert "registered        2026-05-01T12:00:00.000Z" in lines
        assert ["1", "1", "Charging", "NoError", "2026-05-01T12:00:00.000Z"] in [
            line.split() for line in lines
        ]
        assert ["HeartbeatInterval", "60", "false"] in [line.split() for line in lines]
        missing = run_cli(database_url, "stations", "show", "NOPE")
        assert missing.returncode == 1
        assert "no station 'NOPE'" in missing.stderr
