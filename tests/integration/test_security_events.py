"""SecurityEventNotification of both versions is kept and reported as a
`security.event` event with the station's own timestamp."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from csms.app import Running
from scripts.simulate import SimStation
from tests.integration.conftest import ws_url


class TestSecurityEvent:
    @pytest.mark.parametrize(
        ("protocol", "version", "payload"),
        [
            (
                "ocpp1.6",
                "1.6",
                {
                    "type": "InvalidCentralSystemCertificate",
                    "timestamp": "2026-11-26T07:59:00Z",
                    "techInfo": "chain too short",
                },
            ),
            (
                "ocpp2.0.1",
                "2.0.1",
                {
                    "type": "TamperDetectionActivated",
                    "timestamp": "2026-11-26T07:59:00Z",
                    "techInfo": "door open",
                },
            ),
        ],
    )
    async def test_notification_becomes_a_security_event(
        self, csms: Running, protocol: str, version: str, payload: dict[str, Any]
    ) -> None:
        """One `security.event` per notification: type, tech_info, occurred_at = timestamp."""
        station_id = f"SEC-{version}"
        async with SimStation(ws_url(csms), station_id, protocol=protocol) as cp:
            assert await cp.call("SecurityEventNotification", payload) == {}
        events = [
            row.event
            for row in await csms.storage.outbox_list(100, pending_only=False)
            if row.event.type == "security.event" and row.event.station_id == station_id
        ]
        assert len(events) == 1
        [event] = events
        assert event.ocpp_version == version
        assert event.data == {"type": payload["type"], "tech_info": payload["techInfo"]}
        assert event.occurred_at == datetime(2026, 11, 26, 7, 59, tzinfo=UTC)
        [kept] = await csms.storage.list_notifications(station_id, "SecurityEventNotification")
        assert kept.payload == payload
