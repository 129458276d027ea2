"""Admission control through a real server: the handshake cap and rate (503
with Retry-After), a handshake storm that connected stations do not feel,
and the per-station message rate (paced, then closed with 1008)."""

from __future__ import annotations

import asyncio
import gc
import random
import time
import weakref
from datetime import UTC, datetime

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode

from csms.app import Running
from csms.core.security import hash_password
from csms.telemetry import metrics
from scripts.simulate import SimStation
from tests.integration.conftest import StartCsms, ws_url
from tests.integration.polling import poll_until

PASSWORD = "storm-password-0123456"


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """Admission happens before storage matters: SQLite only, to keep the suite quick."""
    return sqlite_url


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def connect_or_busy(station: SimStation) -> int | None:
    """Connect; None when in, the Retry-After seconds of a 503 otherwise."""
    try:
        await station.connect()
    except InvalidStatus as exc:
        if exc.response.status_code != 503:
            raise
        return int(exc.response.headers["Retry-After"])
    return None


async def served_then_closed(stations: list[SimStation]) -> None:
    """Each station admitted is served (a Heartbeat answered), then closed."""
    for station in stations:
        await station.heartbeat()
        await station.close()


async def heartbeat_until_closed(station: SimStation, limit: int) -> int:
    """Heartbeats back to back until the server closes; how many were answered."""
    for answered in range(limit):
        try:
            await station.heartbeat()
        except ConnectionClosed:
            return answered
    raise AssertionError(f"still open after {limit} heartbeats")


class TestHandshakeGate:
    async def test_over_the_rate_gets_503_with_retry_after(self, start_csms: StartCsms) -> None:
        """Handshakes beyond CSMS_HANDSHAKE_RATE per second are turned away, told when to return."""
        csms = await start_csms(handshake_rate=3, handshake_retry_after=4, handshake_queue_wait=0)
        before = sample("csms_handshakes_rejected_total", reason="handshake_rate")
        statuses, retry_after = [], []
        for n in range(6):
            try:
                async with SimStation(ws_url(csms), f"RATE-{n}"):
                    statuses.append(101)
            except InvalidStatus as exc:
                statuses.append(exc.response.status_code)
                retry_after.append(int(exc.response.headers["Retry-After"]))
        assert statuses[:3] == [101, 101, 101]
        assert 503 in statuses[3:]
        assert all(1 <= seconds <= 4 for seconds in retry_after)
        assert sample("csms_handshakes_rejected_total", reason="handshake_rate") > before

    async def test_with_a_queue_handshakes_over_the_rate_are_paced_not_refused(
        self, start_csms: StartCsms
    ) -> None:
        """CSMS_HANDSHAKE_QUEUE_WAIT (default 5 s): beyond the rate a handshake
        waits for its turn instead of getting a 503."""
        csms = await start_csms(handshake_rate=4, handshake_queue_wait=3)
        stations = [SimStation(ws_url(csms), f"PACED-{n}") for n in range(8)]
        started = time.perf_counter()
        async with asyncio.timeout(10):
            await asyncio.gather(*(station.connect() for station in stations))
        elapsed = time.perf_counter() - started
        await served_then_closed(stations)
        assert elapsed > 0.7  # 4 in the burst, the other 4 a quarter second apart


async def start_storm_csms(
    start_csms: StartCsms, cap: int, prefix: str, stormers: int, **settings: object
) -> Running:
    """A CSMS deciding at most ``cap`` handshakes at once, with ``stormers``
    stations registered with passwords (scrypt makes each handshake costly)."""
    csms = await start_csms(
        unknown_stations="reject", max_concurrent_handshakes=cap, handshake_rate=0, **settings
    )
    digest = hash_password(PASSWORD)
    now = datetime.now(UTC)
    for n in range(stormers):
        await csms.storage.register_station(f"{prefix}{n}", password_hash=digest, at=now)
    return csms


@pytest.mark.serial  # a storm measured against a patience: it needs the machine to itself
class TestHandshakeStorm:
    async def test_storm_is_capped_connected_stations_stay_served_and_all_get_in(
        self, start_csms: StartCsms
    ) -> None:
        """120 stations with passwords (scrypt) at once against a cap of 8: the excess gets
        503, a connected station's Heartbeats keep being answered quickly, the in-flight
        count never passes the cap, and every stormer gets in by retrying."""
        cap, stormers = 8, 120
        csms = await start_storm_csms(
            start_csms, cap, "STORM-", stormers, handshake_retry_after=1, handshake_queue_wait=0
        )
        await csms.storage.register_station("RESIDENT", at=datetime.now(UTC))
        refused_before = sample("csms_handshakes_rejected_total", reason="handshake_capacity")

        async with SimStation(ws_url(csms), "RESIDENT") as resident:
            await resident.boot()
            storm_over = asyncio.Event()
            latencies: list[float] = []
            in_flight: list[float] = []

            async def watch() -> None:
                while not storm_over.is_set():
                    started = time.perf_counter()
                    await resident.heartbeat()
                    latencies.append(time.perf_counter() - started)
                    in_flight.append(sample("csms_handshakes_in_flight"))
                    await asyncio.sleep(0.05)

            async def storm(n: int) -> SimStation:
                rng = random.Random(n)
                while True:
                    station = SimStation(ws_url(csms), f"STORM-{n}", password=PASSWORD)
                    busy = await connect_or_busy(station)
                    if busy is None:
                        return station
                    # Honour Retry-After, scaled down to keep the test short.
                    await asyncio.sleep(rng.uniform(0.05, 0.3 * busy))

            watcher = asyncio.create_task(watch())
            started = time.perf_counter()
            async with asyncio.timeout(60):
                connected = await asyncio.gather(*(storm(n) for n in range(stormers)))
            storm_seconds = time.perf_counter() - started
            storm_over.set()
            await watcher
            await served_then_closed(connected)

        refused = sample("csms_handshakes_rejected_total", reason="handshake_capacity")
        assert refused - refused_before > 0, "the storm never hit the cap"
        assert max(in_flight) <= cap
        assert len(latencies) >= 3, storm_seconds
        assert max(latencies) < 1.0, sorted(latencies)[-5:]

    async def test_a_queued_storm_gets_in_without_a_refusal(self, start_csms: StartCsms) -> None:
        """The same storm with the handshake queue: the stations wait for a slot
        instead of being refused, the cap still holds, and all get in at once."""
        cap, stormers = 8, 120
        csms = await start_storm_csms(
            start_csms, cap, "QSTORM-", stormers, handshake_queue_wait=4.5
        )
        refused_before = sample("csms_handshakes_rejected_total", reason="handshake_capacity")
        in_flight: list[float] = []
        queued: list[float] = []
        storm_over = asyncio.Event()

        async def watch() -> None:
            while not storm_over.is_set():
                in_flight.append(sample("csms_handshakes_in_flight"))
                queued.append(sample("csms_handshakes_queued"))
                await asyncio.sleep(0.02)

        connected = [
            SimStation(ws_url(csms), f"QSTORM-{n}", password=PASSWORD) for n in range(stormers)
        ]
        watcher = asyncio.create_task(watch())
        async with asyncio.timeout(30):
            await asyncio.gather(*(station.connect() for station in connected))
        storm_over.set()
        await watcher
        await served_then_closed(connected)
        refused = sample("csms_handshakes_rejected_total", reason="handshake_capacity")
        assert refused == refused_before
        assert max(in_flight) <= cap
        assert max(queued) > 0, "the storm never waited in the queue"
        assert sample("csms_handshakes_queued") == 0


class TestMessageRate:
    async def test_over_rate_messages_are_delayed_then_abuse_is_closed_1008(
        self, start_csms: StartCsms
    ) -> None:
        """Beyond the burst, frames wait their turn; staying over the rate closes with 1008."""
        csms = await start_csms(
            station_message_rate=10, station_message_burst=5, station_abuse_seconds=0.5
        )
        delayed_before = sample("csms_messages_delayed_total", ocpp_version="1.6")
        closed_before = sample("csms_connections_closed_for_abuse_total", reason="message_rate")
        async with SimStation(ws_url(csms), "FLOOD") as cp:
            started = time.perf_counter()
            answered = await heartbeat_until_closed(cp, 100)
            elapsed = time.perf_counter() - started
            assert cp.close_code == 1008
        assert 5 <= answered < 20
        assert elapsed >= 0.5
        assert sample("csms_messages_delayed_total", ocpp_version="1.6") > delayed_before
        closed = sample("csms_connections_closed_for_abuse_total", reason="message_rate")
        assert closed == closed_before + 1

    async def test_a_station_that_pauses_is_never_closed(self, start_csms: StartCsms) -> None:
        """Bursts within the budget, with pauses that refill it, are served at full speed."""
        csms = await start_csms(
            station_message_rate=10, station_message_burst=5, station_abuse_seconds=0.5
        )
        async with SimStation(ws_url(csms), "BURSTY") as cp:
            for _ in range(3):
                started = time.perf_counter()
                for _ in range(5):
                    await cp.heartbeat()
                assert time.perf_counter() - started < 0.4
                await asyncio.sleep(0.6)
            await cp.heartbeat()

    async def test_rate_zero_turns_pacing_off(self, start_csms: StartCsms) -> None:
        """CSMS_STATION_MESSAGE_RATE=0: no delay, however fast the station talks."""
        csms: Running = await start_csms(station_message_rate=0, station_message_burst=1)
        async with SimStation(ws_url(csms), "FAST") as cp:
            for _ in range(50):
                await cp.heartbeat()


async def raw_upgrade(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client that completes the WebSocket handshake by hand and then reads nothing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    assert (await reader.readline()).startswith(b"HTTP/1.1 101")
    return reader, writer


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> float:
    """Read (and discard) until the server closes; how long it took."""
    started = time.perf_counter()
    async with asyncio.timeout(seconds):
        while await reader.read(4096):
            pass
    return time.perf_counter() - started


class TestShutdown:
    async def test_stopping_refuses_queued_handshakes_at_once(self, start_csms: StartCsms) -> None:
        """Handshakes waiting for their turn when the CSMS stops are refused there
        and then (503 + Retry-After, reason shutting_down), so the shutdown does
        not wait out their patience."""
        csms = await start_csms(handshake_rate=1, handshake_queue_wait=4, handshake_timeout=10)
        async with SimStation(ws_url(csms), "FIRST"):
            pass  # took this second's token
        waiting = [
            asyncio.create_task(connect_or_busy(SimStation(ws_url(csms), f"LATE-{n}")))
            for n in range(2)
        ]
        await poll_until(lambda: sample("csms_handshakes_queued") == 2, within=2)
        before = sample("csms_handshakes_rejected_total", reason="shutting_down")
        started = time.perf_counter()
        await csms.stop()
        assert time.perf_counter() - started < 2.0
        for outcome in await asyncio.gather(*waiting, return_exceptions=True):
            assert isinstance(outcome, int | OSError | ConnectionClosed), outcome
        assert sample("csms_handshakes_rejected_total", reason="shutting_down") == before + 2


class TestQueuedHandshakes:
    async def test_a_client_that_leaves_while_queued_is_not_looked_up(
        self, start_csms: StartCsms
    ) -> None:
        """A station that gives up while its handshake waits for its turn costs
        nothing when the turn comes: it is not looked up, so (unknown stations
        being accepted here) not registered either."""
        csms = await start_csms(handshake_rate=1, handshake_queue_wait=4, handshake_timeout=10)
        async with SimStation(ws_url(csms), "FIRST"):
            pass  # took this second's token
        _, writer = await asyncio.open_connection("127.0.0.1", csms.stations.port)
        writer.write(
            b"GET /ocpp/GONE-WHILE-QUEUED HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
        )
        await writer.drain()
        await poll_until(lambda: sample("csms_handshakes_queued") == 1, within=2)
        writer.close()  # gives up while queued
        await poll_until(lambda: sample("csms_handshakes_queued") == 0, within=3)
        await asyncio.sleep(0.2)  # what a lookup and registration would take
        assert await csms.storage.find_station("GONE-WHILE-QUEUED") is None
        # Its turn was given back: the next station gets in at the next token.
        async with SimStation(ws_url(csms), "NEXT") as station:
            await station.boot()


class TestClosedConnections:
    async def test_a_closed_connection_is_freed_without_the_cyclic_gc(
        self, start_csms: StartCsms
    ) -> None:
        """Nothing of a station's connection waits for a garbage-collector pass
        once it has left: with 19,000 stations leaving at once, that pass held
        the event loop for a second (docs/benchmarks.md)."""
        csms = await start_csms()
        gc.collect()
        gc.disable()
        try:
            async with SimStation(ws_url(csms), "LEAVING") as station:
                await station.boot()
                link = csms.stations.find_link("LEAVING")
                assert link is not None
                connection = weakref.ref(link.ws)
                finished = link.finished
                del link
            await asyncio.wait_for(finished.wait(), 5)
            await asyncio.sleep(0.1)  # websockets lets go of it after the handler returns
            assert connection() is None
        finally:
            gc.enable()


class TestSlowPeers:
    async def test_a_client_that_never_finishes_its_handshake_is_dropped(
        self, start_csms: StartCsms
    ) -> None:
        """CSMS_HANDSHAKE_TIMEOUT bounds how long a silent TCP connection is kept."""
        csms = await start_csms(handshake_timeout=0.5)
        reader, writer = await asyncio.open_connection("127.0.0.1", csms.stations.port)
        writer.write(b"GET /ocpp/SLOW HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the rest
        await writer.drain()
        assert 0.3 < await closed_within(reader, 5) < 3
        writer.close()

    async def test_a_station_that_sends_but_never_reads_is_held_by_backpressure(
        self, start_csms: StartCsms
    ) -> None:
        """A station writing CALLs as fast as it can without reading a single answer
        (pacing off, pings far away) soon cannot write any more: the CSMS stops
        reading it once its unsent answers reach the write limit, so what it holds
        for that station stays bounded, whatever the station sends."""
        csms = await start_csms(station_message_rate=0, ws_ping_interval=60, ws_ping_timeout=60)
        _, writer = await raw_upgrade(csms.stations.port, "/ocpp/FLOOD")
        call = Frame(Opcode.TEXT, b'[2,"00000001","Heartbeat",{}]')
        frame = call.serialize(mask=True)
        burst = frame * 1000  # about 37 KB
        sent = 0
        try:
            while sent < 256 * 1024 * 1024:
                writer.write(burst)
                await asyncio.wait_for(writer.drain(), 2)
                sent += len(burst)
        except TimeoutError:
            pass  # the flow stopped: nobody reads our bytes any more
        # Loopback socket buffers hold a few MB; the CSMS itself far less.
        assert sent < 64 * 1024 * 1024
        async with SimStation(ws_url(csms), "OTHER") as other:
            await other.heartbeat()  # the rest of the fleet is served meanwhile
        writer.transport.abort()

    async def test_a_station_that_stops_reading_is_closed_by_the_ping_timeout(
        self, start_csms: StartCsms
    ) -> None:
        """A peer that neither reads nor answers pings (a dead NAT flow, a stuck firmware,
        a trickling sender) holds bounded buffers and is closed after interval + timeout."""
        csms = await start_csms(ws_ping_interval=0.3, ws_ping_timeout=0.3)
        reader, writer = await raw_upgrade(csms.stations.port, "/ocpp/MUTE")
        await poll_until(lambda: csms.stations.find_link("MUTE") is not None, within=2)
        assert await closed_within(reader, 5) < 3
        writer.close()
        await poll_until(lambda: csms.stations.find_link("MUTE") is None, within=5)
