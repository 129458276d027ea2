"""One rule per value, whichever edge is asked: the REST API, the CLI and the
AMQP command queue give the same bad password, expiry or date the same answer."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from csms.app import Running
from scripts.simulate import SimStation
from tests.integration.command_queue_client import Requester, command_requester, csms_consuming
from tests.integration.conftest import StartCsms, http_url, ws_url
from tests.integration.test_process import csms_env

pytestmark = pytest.mark.rabbitmq

TOO_LONG = "p" * 41  # one past the rule (1-40 characters)
LONGEST = "p" * 40
# The README's example, read from the README itself.
README_PASSWORD = re.search(
    r"--password '([^']+)'", (Path(__file__).parents[2] / "README.md").read_text()
).group(1)  # type: ignore[union-attr]
DAYS_31, DAYS_30 = 31 * 86400, 30 * 86400


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The rules live above the storage: one database kind is enough."""
    return sqlite_url


@pytest.fixture
async def requester(amqp_url: str) -> AsyncIterator[Requester]:
    async with command_requester(amqp_url) as client:
        yield client


@pytest.fixture
async def running(
    start_csms: StartCsms, amqp_url: str, requester: Requester
) -> AsyncIterator[Running]:
    async with csms_consuming(start_csms, amqp_url, requester) as csms:
        yield csms


@pytest.fixture
async def rest(running: Running) -> AsyncIterator[Rest]:
    async with aiohttp.ClientSession() as session:
        yield Rest(running, session)


class Rest:
    def __init__(self, running: Running, session: aiohttp.ClientSession) -> None:
        self.running = running
        self.session = session

    async def __call__(
        self, method: str, path: str, body: Any = None, **params: str
    ) -> tuple[int, Any]:
        async with self.session.request(
            method, http_url(self.running, path), json=body, params=params or None
        ) as r:
            return r.status, await r.json()


async def cli(running: Running, *args: str) -> tuple[int, str]:
    """Run `csms ARGS...` on the server's database; (exit code, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csms", *args,
        env=csms_env(running.settings.database_url), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, err.decode()


def authorization_key(value: str) -> dict[str, str]:
    return {"key": "AuthorizationKey", "value": value}


class TestPassword:
    async def test_an_over_long_password_is_refused_by_every_edge(
        self, rest: Rest, requester: Requester, running: Running
    ) -> None:
        """41 characters: 422 over REST and AMQP (registration, rotation, raw call), CLI exit 2."""
        status, registered = await rest("PUT", "/api/v1/stations/PW-1", {"password": TOO_LONG})
        assert (status, registered["error"]) == (422, "invalid_value")
        status, rotated = await rest(
            "POST", "/api/v1/stations/PW-1/password", {"password": TOO_LONG}
        )
        assert (status, rotated["error"]) == (422, "invalid_body")
        assert rotated["message"] == registered["message"]
        code, err = await cli(running, "stations", "add", "PW-1", "--password", TOO_LONG)
        assert code == 2
        assert registered["message"] in err
        async with SimStation(ws_url(running), "PW-1") as cp:
            await cp.boot()
            path = "/api/v1/stations/PW-1/ocpp/ChangeConfiguration"
            status, raw = await rest("POST", path, authorization_key(TOO_LONG))
            assert (status, raw["error"]) == (422, "invalid_password")
            reply = await requester.send(
                {"station_id": "PW-1", "action": "ChangeConfiguration",
                 "payload": authorization_key(TOO_LONG)}
            )  # fmt: skip
            assert (reply["status"], reply["body"]) == (422, raw)
            assert cp.received_calls == []

    async def test_the_readme_password_and_the_longest_are_taken_everywhere(
        self, rest: Rest, requester: Requester, running: Running
    ) -> None:
        """The README's example and a 40-character password pass every edge."""
        code, err = await cli(running, "stations", "add", "PW-2", "--password", README_PASSWORD)
        assert code == 0, err
        status, _ = await rest("PUT", "/api/v1/stations/PW-3", {"password": README_PASSWORD})
        assert status == 201
        status, _ = await rest("POST", "/api/v1/stations/PW-3/password", {"password": LONGEST})
        assert status == 202
        async with SimStation(ws_url(running), "PW-2", password=README_PASSWORD) as cp:
            await cp.boot()
            reply = await requester.send(
                {"station_id": "PW-2", "action": "ChangeConfiguration",
                 "payload": authorization_key(LONGEST)}
            )  # fmt: skip
            assert reply["status"] == 200, reply


class TestQueueExpiry:
    async def test_more_than_30_days_is_refused_by_every_edge(
        self, rest: Rest, requester: Requester, running: Running
    ) -> None:
        """31 days: 422 invalid_queue in a body or message, 400 in a query, exit 2 in the CLI."""
        async with SimStation(ws_url(running), "Q-30") as cp:
            await cp.boot()  # known protocol, now offline: commands to it can queue
        path = "/api/v1/stations/Q-30/commands/reset"
        for window in ({"expires_in": DAYS_31}, {"expires_at": "2999-01-01T00:00:00Z"}):
            status, body = await rest("POST", path, {"type": "soft", "queue": window})
            assert (status, body["error"]) == (422, "invalid_queue"), window
            reply = await requester.send(
                {"station_id": "Q-30", "command": "reset", "type": "soft", "queue": window}
            )
            assert (reply["status"], reply["body"]["error"]) == (422, "invalid_queue"), window
        status, body = await rest(
            "POST", path, {"type": "soft"}, queue="true", expires_in=str(DAYS_31)
        )
        assert (status, body["error"]) == (400, "invalid_query")
        url = http_url(running, "")
        code, err = await cli(
            running, "call", "--url", url, "--queue", "--expires-in", str(DAYS_31), "Q-30",
            "Reset", '{"type": "Soft"}',
        )  # fmt: skip
        assert code == 2
        assert "expires_in" in err
        status, body = await rest("POST", path, {"type": "soft", "queue": {"expires_in": DAYS_30}})
        assert (status, body["status"]) == (202, "queued")
        reply = await requester.send(
            {"station_id": "Q-30", "command": "reset", "type": "soft",
             "queue": {"expires_in": DAYS_30}}
        )  # fmt: skip
        assert (reply["status"], reply["body"]["status"]) == (202, "queued")


class TestDates:
    async def test_a_bad_date_is_refused_alike(
        self, rest: Rest, requester: Requester, running: Running
    ) -> None:
        """In a query 400 (like a bad boolean), in a body or message 422, in the CLI exit 2."""
        for params in ({"started_after": "soon"}, {"active": "maybe"}, {"limit": "many"}):
            status, body = await rest("GET", "/api/v1/transactions", **params)
            assert (status, body["error"]) == (400, "invalid_query"), params
        status, body = await rest(
            "PUT", "/api/v1/id-tokens/DATE-1", {"status": "Accepted", "expires_at": "soon"}
        )
        assert (status, body["error"]) == (422, "invalid_value")
        code, err = await cli(running, "tokens", "add", "DATE-1", "--expires", "soon")
        assert code == 2
        assert "ISO 8601" in err
        reply = await requester.send(
            {"station_id": "DATE-1", "command": "reset", "type": "soft",
             "queue": {"expires_at": "soon"}}
        )  # fmt: skip
        assert (reply["status"], reply["body"]["error"]) == (422, "invalid_queue")
        status, body = await rest(
            "POST", "/api/v1/stations/DATE-1/commands/reset",
            {"type": "soft", "queue": {"expires_at": "soon"}},
        )  # fmt: skip
        assert (status, body["error"]) == (422, "invalid_queue")
