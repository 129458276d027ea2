"""Each station connection's life in the cluster's presence view.

A process (node) holds a lease on its row in ``nodes`` and renews it every
few seconds; each open connection has a row naming its node and an epoch
(csms.core.ports.presence). A connection is recorded open with
``station.connected`` and closed with ``station.disconnected``, one of each
per connection, whatever happens:

- a close that cannot be recorded (the database is down) is kept and
  recorded when the database answers again, with the time it happened;
- the connections of a process that stopped without closing them (SIGKILL,
  a crash) are closed by any other process once its lease has run out, or
  by the process itself when it restarts with the same node id (on SQLite,
  one process, by the next start), with ``detected_late``.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

import structlog

from csms.core.errors import ConflictError, StorageError
from csms.core.ports import Clock, Presence, PresenceStore
from csms.core.records import record
from csms.services.stations import StationService

log = structlog.get_logger("csms.connections")

# A node whose lease was not renewed for this long is taken for stopped. It
# outlasts a few missed renewals (a busy loop, a short database blip).
LEASE = timedelta(seconds=15)
RENEW_INTERVAL = 5.0
# A node row with no connection left is dropped this long after it stopped.
FORGET_AFTER = timedelta(hours=1)
STOPPED_REASON = "the CSMS process holding the connection stopped"


@record
class _Unrecorded:
    """A close the database did not take yet."""

    presence: Presence
    code: int | None
    reason: str
    at: datetime


class ConnectionService:
    """Opens and closes connection records for this node; ``start`` its lease.
    ``single_process`` (SQLite): at start every open row is stale."""

    def __init__(
        self,
        store: PresenceStore,
        stations: StationService,
        clock: Clock,
        node_id: str,
        *,
        single_process: bool = False,
        renew_interval: float = RENEW_INTERVAL,
        lease: timedelta = LEASE,
    ) -> None:
        self.store = store
        self.stations = stations
        self.clock = clock
        self.node_id = node_id
        self.single_process = single_process
        self.renew_interval = renew_interval
        self.lease = lease
        self._started_at = self.clock()
        self._unrecorded: list[_Unrecorded] = []
        self._task: asyncio.Task[None] | None = None

    def alive_since(self) -> datetime:
        """A lease renewed at or after this time is current."""
        return self.clock() - self.lease

    async def locate(self, station_id: str) -> Presence | None:
        """The station's current connection anywhere in the cluster."""
        return await self.store.find_presence(station_id, self.alive_since())

    async def presences(self) -> dict[str, Presence]:
        return await self.store.presences(self.alive_since())

    # --- one connection ------------------------------------------------------

    async def opened(
        self, station_id: str, ocpp_version: str, remote: str | None
    ) -> tuple[Presence, list[Presence]]:
        """Record a new connection, its epoch larger than any before it; with
        the station's older connections still open (to be closed: takeover)."""
        epoch, older = await self.store.begin_connection(station_id)
        presence = Presence(station_id, self.node_id, epoch, ocpp_version, self.clock())
        await self.stations.connected(presence, remote)
        return presence, older

    async def closed(self, presence: Presence, code: int | None, reason: str) -> None:
        """Record the close now, or (the database down) as soon as it answers."""
        at = self.clock()
        try:
            await self.stations.disconnected(presence, code, reason, at=at)
        except StorageError as exc:
            log.warning("disconnect_recorded_later", station_id=presence.station_id, error=str(exc))
            self._unrecorded.append(_Unrecorded(presence, code, reason, at))

    # --- the lease -----------------------------------------------------------

    async def start(self) -> None:
        """Take the lease, close what an earlier life of this node left open,
        then keep renewing in the background."""
        await self._renew()
        await self._close_stale(
            alive_since=self.clock() + self.lease if self.single_process else self.alive_since(),
            node_id=self.node_id,
        )
        self._task = asyncio.create_task(self._keep())

    async def stop(self) -> None:
        """Stop renewing; record the closes still waiting, if the database lets us."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self._record_waiting()
        except StorageError as exc:
            # Lost with this process: the next start of this node id closes them late.
            log.warning(
                "disconnects_not_recorded", connections=len(self._unrecorded), error=str(exc)
            )

    async def sweep(self) -> None:
        """One round of the lease: renew it, record the closes still waiting,
        close the connections of nodes found stopped, forget long-gone nodes."""
        await self._renew()
        await self._record_waiting()
        await self._close_stale(alive_since=self.alive_since())
        await self.store.forget_nodes(self.clock() - FORGET_AFTER)

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.renew_interval)
            try:
                await self.sweep()
            except StorageError as exc:
                # The outage itself is logged once, by the group committer.
                log.debug("lease_not_renewed", error=str(exc))

    async def _renew(self) -> None:
        await self.store.renew_node(self.node_id, self._started_at, self.clock())

    async def _record_waiting(self) -> None:
        while self._unrecorded:
            waiting = self._unrecorded[0]
            await self.stations.disconnected(
                waiting.presence, waiting.code, waiting.reason, at=waiting.at
            )
            self._unrecorded.pop(0)
            log.info("disconnect_recorded", station_id=waiting.presence.station_id)

    async def close_abandoned(self, presence: Presence) -> bool:
        """Close, with a late event, a connection whose process is known to be
        gone; False if another process closed it first."""
        try:
            await self.stations.disconnected(presence, None, STOPPED_REASON, detected_late=True)
        except ConflictError:
            return False
        return True

    async def _close_stale(self, *, alive_since: datetime, node_id: str | None = None) -> None:
        """Close, with their event, the connections of nodes that stopped."""
        stale = await self.store.stale_connections(alive_since, node_id)
        closed = 0
        for presence in stale:
            closed += await self.close_abandoned(presence)
        if closed:
            log.info("stale_connections_closed", connections=closed)
