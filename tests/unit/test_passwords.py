"""Password delivery through the StationLink port, with a fake link to stations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from csms.adapters.sealing import PasswordSealer
from csms.adapters.storage.memory import MemoryStorage
from csms.core.errors import StationDisconnectedError
from csms.core.ports import LinkOpened, Presence
from csms.services.passwords import PasswordDelivery
from protocols import adapters

PASSWORD = "correct-horse-battery"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakeLink:
    """A StationLink to stations that answer every CALL with ``answer``."""

    def __init__(self, connected: dict[str, str], answer: dict[str, Any] | Exception) -> None:
        self.connected = connected
        self.answer = answer
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def is_connected(self, station_id: str) -> bool:
        return station_id in self.connected

    async def locate(self, station_id: str) -> Presence | None:
        version = self.connected.get(station_id)
        return None if version is None else Presence(station_id, "csms", 1, version, T0)

    async def call(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        answer_timeout: float | None = None,
    ) -> dict[str, Any]:
        self.calls.append((station_id, action, payload))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    async def disconnect(self, station_id: str, reason: str) -> bool:
        return self.connected.pop(station_id, None) is not None


async def delivery_to(link: FakeLink) -> tuple[PasswordDelivery, MemoryStorage]:
    storage = MemoryStorage()
    await storage.register_station("CP-1", at=T0)
    sealer = await PasswordSealer.load(storage)
    return PasswordDelivery(link, adapters(), storage, sealer), storage


class TestPasswordDelivery:
    async def test_a_connected_station_gets_the_password_in_its_protocol(self) -> None:
        """A 1.6 station is sent ChangeConfiguration AuthorizationKey; its answer is returned."""
        link = FakeLink({"CP-1": "1.6"}, {"status": "Accepted"})
        delivery, _ = await delivery_to(link)
        assert await delivery.change("CP-1", PASSWORD) == "Accepted"
        assert link.calls == [
            ("CP-1", "ChangeConfiguration", {"key": "AuthorizationKey", "value": PASSWORD})
        ]

    async def test_an_offline_station_gets_it_when_it_connects_with_its_old_password(
        self,
    ) -> None:
        """The password waits, sealed, in storage (any process may deliver it);
        the station's next connection with its previous one gets it."""
        link = FakeLink({}, {"status": "Accepted"})
        delivery, storage = await delivery_to(link)
        assert await delivery.change("CP-1", PASSWORD) is None
        sealed = await storage.find_pending_password("CP-1")
        assert sealed is not None
        assert PASSWORD not in sealed
        link.connected["CP-1"] = "1.6"
        await delivery.on_connect(LinkOpened("CP-1", "1.6", uses_previous_password=False))
        assert link.calls == []
        # Another process (another PasswordDelivery on the same storage) delivers it.
        elsewhere = PasswordDelivery(link, adapters(), storage, await PasswordSealer.load(storage))
        await elsewhere.on_connect(LinkOpened("CP-1", "1.6", uses_previous_password=True))
        assert link.calls == [
            ("CP-1", "ChangeConfiguration", {"key": "AuthorizationKey", "value": PASSWORD})
        ]

    async def test_a_delivery_is_tried_again_until_the_station_logs_in_with_it(self) -> None:
        """A station that leaves mid-call, or accepts and comes back with its old
        password, gets the password again; once it logs in with the new one
        (the previous password retired) it is not sent any more."""
        link = FakeLink({"CP-1": "1.6"}, StationDisconnectedError("CP-1"))
        delivery, storage = await delivery_to(link)
        with pytest.raises(StationDisconnectedError):
            await delivery.change("CP-1", PASSWORD)
        opened = LinkOpened("CP-1", "1.6", uses_previous_password=True)
        await delivery.on_connect(opened)  # cut short again: logged, still waiting
        link.answer = {"status": "Accepted"}
        await delivery.on_connect(opened)
        assert len(link.calls) == 3
        await storage.retire_previous_password("CP-1")
        assert await storage.find_pending_password("CP-1") is None
        await delivery.on_connect(opened)
        assert len(link.calls) == 3

    async def test_a_sealed_password_opens_only_for_its_station_and_key(self) -> None:
        """Copied to another station's row, or read with another cluster's key,
        the sealed value does not open."""
        storage = MemoryStorage()
        sealer = await PasswordSealer.load(storage)
        sealed = sealer.seal("CP-1", PASSWORD)
        assert sealer.unseal("CP-1", sealed) == PASSWORD
        assert sealer.unseal("CP-2", sealed) is None
        assert (await PasswordSealer.load(MemoryStorage())).unseal("CP-1", sealed) is None
        assert sealer.unseal("CP-1", "v1:not-base64!") is None
        assert sealer.unseal("CP-1", sealed[:-4]) is None
        # A fresh nonce each time: the same password never seals the same twice.
        assert sealer.seal("CP-1", PASSWORD) != sealed
