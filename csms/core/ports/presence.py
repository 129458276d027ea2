"""The cluster's view of which process (node) holds which station's connection.

Every process renews a lease on its node row; every open connection has a
row with the node that holds it and an epoch. Epochs grow across the
cluster, so a station's newest connection has the largest: it is the one
commands go to, and an older connection (a half-open socket on another
node) can only close its own row, never the newer one's (fencing).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from csms.core.records import record


@record
class Presence:
    """One open connection of a station, held by ``node_id``."""

    station_id: str
    node_id: str
    epoch: int
    ocpp_version: str
    opened_at: datetime


class PresenceStore(Protocol):
    async def begin_connection(self, station_id: str) -> tuple[int, list[Presence]]:
        """An epoch no earlier connection in the cluster got, and the
        station's connections still recorded open (on any node), in one go."""
        ...

    async def renew_node(self, node_id: str, started_at: datetime, at: datetime) -> None:
        """Create or extend the node's lease (its ``seen_at``)."""
        ...

    async def find_presence(self, station_id: str, alive_since: datetime) -> Presence | None:
        """The station's newest open connection held by a node whose lease was
        renewed at or after ``alive_since``; None if none."""
        ...

    async def presences(self, alive_since: datetime) -> dict[str, Presence]:
        """``find_presence`` of every station that has one."""
        ...

    async def stale_connections(
        self, alive_since: datetime, node_id: str | None = None
    ) -> list[Presence]:
        """Open connections whose node's lease ran out before ``alive_since``
        (or that has no node row), and every open connection of ``node_id``."""
        ...

    async def connections_of(self, node_id: str) -> list[Presence]:
        """Every connection recorded open on ``node_id``."""
        ...

    async def forget_nodes(self, seen_before: datetime) -> None:
        """Drop the rows of nodes not renewed since ``seen_before`` that hold
        no connection any more."""
        ...
