"""StationService on the in-memory storage: admission, boot and liveness as stored."""

from __future__ import annotations

from csms.adapters.storage.memory import MemoryStorage
from csms.core.events import EventType
from csms.services.stations import BootInfo, Credentials, Refusal
from tests.unit.services_fixture import T0, FakeClock, build_services

BOOT = BootInfo("ACME", "Model-X", "SN-1", "1.2.3", "PowerUp", {"reason": "PowerUp"})


class TestAdmission:
    async def test_an_unknown_station_is_refused_unless_the_csms_accepts_any(self) -> None:
        """With unknown stations refused, an unregistered id gets unknown_station."""
        storage = MemoryStorage()
        strict = build_services(storage, FakeClock(), accept_unknown=False)
        admission = await strict.stations.admit("CP-NEW", Credentials())
        assert admission.refusal == Refusal.UNKNOWN_STATION
        open_door = build_services(storage, FakeClock(), accept_unknown=True)
        assert (await open_door.stations.admit("CP-NEW", Credentials())).refusal is None
        assert [s.id for s in await storage.list_stations()] == ["CP-NEW"]


class TestBoot:
    async def test_boot_stores_the_facts_and_reports_them(self) -> None:
        """A BootNotification is accepted, its facts kept on the station, one event reported."""
        storage = MemoryStorage()
        services = build_services(storage, FakeClock())
        await storage.register_station("CP-1", at=T0)
        decision = await services.stations.booted("CP-1", "2.0.1", BOOT)
        station = await storage.find_station("CP-1")
        assert decision.status == "Accepted"
        assert decision.interval == 300
        assert station is not None
        assert (station.vendor, station.model, station.firmware_version) == (
            "ACME",
            "Model-X",
            "1.2.3",
        )
        assert station.last_boot_at == T0
        events = [row.event.type for row in await storage.outbox_pending(10)]
        assert events == [EventType.STATION_BOOTED]

    async def test_a_station_held_pending_is_told_to_retry_later(self) -> None:
        """The registration's boot status answers the boot, with a retry interval near 60 s."""
        storage = MemoryStorage()
        services = build_services(storage, FakeClock())
        await storage.register_station("CP-1", at=T0)
        await storage.set_boot_status("CP-1", "Pending")
        decision = await services.stations.booted("CP-1", "1.6", BOOT)
        assert decision.status == "Pending"
        assert 48 <= decision.interval <= 72


class TestHeartbeat:
    async def test_heartbeats_write_last_seen_at_most_once_a_minute(self) -> None:
        """Heartbeats answer the time; the stored last_seen moves only after a minute."""
        storage = MemoryStorage()
        clock = FakeClock()
        services = build_services(storage, clock)
        await storage.register_station("CP-1", at=T0)
        assert await services.stations.heartbeat("CP-1", "1.6") == T0
        clock.advance(30)
        await services.stations.heartbeat("CP-1", "1.6")
        station = await storage.find_station("CP-1")
        assert station is not None
        assert station.last_seen_at == T0
        clock.advance(31)
        await services.stations.heartbeat("CP-1", "1.6")
        station = await storage.find_station("CP-1")
        assert station is not None
        assert station.last_seen_at == clock.now
