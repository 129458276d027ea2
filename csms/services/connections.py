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
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

import structlog

from csms.core.errors import ConflictError, StorageError
from csms.core.ports import Clock, Presence, PresenceStore
from csms.core.records import record
from csms.services.stations import StationService

log = structlog.get_logger("csms.connections")
T = TypeVar("T")
R = TypeVar("R")

# A node whose lease was not renewed for this long is taken for stopped. It
# outlasts a few missed renewals (a busy loop, a short database blip).
LEASE = timedelta(seconds=15)
RENEW_INTERVAL = 5.0
# A node row with no connection left is dropped this long after it stopped.
FORGET_AFTER = timedelta(hours=1)
STOPPED_REASON = "the CSMS process holding the connection stopped"
# Stale connections closed at once, in one batch of the group commit.
STALE_CLOSE_CHUNK = 200


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
        self._tasks: list[asyncio.Task[None]] = []
        # When the lease was last renewed, and since when without a failure.
        self._renewed_at: datetime | None = None
        self._held_since: datetime | None = None
        # Called when a renewal finds the lease had run out, with the
        # connections still recorded open (the composition root closes this
        # process's other stations so that they reconnect).
        self.on_lease_lapsed: Callable[[set[tuple[str, int]]], Awaitable[None]] | None = None

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
        """Record the close now, or (the database down) as soon as it answers;
        not at all if another process already closed the record (late)."""
        at = self.clock()
        try:
            await self.stations.disconnected(presence, code, reason, at=at)
        except ConflictError:
            log.info("disconnect_recorded_elsewhere", station_id=presence.station_id)
        except StorageError as exc:
            log.warning("disconnect_recorded_later", station_id=presence.station_id, error=str(exc))
            self._unrecorded.append(_Unrecorded(presence, code, reason, at))

    # --- the lease -----------------------------------------------------------

    async def start(self) -> None:
        """Take the lease, close what an earlier life of this node left open,
        then keep renewing (and sweeping) in the background."""
        await self._renew()
        await self._close_stale(
            alive_since=self.clock() + self.lease if self.single_process else self.alive_since(),
            node_id=self.node_id,
        )
        self._tasks = [
            asyncio.create_task(self._every_round(self._keep_lease)),
            asyncio.create_task(self._every_round(self._sweep_others)),
        ]

    async def stop(self) -> None:
        """Stop renewing; record the closes still waiting, if the database lets us."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        try:
            await self._record_waiting()
        except StorageError as exc:
            # Lost with this process: the next start of this node id closes them late.
            log.warning(
                "disconnects_not_recorded", connections=len(self._unrecorded), error=str(exc)
            )

    async def sweep(self) -> None:
        """One round of both loops: renew the lease and record the closes still
        waiting; then close the connections of nodes found stopped."""
        await self._keep_lease()
        await self._sweep_others()

    async def _every_round(self, work: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(self.renew_interval)
            try:
                await work()
            except StorageError as exc:
                # The outage itself is logged once, by the group committer.
                log.debug("lease_round_failed", error=str(exc))

    async def _keep_lease(self) -> None:
        await self._renew()
        await self._record_waiting()

    async def _sweep_others(self) -> None:
        """Close the connections of stopped nodes, but only once this node has
        held its lease for a whole lease: after an outage of the database every
        node's lease looks run out until each has renewed, and none may take
        the others' live connections for dead."""
        held, now = self._held_since, self.clock()
        renewed = self._renewed_at
        if held is None or now - held < self.lease:
            return
        if renewed is None or now - renewed >= self.lease:
            return  # our own lease is as stale as the others': we are the one cut off
        await self._close_stale(alive_since=self.alive_since(), others_only=True)
        await self.store.forget_nodes(self.clock() - FORGET_AFTER)

    async def _renew(self) -> None:
        now = self.clock()
        await self.store.renew_node(self.node_id, self._started_at, now)
        last, self._renewed_at = self._renewed_at, now
        lapsed = last is not None and now - last > self.lease
        if self._held_since is None or lapsed:
            self._held_since = now  # held anew: the others get a lease to renew theirs
        if lapsed:
            assert last is not None
            # The others may have taken our connections for dead and closed their
            # records (or, after an outage they shared, not): the stations whose
            # record is gone reconnect and get one (and its events) anew.
            still_open = {
                (p.station_id, p.epoch) for p in await self.store.connections_of(self.node_id)
            }
            log.warning(
                "lease_lapsed",
                seconds=round((now - last).total_seconds(), 1),
                records=len(still_open),
            )
            if self.on_lease_lapsed is not None:
                await self.on_lease_lapsed(still_open)

    async def _record_waiting(self) -> None:
        """Record the closes the database refused, many at once (after a long
        outage there may be thousands: one by one would delay the renewal)."""
        while self._unrecorded:
            chunk = self._unrecorded[:STALE_CLOSE_CHUNK]
            await _at_once(self._record_one, chunk)
            del self._unrecorded[: len(chunk)]

    async def _record_one(self, waiting: _Unrecorded) -> None:
        try:
            await self.stations.disconnected(
                waiting.presence, waiting.code, waiting.reason, at=waiting.at
            )
        except ConflictError:
            return  # closed late by another process meanwhile: its event stands
        log.info("disconnect_recorded", station_id=waiting.presence.station_id)

    async def close_abandoned(self, presence: Presence) -> bool:
        """Close, with a late event, a connection whose process is known to be
        gone; False if another process closed it first."""
        try:
            await self.stations.disconnected(presence, None, STOPPED_REASON, detected_late=True)
        except ConflictError:
            return False
        return True

    async def _close_stale(
        self, *, alive_since: datetime, node_id: str | None = None, others_only: bool = False
    ) -> None:
        """Close, with their event, the connections of nodes that stopped: many
        at once, so that the group commit batches them (a stopped node may
        have held tens of thousands). ``others_only``: never this node's own
        (alive, whatever its lease row says)."""
        stale = await self.store.stale_connections(alive_since, node_id)
        if others_only:
            stale = [p for p in stale if p.node_id != self.node_id]
        closed = 0
        for start in range(0, len(stale), STALE_CLOSE_CHUNK):
            closed += sum(
                await _at_once(self.close_abandoned, stale[start : start + STALE_CLOSE_CHUNK])
            )
        if closed:
            log.info("stale_connections_closed", connections=closed)


async def _at_once(work: Callable[[T], Awaitable[R]], items: list[T]) -> list[R]:
    """``work`` on every item concurrently: their commits share group-commit batches."""
    return await asyncio.gather(*map(work, items))
