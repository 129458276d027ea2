"""BootNotification is answered by the station's registration: Accepted, Pending or Rejected."""

from __future__ import annotations

import pytest

from csms.app import Running
from scripts.simulate import SimStation
from tests.integration.conftest import ws_url


class TestBootStatus:
    @pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
    async def test_registration_decides_the_boot_answer(self, csms: Running, protocol: str) -> None:
        """Pending and Rejected get a jittered retry interval; Accepted the heartbeat one."""
        async with SimStation(ws_url(csms), "BOOT-1", protocol=protocol) as cp:
            boot = cp.boot if protocol == "ocpp1.6" else cp.boot201
            assert (await boot())["status"] == "Accepted"
            for status in ("Pending", "Rejected"):
                assert await csms.storage.set_boot_status("BOOT-1", status)
                answer = await boot()
                assert answer["status"] == status
                assert 48 <= answer["interval"] <= 72
            await csms.storage.set_boot_status("BOOT-1", "Accepted")
            answer = await boot()
            assert (answer["status"], answer["interval"]) == ("Accepted", 300)

    async def test_unknown_station_cannot_be_set(self, csms: Running) -> None:
        """Setting the boot answer of a station nobody registered says so."""
        assert not await csms.storage.set_boot_status("NOBODY", "Pending")
