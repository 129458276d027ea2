"""Outbox ops for the events a use case reports (committed with its state)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from csms.core.events import Event
from csms.core.ports import Clock, EventAppended


def report(
    clock: Clock,
    kind: str,
    station_id: str,
    ocpp_version: str,
    occurred_at: datetime | None,
    data: dict[str, Any],
) -> EventAppended:
    """An outbox op for one event; ``occurred_at`` None means "now"."""
    now = clock()
    return EventAppended(Event.new(kind, station_id, ocpp_version, occurred_at or now, now, data))
