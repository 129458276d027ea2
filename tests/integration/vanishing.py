"""Stations that receive the CSMS's CALL and go away instead of answering it."""

from __future__ import annotations

import asyncio
from typing import Any

from scripts.simulate import SimStation

# How a station can vanish with a CALL in hand.
WAYS = ("clean close", "tcp abort", "replaced")


class SilentStation(SimStation):
    """A simulated station that never answers the CSMS's CALLs."""

    async def on_call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        never: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        return await never  # cancelled by close()


async def vanish(station: SilentStation, way: str) -> SimStation | None:
    """Make ``station`` leave ``way``; the station that replaced it, if any
    (connected: the caller closes it)."""
    if way == "clean close":
        await station.close()
        return None
    if way == "tcp abort":
        station.ws.transport.abort()
        await station.wait_closed()
        return None
    assert way == "replaced"
    newer = SimStation(station.url.rsplit("/", 1)[0], station.station_id, protocol=station.protocol)
    await newer.connect()
    await station.wait_closed()  # the CSMS closes the older connection
    return newer
