"""Admission control through a real server: the handshake cap and rate (503
with Retry-After), a handshake storm that connected stations do not feel,
and the per-station message rate (paced, then closed with 1008)."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from csms import metrics
from csms.app import Running
from csms.security import hash_password
from scripts.simulate import SimStation
from tests.integration.conftest import StartCsms, ws_url

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
        csms = await start_csms(handshake_rate=3, handshake_retry_after=4)
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


class TestHandshakeStorm:
    async def test_storm_is_capped_connected_stations_stay_served_and_all_get_in(
        self, start_csms: StartCsms
    ) -> None:
        """120 stations with passwords (scrypt) at once against a cap of 8: the excess gets
        503, a connected station's Heartbeats keep being answered quickly, the in-flight
        count never passes the cap, and every stormer gets in by retrying."""
        cap, stormers = 8, 120
        csms = await start_csms(
            unknown_stations="reject",
            max_concurrent_handshakes=cap,
            handshake_rate=0,
            handshake_retry_after=1,
        )
        digest = hash_password(PASSWORD)
        now = datetime.now(UTC)
        for n in range(stormers):
            await csms.storage.register_station(f"STORM-{n}", password_hash=digest, at=now)
        await csms.storage.register_station("RESIDENT", at=now)
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
            for station in connected:
                await station.heartbeat()
                await station.close()

        refused = sample("csms_handshakes_rejected_total", reason="handshake_capacity")
        assert refused - refused_before > 0, "the storm never hit the cap"
        assert max(in_flight) <= cap
        assert len(latencies) >= 3, storm_seconds
        assert max(latencies) < 1.0, sorted(latencies)[-5:]


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
