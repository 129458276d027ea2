"""What stations reported and what commands set: connectors, configuration,
device model, reservations, charging profiles, notifications."""

from __future__ import annotations

from typing import Protocol

from csms.core.domain import (
    ChargingProfile,
    ConfigurationKey,
    ConnectorStatus,
    DeviceModelEntry,
    Reservation,
)
from csms.core.ports.writes import StationNotified


class StationStateStore(Protocol):
    """A station's current state and notifications; written by units of work."""

    async def list_connectors(self, station_id: str) -> list[ConnectorStatus]:
        """By EVSE, then connector."""
        ...

    async def find_local_list_version(self, station_id: str) -> int | None: ...

    async def list_device_model(self, station_id: str) -> list[DeviceModelEntry]:
        """By entry key."""
        ...

    async def list_notifications(
        self, station_id: str, action: str | None = None
    ) -> list[StationNotified]:
        """In the order received, of one action when given."""
        ...

    async def list_configuration(self, station_id: str) -> list[ConfigurationKey]:
        """By key."""
        ...

    async def list_reservations(self, station_id: str) -> list[Reservation]:
        """By reservation id."""
        ...

    async def list_charging_profiles(self, station_id: str) -> list[ChargingProfile]:
        """By EVSE, then profile id."""
        ...
