"""One station.connected and one station.disconnected per connection, whatever
happens to the process that held it (issue 22, item 3), and the cluster's view
of who holds which station (docs/adr/0011-cluster.md).

The services run on each store (SQLite, PostgreSQL, in memory) with a clock
the tests move; the SIGKILL tests run `csms serve` as a child process.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from csms.adapters.storage import open_storage
from csms.core.errors import StorageUnavailableError
from csms.core.events import EventType
from csms.core.ports import Storage
from csms.services import Services
from csms.services.connections import LEASE
from scripts.simulate import SimStation
from tests.integration.test_process import Server
from tests.unit.services_fixture import FakeClock

pytestmark = pytest.mark.asyncio


def node(storage: Storage, clock: FakeClock, node_id: str, **kw: Any) -> Services:
    return Services.build(
        storage,
        heartbeat_interval=300,
        accept_unknown_stations=True,
        clock=clock,
        node_id=node_id,
        **kw,
    )


async def events(storage: Storage, kind: str) -> list[dict[str, Any]]:
    rows = await storage.outbox_pending(10_000)
    return [r.event.data | {"_at": r.event.occurred_at} for r in rows if r.event.type == kind]


class TestPresence:
    async def test_the_newest_connection_is_the_stations_and_an_older_close_leaves_it(
        self, any_storage: Storage
    ) -> None:
        """A station that reconnects to node B while node A still holds a socket:
        B's connection is current; A closing its old socket later does not make
        the station look disconnected (fencing by epoch)."""
        clock = FakeClock()
        a, b = node(any_storage, clock, "A"), node(any_storage, clock, "B")
        await a.connections.start()
        await b.connections.start()
        await any_storage.register_station("CP-1", at=clock())
        old, _ = await a.connections.opened("CP-1", "1.6", "10.0.0.1")
        new, older = await b.connections.opened("CP-1", "1.6", "10.0.0.2")
        assert new.epoch > old.epoch
        assert older == [old]  # B learns whom to tell to close
        assert (await a.connections.locate("CP-1")) == new
        await a.connections.closed(old, 1006, "")
        assert (await b.connections.locate("CP-1")) == new
        assert (await any_storage.presences(clock() - LEASE)) == {"CP-1": new}
        await b.connections.closed(new, 1000, "")
        assert await a.connections.locate("CP-1") is None
        opened = await events(any_storage, EventType.STATION_CONNECTED)
        closed = await events(any_storage, EventType.STATION_DISCONNECTED)
        assert [(e["connection_id"], e["node_id"]) for e in opened] == [
            (old.epoch, "A"),
            (new.epoch, "B"),
        ]
        assert sorted((e["connection_id"], e["node_id"], e["detected_late"]) for e in closed) == [
            (old.epoch, "A", False),
            (new.epoch, "B", False),
        ]
        await a.connections.stop()
        await b.connections.stop()

    async def test_a_stopped_nodes_connections_are_closed_once_by_the_others(
        self, any_storage: Storage
    ) -> None:
        """Node A dies holding two stations: once its lease runs out, B and C
        both sweep, and each connection gets exactly one late station.disconnected;
        until then A's stations still count as connected, after it not."""
        clock = FakeClock()
        a, b, c = (node(any_storage, clock, n) for n in ("A", "B", "C"))
        for n in (a, b, c):
            await n.connections.start()
        for station in ("CP-1", "CP-2"):
            await any_storage.register_station(station, at=clock())
            await a.connections.opened(station, "2.0.1", None)
        clock.advance(LEASE.total_seconds() - 1)
        await b.connections.sweep()
        assert set(await b.connections.presences()) == {"CP-1", "CP-2"}
        assert await events(any_storage, EventType.STATION_DISCONNECTED) == []
        clock.advance(2)  # A renewed nothing: its lease is over
        assert await b.connections.presences() == {}
        await asyncio.gather(b.connections.sweep(), c.connections.sweep())
        await c.connections.sweep()
        closed = await events(any_storage, EventType.STATION_DISCONNECTED)
        assert sorted(e["connection_id"] for e in closed) == [1, 2]
        assert all(e["detected_late"] and e["close_code"] is None for e in closed)
        assert all(e["node_id"] == "A" for e in closed)
        assert await any_storage.stale_connections(clock() - LEASE) == []
        for n in (b, c):
            await n.connections.stop()

    async def test_a_restart_with_the_same_node_id_closes_what_its_crash_left_open(
        self, any_storage: Storage
    ) -> None:
        """The same CSMS_NODE_ID restarted (a Kubernetes StatefulSet): its old
        connections are closed at once, not after the lease."""
        clock = FakeClock()
        first = node(any_storage, clock, "csms-0")
        await first.connections.start()
        await any_storage.register_station("CP-1", at=clock())
        await first.connections.opened("CP-1", "1.6", None)
        clock.advance(1)
        again = node(any_storage, clock, "csms-0")  # the crash: no stop()
        await again.connections.start()
        closed = await events(any_storage, EventType.STATION_DISCONNECTED)
        assert [(e["connection_id"], e["detected_late"]) for e in closed] == [(1, True)]
        await again.connections.stop()

    async def test_a_close_the_database_refused_is_recorded_when_it_answers(
        self, any_storage: Storage
    ) -> None:
        """The disconnect happened while the database was down: it is kept and
        recorded, with the time it happened, by the next round of the lease."""
        clock = FakeClock()
        a = node(any_storage, clock, "A")
        await a.connections.start()
        await any_storage.register_station("CP-1", at=clock())
        presence, _ = await a.connections.opened("CP-1", "1.6", None)
        happened = clock()
        stations = a.stations
        real = stations.disconnected
        refused = 0

        async def database_down(*args: Any, **kwargs: Any) -> None:
            nonlocal refused
            refused += 1
            raise StorageUnavailableError("cannot commit: connection refused")

        stations.disconnected = database_down  # type: ignore[method-assign]
        await a.connections.closed(presence, 1000, "bye")
        assert refused == 1
        assert await events(any_storage, EventType.STATION_DISCONNECTED) == []
        stations.disconnected = real  # type: ignore[method-assign]
        clock.advance(30)
        await a.connections.sweep()
        closed = await events(any_storage, EventType.STATION_DISCONNECTED)
        assert [(e["close_code"], e["reason"], e["_at"]) for e in closed] == [
            (1000, "bye", happened)
        ]
        assert await a.connections.locate("CP-1") is None
        await a.connections.stop()


class TestLeaseLapses:
    async def test_after_a_shared_outage_no_node_takes_the_others_for_dead(
        self, any_storage: Storage
    ) -> None:
        """No node renewed for 20 s (the database was down for all): the first
        back waits a whole lease before it sweeps, by which time the others
        renewed too; the station on B stays connected, no late event."""
        clock = FakeClock()
        a, b = node(any_storage, clock, "A"), node(any_storage, clock, "B")
        await a.connections.start()
        await b.connections.start()
        await any_storage.register_station("CP-B", at=clock())
        on_b, _ = await b.connections.opened("CP-B", "1.6", None)
        clock.advance(20)
        await a.connections.sweep()  # back first: its own lease had lapsed
        for _ in range(3):
            clock.advance(5)
            await b.connections.sweep()
            await a.connections.sweep()
        assert await a.connections.locate("CP-B") == on_b
        assert await events(any_storage, EventType.STATION_DISCONNECTED) == []
        await a.connections.stop()
        await b.connections.stop()

    async def test_a_node_whose_lease_lapsed_reconnects_the_stations_it_lost(
        self, any_storage: Storage
    ) -> None:
        """A renewal that finds its own lease run out says so once, with the
        records still open (the composition root closes the others with 1012)."""
        clock = FakeClock()
        a = node(any_storage, clock, "A")
        lapses: list[set[tuple[str, int]]] = []

        async def reconnect_lost(still_open: set[tuple[str, int]]) -> None:
            lapses.append(still_open)

        a.connections.on_lease_lapsed = reconnect_lost
        await a.connections.start()
        await any_storage.register_station("CP-1", at=clock())
        kept, _ = await a.connections.opened("CP-1", "1.6", None)
        clock.advance(5)
        await a.connections.sweep()
        assert lapses == []
        clock.advance(16)
        await a.connections.sweep()
        clock.advance(5)
        await a.connections.sweep()
        # Nobody closed its record meanwhile: nothing to reconnect.
        assert lapses == [{("CP-1", kept.epoch)}]
        await a.connections.stop()

    async def test_a_connection_closed_late_by_another_is_not_reported_twice(
        self, any_storage: Storage
    ) -> None:
        """B took A for dead and closed A's connection with a late event; when
        A (alive after all) closes it too, no second station.disconnected."""
        clock = FakeClock()
        a, b = node(any_storage, clock, "A"), node(any_storage, clock, "B")
        await a.connections.start()
        await b.connections.start()
        await any_storage.register_station("CP-A", at=clock())
        on_a, _ = await a.connections.opened("CP-A", "1.6", None)
        for _ in range(4):  # A renews no more (stalled); B does, and sweeps
            clock.advance(4)
            await b.connections.sweep()
        await a.connections.closed(on_a, 1000, "bye")
        closed = await events(any_storage, EventType.STATION_DISCONNECTED)
        assert [(e["connection_id"], e["detected_late"]) for e in closed] == [(on_a.epoch, True)]
        await a.connections.stop()
        await b.connections.stop()


class TestKilledProcess:
    async def test_every_connection_of_a_killed_process_gets_its_disconnected(
        self, database_url: str, tmp_path: Path
    ) -> None:
        """SIGKILL with five stations connected, then a restart (SQLite: the
        one process; PostgreSQL: the same CSMS_NODE_ID): each connection has
        one station.connected and one station.disconnected, the killed ones
        marked detected_late, and no station counts as connected any more."""
        env = {"CSMS_UNKNOWN_STATIONS": "accept", "CSMS_NODE_ID": "csms-test-0"}
        first = await asyncio.to_thread(Server, database_url, tmp_path, **env)
        stations = [SimStation(first.ws_url, f"KILL-{i}") for i in range(5)]
        try:
            for cp in stations:
                await cp.connect()
                await cp.boot()
            first.proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.proc.wait)
        finally:
            for cp in stations:
                await cp.close()
        second = await asyncio.to_thread(Server, database_url, tmp_path, **env)
        try:
            status, body = await asyncio.to_thread(second.get, "/api/v1/stations")
            assert status == 200
            assert b'"connected":true' not in body.replace(b" ", b"")
        finally:
            await asyncio.to_thread(second.terminate)
        storage = await open_storage(database_url)
        try:
            opened = await events(storage, EventType.STATION_CONNECTED)
            closed = await events(storage, EventType.STATION_DISCONNECTED)
        finally:
            await storage.close()
        assert len(opened) == 5
        assert sorted(e["connection_id"] for e in closed) == sorted(
            e["connection_id"] for e in opened
        )
        assert all(e["detected_late"] for e in closed)
