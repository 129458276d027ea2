"""The station registry: who may connect, with which credentials."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from csms.core.domain import Station

UNCHANGED: Any = object()
"""Sentinel for ``register_station``: keep the stored value."""


class StationStore(Protocol):
    """Registered stations and their boot facts. ``find_x`` returns None when absent."""

    async def find_station(self, station_id: str) -> Station | None: ...

    async def find_station_ignoring_case(self, station_id: str) -> Station | None:
        """The one station whose id equals ``station_id`` but for case; None
        if there is none or several (an interoperability tolerance)."""
        ...

    async def register_station(
        self,
        station_id: str,
        *,
        password_hash: str | None = UNCHANGED,
        security_profile: int = UNCHANGED,
        at: datetime,
    ) -> Station:
        """Create or update a registration; UNCHANGED keeps the stored value."""
        ...

    async def rotate_station_password(self, station_id: str, password_hash: str) -> bool:
        """Set a new password, keeping the one in use valid until retired.
        False if the station is not registered. A second rotation before the
        first was picked up keeps the oldest (the one the station still has)."""
        ...

    async def retire_previous_password(self, station_id: str) -> None:
        """The station logged in with its new password: the previous one and
        the pending (sealed) copy of the new one are dropped."""
        ...

    async def set_pending_password(self, station_id: str, sealed: str) -> bool:
        """Keep a rotated password, sealed, until the station logs in with it;
        False if the station is not registered."""
        ...

    async def find_pending_password(self, station_id: str) -> str | None: ...

    async def secret(self, name: str, candidate: str) -> str:
        """The cluster's secret ``name``: ``candidate`` becomes it if there is
        none yet, else the one stored first is returned."""
        ...

    async def set_boot_status(self, station_id: str, status: str) -> bool:
        """What the station's BootNotification is answered; False if unknown."""
        ...

    async def list_stations(self) -> list[Station]:
        """Every registered or seen station, by id."""
        ...

    async def delete_station(self, station_id: str) -> bool:
        """Remove a registration and the station's current state (connectors,
        configuration, device model, reservations, charging profiles); keep its
        history (transactions, notifications, commands, events). False if unknown."""
        ...


class Sealer(Protocol):
    """Seals a secret for storage, bound to the station it belongs to."""

    def seal(self, station_id: str, secret: str) -> str: ...

    def unseal(self, station_id: str, sealed: str) -> str | None:
        """The secret; None if ``sealed`` was not sealed for this station by this key."""
        ...
