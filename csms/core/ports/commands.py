"""Commands the CSMS sends to stations, as recorded through their life."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from csms.core.domain import Command, CommandStatus
from csms.core.ports.stations import StationStore
from csms.core.records import record


@record
class CommandFilter:
    station_id: str | None = None
    status: CommandStatus | None = None
    limit: int = 100
    offset: int = 0


class CommandStore(Protocol):
    """Commands are written by units of work (``CommandRecorded``); this port reads them."""

    async def find_command(self, command_id: str) -> Command | None: ...

    async def list_commands(self, where: CommandFilter) -> list[Command]:
        """Newest first."""
        ...

    async def list_queued_commands(self, station_id: str, limit: int = 100) -> list[Command]:
        """A station's queued commands, oldest first (the order they are sent in)."""
        ...

    async def list_expired_commands(self, now: datetime, limit: int = 100) -> list[Command]:
        """Queued commands whose expiry is at or before ``now``, oldest expiry first."""
        ...

    async def list_stations_with_queued_commands(self) -> list[str]:
        """By station id."""
        ...


class CommandQueueStore(StationStore, CommandStore, Protocol):
    """What the command dispatcher reads: the station a command is for, and the queue."""
