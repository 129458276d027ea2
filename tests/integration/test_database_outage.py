"""What a database outage looks like in the logs: one warning when it begins, one line
when it ends, the refused CALLs in between at debug. The outage is a TCP proxy between
the CSMS and the shared PostgreSQL that the test cuts and restores."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, MutableMapping, Sequence
from typing import Any

import pytest
import structlog

from csms.telemetry.outage import DATABASE
from scripts.simulate import CallError, SimStation
from tests.integration.conftest import StartCsms, ws_url
from tests.integration.polling import poll_until
from tests.integration.tcp_proxy import TcpProxy


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """SQLite has no server to lose: PostgreSQL only."""
    return postgres_url


@pytest.fixture
async def proxy(postgres_url: str) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy.to(postgres_url)
    await proxy.start()
    yield proxy
    await proxy.close()


def lines(logs: Sequence[MutableMapping[str, Any]], event: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == event]


async def test_a_database_outage_logs_when_it_began_and_when_it_ended(
    start_csms: StartCsms, postgres_url: str, proxy: TcpProxy
) -> None:
    """CALLs refused while the database is cut are logged at debug after one
    database_unavailable warning; the first commit after it logs database_available."""
    DATABASE.recovered()  # process-wide: an earlier test's outage is not this one's
    # No wait: the CALLs are refused at once (test_outage_absorbed.py has the wait).
    running = await start_csms(database_url=proxy.url(postgres_url), database_outage_wait=0)
    with structlog.testing.capture_logs() as logs:
        async with SimStation(ws_url(running), "DB-OUT") as cp:
            await cp.boot()
            await proxy.cut()
            refused = 0
            for _ in range(5):
                with contextlib.suppress(CallError):
                    await cp.call("StatusNotification", status())
                    continue
                refused += 1
            await proxy.restore()

            async def answered() -> bool:
                try:
                    await cp.call("StatusNotification", status())
                except CallError:
                    return False
                return True

            for _ in range(100):
                if await answered():
                    break
                await asyncio.sleep(0.1)
            await poll_until(lambda: bool(lines(logs, "database_available")), within=10)
    assert refused == 5
    [began] = lines(logs, "database_unavailable")
    assert began["log_level"] == "warning"
    failed = lines(logs, "call_failed")
    assert len(failed) >= 5
    assert {e["log_level"] for e in failed} == {"debug"}
    [ended] = lines(logs, "database_available")
    assert ended["log_level"] == "info"
    assert ended["retries"] >= 4


def status() -> dict[str, Any]:
    return {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
