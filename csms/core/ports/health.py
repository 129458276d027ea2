"""The storage's own life: readiness, pool use, closing."""

from __future__ import annotations

from typing import Protocol

from csms.core.records import record


@record
class PoolStats:
    """A connection pool's use: connections open, of them idle, and the cap."""

    size: int
    idle: int
    max_size: int


class StorageHealth(Protocol):
    """What the operations listener and the composition root ask of a storage."""

    dialect: str

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        ...

    def pool_stats(self) -> PoolStats | None:
        """The connection pool's use; None without a pool (SQLite's one thread)."""
        ...

    def wait_out_outages(self, seconds: float) -> None:
        """While the database cannot be reached, let writes and the station
        path's reads wait up to ``seconds`` (retrying) before they fail."""
        ...

    async def close(self) -> None:
        """Flush pending commits, then release the database."""
        ...
