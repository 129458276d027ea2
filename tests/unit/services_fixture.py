"""What the service tests share: a clock they move, and services on a MemoryStorage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms.adapters.storage.memory import MemoryStorage
from csms.services import Services

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


class FakeClock:
    """A Clock that stands still until a test moves it."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def build_services(
    storage: MemoryStorage, clock: FakeClock, *, accept_unknown: bool = True
) -> Services:
    """The services as the composition root wires them, on ``storage``."""
    return Services.build(
        storage, heartbeat_interval=300, accept_unknown_stations=accept_unknown, clock=clock
    )
