"""The OCPP path pays nothing for the typed operator edge (docs/adr/0008)."""

from __future__ import annotations

import sys
from collections import Counter
from types import FrameType
from typing import Any

from csms.app import Running
from scripts.simulate import SimStation
from tests.integration.conftest import ws_url


def _pydantic_owner(event: str, frame: FrameType, arg: Any) -> str | None:
    """The pydantic module or pydantic-core type a profiled call enters, if any."""
    if event == "call":
        module = str(frame.f_globals.get("__name__", ""))
        return module if module.startswith("pydantic") else None
    if event == "c_call":
        owner = type(getattr(arg, "__self__", None))
        return owner.__qualname__ if owner.__module__.startswith("pydantic_core") else None
    return None


class TestStationMessages:
    async def test_a_charging_session_never_runs_pydantic(self, csms: Running) -> None:
        """Boot, status, a transaction with meter values: not one pydantic call on the way."""
        entered: Counter[str] = Counter()

        def profile(frame: FrameType, event: str, arg: Any) -> None:
            owner = _pydantic_owner(event, frame, arg)
            if owner is not None:
                entered[owner] += 1

        async with SimStation(ws_url(csms), "HOT-16") as cp:
            sys.setprofile(profile)
            try:
                await cp.boot()
                await cp.status(1, "Available")
                tx = await cp.start(1, "TAG-H", 100)
                await cp.meter_values(1, tx, 600)
                await cp.stop(tx, 1_100)
                await cp.heartbeat()
            finally:
                sys.setprofile(None)
        async with SimStation(ws_url(csms), "HOT-201", protocol="ocpp2.0.1") as cp201:
            sys.setprofile(profile)
            try:
                await cp201.boot201()
                await cp201.status201(1, 1, "Available")
            finally:
                sys.setprofile(None)
        assert entered == Counter()
