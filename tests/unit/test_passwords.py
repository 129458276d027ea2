"""Password delivery through the StationLink port, with a fake link to stations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

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


class TestPasswordDelivery:
    async def test_a_connected_station_gets_the_password_in_its_protocol(self) -> None:
        """A 1.6 station is sent ChangeConfiguration AuthorizationKey; its answer is returned."""
        link = FakeLink({"CP-1": "1.6"}, {"status": "Accepted"})
        delivery = PasswordDelivery(link, adapters())
        assert await delivery.change("CP-1", PASSWORD) == "Accepted"
        assert link.calls == [
            ("CP-1", "ChangeConfiguration", {"key": "AuthorizationKey", "value": PASSWORD})
        ]

    async def test_an_offline_station_gets_it_when_it_connects_with_its_old_password(
        self,
    ) -> None:
        """The password waits; the station's next connection with its previous one gets it."""
        link = FakeLink({}, {"status": "Accepted"})
        delivery = PasswordDelivery(link, adapters())
        assert await delivery.change("CP-1", PASSWORD) is None
        link.connected["CP-1"] = "1.6"
        await delivery.on_connect(LinkOpened("CP-1", "1.6", uses_previous_password=False))
        assert link.calls == []
        await delivery.on_connect(LinkOpened("CP-1", "1.6", uses_previous_password=True))
        assert len(link.calls) == 1

    async def test_a_delivery_cut_short_is_tried_again_until_accepted(self) -> None:
        """A station that leaves mid-call gets the password on its next connection,
        and no more once it accepted it."""
        link = FakeLink({"CP-1": "1.6"}, StationDisconnectedError("CP-1"))
        delivery = PasswordDelivery(link, adapters())
        with pytest.raises(StationDisconnectedError):
            await delivery.change("CP-1", PASSWORD)
        opened = LinkOpened("CP-1", "1.6", uses_previous_password=True)
        await delivery.on_connect(opened)  # cut short again: logged, still waiting
        link.answer = {"status": "Accepted"}
        await delivery.on_connect(opened)
        await delivery.on_connect(opened)
        assert len(link.calls) == 3
