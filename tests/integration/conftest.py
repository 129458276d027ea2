"""A real CSMS in the test's event loop, on free ports, and stations to talk to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest

from csms.app import Running, start
from csms.core.settings import Settings
from scripts.simulate import SimStation
from tests.integration.private_postgres import PrivatePostgres

StartCsms = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_csms(database_url: str) -> AsyncIterator[StartCsms]:
    """Start the CSMS (loopback, ports 0) with settings overrides; stopped at teardown."""
    async with AsyncExitStack() as stack:

        async def starter(**overrides: Any) -> Running:
            values: dict[str, Any] = {
                "host": "127.0.0.1",
                "port": 0,
                "http_port": 0,
                "database_url": database_url,
                "unknown_stations": "accept",
                **overrides,
            }
            running = await start(Settings.load(env={}, overrides=values))
            stack.push_async_callback(running.stop)
            return running

        yield starter


@pytest.fixture
async def private_pg() -> AsyncIterator[PrivatePostgres]:
    """A PostgreSQL of the test's own, to restart and stop (private_postgres.py)."""
    server = PrivatePostgres()
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.destroy)


@pytest.fixture
async def csms(start_csms: StartCsms) -> Running:
    """A CSMS that accepts unknown stations."""
    return await start_csms()


def ws_url(running: Running, prefix: str = "/ocpp") -> str:
    return f"ws://127.0.0.1:{running.stations.port}{prefix}"


def http_url(running: Running, path: str) -> str:
    return f"http://127.0.0.1:{running.http.port}{path}"


@pytest.fixture
async def station(csms: Running) -> AsyncIterator[SimStation]:
    """A connected, booted OCPP 1.6 station 'CP-1'."""
    async with SimStation(ws_url(csms), "CP-1") as sim:
        await sim.boot()
        yield sim
