"""Three `csms serve` processes on one PostgreSQL and one RabbitMQ: one cluster
(contract: "Several processes (a cluster)", docs/adr/0011-cluster.md).

Stations are spread over the processes; the REST API and the AMQP command
queue of every process reach every station; a newer connection of a station
on another process closes the older one; deletion and password rotation hold
across processes; a process SIGKILLed with stations charging loses no
acknowledged event and no command, and its stations are served elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from websockets.exceptions import InvalidStatus

from scripts.simulate import CallError, SimStation
from tests.integration.broker import unique_name
from tests.integration.command_queue_client import command_requester
from tests.integration.polling import poll_until
from tests.integration.test_process import Server, free_port

pytestmark = [pytest.mark.asyncio, pytest.mark.postgres]

NODES = ("csms-a", "csms-b", "csms-c")
PASSWORD_1 = "first-password-of-station"
PASSWORD_2 = "second-password-of-station"


class Cluster:
    """Three processes with one database and one broker (the test's own names)."""

    def __init__(self, database_url: str, amqp_url: str, cwd: Path) -> None:
        self.database_url = database_url
        self.amqp_url = amqp_url
        self.cwd = cwd
        self.exchange = unique_name()
        self.command_queue = unique_name()
        self.nodes: list[Server] = []

    def env(self, node_id: str) -> dict[str, str]:
        return {
            "CSMS_AMQP_URL": self.amqp_url,
            "CSMS_AMQP_EXCHANGE": self.exchange,
            "CSMS_AMQP_COMMAND_QUEUE": self.command_queue,
            "CSMS_NODE_ID": node_id,
            "CSMS_CALL_TIMEOUT": "8",
        }

    async def start(self) -> None:
        self.nodes = list(
            await asyncio.gather(
                *(
                    asyncio.to_thread(Server, self.database_url, self.cwd, **self.env(n))
                    for n in NODES
                )
            )
        )
        # Each process consumes its node queue once its broker link is up.
        for node in self.nodes:
            await poll_until(lambda node=node: ready(node), within=20)

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc.poll() is None:
                node.proc.kill()
                node.proc.wait()

    def ws(self, i: int) -> str:
        return self.nodes[i].ws_url


def ready(node: Server | Balancer) -> bool:
    status, body = node.get("/health/ready")
    return status == 200 and json.loads(body)["checks"].get("broker") == "up"


async def http(
    node: Server | Balancer, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    def send() -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{node.http_port}{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                raw = r.read()
                return int(r.status), json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return int(exc.code), json.loads(raw) if raw else None

    return await asyncio.to_thread(send)


async def register(node: Server, station_id: str, **fields: Any) -> None:
    status, _ = await http(node, "PUT", f"/api/v1/stations/{station_id}", fields)
    assert status in (200, 201)


@pytest.fixture
def database_url(postgres_url: str) -> str:
    return postgres_url


@pytest.fixture
async def cluster(postgres_url: str, amqp_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    started = Cluster(postgres_url, amqp_url, tmp_path)
    try:
        await started.start()
        yield started
    finally:
        started.stop()


class TestAnyProcessReachesAnyStation:
    async def test_rest_and_amqp_commands_through_every_process_reach_every_station(
        self, cluster: Cluster
    ) -> None:
        """A station on each process; a raw Reset through each REST API to each
        station is answered by that station (nine CALLs, three each); a neutral
        command through the shared AMQP queue reaches each; every process lists
        all three connected, with the version each speaks."""
        first = cluster.nodes[0]
        ids = [f"SPREAD-{i}" for i in range(3)]
        stations = []
        for i, station_id in enumerate(ids):
            await register(first, station_id)
            protocol = "ocpp2.0.1" if i == 1 else "ocpp1.6"
            cp = SimStation(cluster.ws(i), station_id, protocol=protocol)
            await cp.connect()
            stations.append(cp)
        try:
            for node in cluster.nodes:
                for cp in stations:
                    payload = (
                        {"type": "Soft"} if cp.ocpp_version == "ocpp1.6" else {"type": "OnIdle"}
                    )
                    status, body = await http(
                        node, "POST", f"/api/v1/stations/{cp.station_id}/ocpp/Reset", payload
                    )
                    assert (status, body) == (200, {"status": "Accepted"})
            assert [len(cp.received_calls) for cp in stations] == [3, 3, 3]
            async with command_requester(cluster.amqp_url) as client:
                client.queue = cluster.command_queue
                for cp in stations:
                    reply = await client.send(
                        {"station_id": cp.station_id, "command": "reset", "type": "soft"}
                    )
                    assert reply["status"] == 200, reply
            assert [len(cp.received_calls) for cp in stations] == [4, 4, 4]
            for node in cluster.nodes:
                _, only = await http(node, "GET", "/api/v1/stations?connected=true")
                assert sorted(s["id"] for s in only["items"]) == ids
                status, page = await http(node, "GET", "/api/v1/stations")
                assert status == 200
                listed = {
                    s["id"]: (s["connected"], s["ocpp_version"], s["node_id"])
                    for s in page["items"]
                }
                assert listed == {
                    "SPREAD-0": (True, "1.6", "csms-a"),
                    "SPREAD-1": (True, "2.0.1", "csms-b"),
                    "SPREAD-2": (True, "1.6", "csms-c"),
                }
            for node, name in zip(cluster.nodes, NODES, strict=True):
                _, text = node.get("/metrics")
                assert f'csms_node_info{{node_id="{name}"}} 1.0'.encode() in text
        finally:
            for cp in stations:
                await cp.close()

    async def test_a_station_no_process_holds_is_409_or_waits_for_any_process(
        self, cluster: Cluster
    ) -> None:
        """Offline everywhere: 409 at once; queued through one process, sent by
        the process it connects to, and completed in the record every process shows."""
        a, b, c = cluster.nodes
        await register(a, "AWAY")
        async with SimStation(cluster.ws(0), "AWAY") as cp:
            await cp.boot()
        await poll_until(lambda: not listed_connected(a, "AWAY"), within=5)
        status, body = await http(b, "POST", "/api/v1/stations/AWAY/ocpp/Reset", {"type": "Soft"})
        assert (status, body["error"]) == (409, "station_not_connected")
        status, queued = await http(
            b, "POST", "/api/v1/stations/AWAY/commands/reset", {"type": "soft", "queue": True}
        )
        assert status == 202
        async with SimStation(cluster.ws(2), "AWAY") as cp:
            received = await cp.wait_for_call("Reset")
            assert received.payload == {"type": "Soft"}

            async def completed() -> bool:
                _, command = await http(a, "GET", f"/api/v1/commands/{queued['id']}")
                return bool(command["status"] == "completed")

            await poll_until(completed, within=10)
        assert len(cp.received_calls) == 1
        del c


class Grumpy(SimStation):
    """Refuses UnlockConnector with a CALLERROR and never answers Reset."""

    async def on_call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        if action == "UnlockConnector":
            raise CallError("NotSupported", "no lock here", {"why": "none"})
        if action == "Reset":
            await asyncio.sleep(60)
        return await super().on_call(action, payload)


class TestTheSameAnswersAcrossProcesses:
    async def test_a_callerror_is_502_and_silence_504_through_another_process(
        self, cluster: Cluster
    ) -> None:
        """The station on A answers CALLERROR: B's REST API says 502 with the
        station's code; the station stays silent: 504 after CSMS_CALL_TIMEOUT,
        each recorded failed on the command."""
        a, b, _ = cluster.nodes
        await register(a, "GRUMPY")
        async with Grumpy(cluster.ws(0), "GRUMPY") as cp:
            await cp.boot()
            status, body = await http(
                b, "POST", "/api/v1/stations/GRUMPY/ocpp/UnlockConnector", {"connectorId": 1}
            )
            assert (status, body["error"], body["code"]) == (
                502,
                "station_call_error",
                "NotSupported",
            )
            assert body["description"] == "no lock here"
            status, body = await http(
                b, "POST", "/api/v1/stations/GRUMPY/ocpp/Reset", {"type": "Soft"}
            )
            assert (status, body["error"]) == (504, "station_timeout")
            _, record = await http(a, "GET", f"/api/v1/commands/{body['command_id']}")
            assert record["status"] == "failed"


class TestTakeover:
    async def test_a_newer_connection_elsewhere_closes_the_older_and_is_served(
        self, cluster: Cluster
    ) -> None:
        """The station's old socket on process A stays open (a half-open TCP
        connection after a network hand-over) while it connects to B: A closes
        the old one, and a command through C reaches the new one only."""
        a, b, c = cluster.nodes
        await register(a, "ROAMING")
        old = SimStation(cluster.ws(0), "ROAMING")
        new = SimStation(cluster.ws(1), "ROAMING")
        await old.connect()
        await old.boot()
        try:
            await new.connect()
            assert await old.wait_closed() == 1000
            assert "newer connection" in (old.close_reason or "")
            status, body = await http(
                c, "POST", "/api/v1/stations/ROAMING/ocpp/Reset", {"type": "Hard"}
            )
            assert (status, body) == (200, {"status": "Accepted"})
            assert [call.action for call in new.received_calls] == ["Reset"]
            assert old.received_calls == []
            _, station = await http(a, "GET", "/api/v1/stations/ROAMING")
            assert station["connected"] is True
        finally:
            await old.close()
            await new.close()
        del b


class TestDeletion:
    async def test_deleting_a_station_closes_it_wherever_it_is_and_it_stays_deleted(
        self, cluster: Cluster
    ) -> None:
        """Deleted through B while connected to A: A closes the socket, no process
        knows the station any more, and it cannot connect again (unknown
        stations are refused), with or without its old password."""
        a, b, c = cluster.nodes
        await register(a, "GONE", password=PASSWORD_1)
        cp = SimStation(cluster.ws(0), "GONE", password=PASSWORD_1)
        await cp.connect()
        await cp.boot()
        try:
            status, _ = await http(b, "DELETE", "/api/v1/stations/GONE")
            assert status == 204
            assert await cp.wait_closed() == 1000
        finally:
            await cp.close()
        await asyncio.sleep(0.5)  # the closed connection's last writes land
        for node in (a, b, c):
            status, _ = await http(node, "GET", "/api/v1/stations/GONE")
            assert status == 404
        for i, password in ((0, PASSWORD_1), (2, None)):
            with pytest.raises(InvalidStatus) as refused:
                async with SimStation(cluster.ws(i), "GONE", password=password):
                    pass
            assert refused.value.response.status_code == 404


class TestPasswordRotation:
    async def test_a_rotation_reaches_the_station_through_any_process(
        self, cluster: Cluster
    ) -> None:
        """Rotated through A while the station is offline: it connects to B with
        its old password and gets the new one there; with the new one it logs
        in on C, after which the old one is refused everywhere. Rotated again
        through C while it is connected to A: delivered at once."""
        a, _, c = cluster.nodes
        await register(a, "ROTATE", password=PASSWORD_1)
        status, _ = await http(a, "POST", "/api/v1/stations/ROTATE/password", {
            "password": PASSWORD_2
        })  # fmt: skip
        assert status in (200, 202)
        async with SimStation(cluster.ws(1), "ROTATE", password=PASSWORD_1) as cp:
            received = await cp.wait_for_call("ChangeConfiguration")
            assert received.payload == {"key": "AuthorizationKey", "value": PASSWORD_2}
        assert cp.password == PASSWORD_2
        async with SimStation(cluster.ws(2), "ROTATE", password=PASSWORD_2) as cp:
            await cp.boot()
        for i in range(3):
            with pytest.raises(InvalidStatus) as refused:
                async with SimStation(cluster.ws(i), "ROTATE", password=PASSWORD_1):
                    pass
            assert refused.value.response.status_code == 401
        third = "third-password-of-station"
        async with SimStation(cluster.ws(0), "ROTATE", password=PASSWORD_2) as cp:
            await cp.boot()
            status, body = await http(c, "POST", "/api/v1/stations/ROTATE/password", {
                "password": third
            })  # fmt: skip
            assert status == 200, body
            assert cp.password == third


def listed_connected(node: Server, station_id: str) -> bool:
    _, body = node.get(f"/api/v1/stations/{station_id}")
    return bool(json.loads(body).get("connected"))


class SlowToAnswer(SimStation):
    """Answers Reset only after a while: the process holding it dies meanwhile."""

    async def on_call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        if action == "Reset":
            await asyncio.sleep(3)
        return await super().on_call(action, payload)


class TestAProcessDies:
    async def test_sigkill_with_stations_charging_loses_no_event_and_no_command(
        self, cluster: Cluster
    ) -> None:
        """Six stations charging, two per process, and a Reset in flight from B
        to a station on A when A is SIGKILLed: A's stations reconnect to B and C
        and are served there; every MeterValues that was answered has its
        meter.values event; the Reset gets an outcome that says the station
        went away, and was received once."""
        a, b, c = cluster.nodes
        ids = [f"CHARGE-{i}" for i in range(6)]
        for station_id in ids:
            await register(b, station_id)
        stations: list[SimStation] = []
        for i, station_id in enumerate(ids):
            kind = SlowToAnswer if i == 0 else SimStation
            cp = kind(cluster.ws(i % 3), station_id)
            await cp.connect()
            await cp.boot()
            stations.append(cp)
        answered: dict[str, int] = dict.fromkeys(ids, 0)
        transactions: dict[str, int] = {}
        for cp in stations:
            transactions[cp.station_id] = await cp.start(1, "TAG-1", 0)

        async def charge(cp: SimStation, rounds: int, meter: int) -> int:
            for k in range(rounds):
                meter += 100
                await cp.meter_values(1, transactions[cp.station_id], meter)
                answered[cp.station_id] += 1
                del k
            return meter

        meters = await asyncio.gather(*(charge(cp, 5, 0) for cp in stations))
        in_flight = asyncio.create_task(
            http(b, "POST", "/api/v1/stations/CHARGE-0/ocpp/Reset", {"type": "Soft"})
        )
        await stations[0].wait_for_call("Reset")
        a.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(a.proc.wait)
        on_a = [cp for i, cp in enumerate(stations) if i % 3 == 0]
        for cp in on_a:
            await cp.wait_closed()
        # A's stations reconnect to the others, as behind a load balancer.
        moved = []
        for j, cp in enumerate(on_a):
            again = SimStation(cluster.ws(1 + j % 2), cp.station_id)
            await again.connect()
            await again.boot()
            moved.append(again)
        status, body = await in_flight
        assert status == 409, body
        assert body["error"] == "station_not_connected"
        assert "disconnected before answering" in body["message"]
        _, record = await http(c, "GET", f"/api/v1/commands/{body['command_id']}")
        assert record["status"] == "failed"
        assert [call.action for call in stations[0].received_calls] == ["Reset"]
        assert moved[0].received_calls == []
        live = [moved[0] if i == 0 else moved[1] if i == 3 else cp for i, cp in enumerate(stations)]
        finals = await asyncio.gather(
            *(charge(cp, 3, meter) for cp, meter in zip(live, meters, strict=True))
        )
        for cp, meter in zip(live, finals, strict=True):
            await cp.stop(transactions[cp.station_id], meter)
        for cp in [*stations, *moved]:
            await cp.close()
        events = await stored_events(cluster.database_url)
        for station_id in ids:
            kinds = [e for s, e in events if s == station_id]
            assert kinds.count("meter.values") == answered[station_id] == 8, station_id
            assert kinds.count("transaction.ended") == 1
        for node in (b, c):

            async def nobody_connected(node: Server = node) -> bool:
                _, page = await http(node, "GET", "/api/v1/stations")
                return not any(s["connected"] for s in page["items"])

            await poll_until(nobody_connected, within=5)


async def stored_events(database_url: str) -> list[tuple[str, str]]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch("SELECT station_id, type FROM outbox ORDER BY seq")
    finally:
        await connection.close()
    return [(r["station_id"], r["type"]) for r in rows]


HAPROXY_CFG = """
global
    maxconn 2000
defaults
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 60s
    default-server inter 500ms fall 2 rise 1
frontend ocpp
    mode tcp
    bind 127.0.0.1:{ws}
    default_backend csms_ocpp
backend csms_ocpp
    mode tcp
    balance leastconn
    option httpchk
    http-check send meth GET uri /health/ready
{ws_servers}
frontend api
    mode http
    bind 127.0.0.1:{http}
    default_backend csms_api
backend csms_api
    mode http
    balance roundrobin
    option httpchk
    http-check send meth GET uri /health/ready
{http_servers}
"""


class TestBehindHaproxy:
    async def test_stations_and_requests_through_haproxy_reach_each_other(
        self, cluster: Cluster, tmp_path: Path
    ) -> None:
        """Debian's HAProxy in front of both listeners, no stickiness: six
        stations spread over the three processes; a command to each through
        the balancer (any process answers) reaches it."""
        binary = shutil.which("haproxy")
        if binary is None:
            pytest.skip("haproxy is not installed (apt-get install haproxy)")
        ws_port, http_port = free_port(), free_port()
        config = tmp_path / "haproxy.cfg"
        config.write_text(
            HAPROXY_CFG.format(
                ws=ws_port,
                http=http_port,
                ws_servers="\n".join(
                    f"    server n{i} 127.0.0.1:{n.port} check port {n.http_port}"
                    for i, n in enumerate(cluster.nodes)
                ),
                http_servers="\n".join(
                    f"    server n{i} 127.0.0.1:{n.http_port} check"
                    for i, n in enumerate(cluster.nodes)
                ),
            )
        )
        proxy = await asyncio.create_subprocess_exec(
            binary,
            "-db",
            "-f",
            str(config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        stations: list[SimStation] = []
        try:
            front = Balancer(http_port)
            await poll_until(lambda: ready(front), within=10)
            for i in range(6):
                await register(cluster.nodes[0], f"LB-{i}")
                cp = SimStation(f"ws://127.0.0.1:{ws_port}/ocpp", f"LB-{i}")
                await cp.connect()
                await cp.boot()
                stations.append(cp)
            holders = set()
            for cp in stations:
                _, station = await http(front, "GET", f"/api/v1/stations/{cp.station_id}")
                assert station["connected"] is True
                status, body = await http(
                    front, "POST", f"/api/v1/stations/{cp.station_id}/ocpp/Reset", {"type": "Soft"}
                )
                assert (status, body) == (200, {"status": "Accepted"})
                assert [c.action for c in cp.received_calls] == ["Reset"]
                holders.add(await held_by(cluster, cp.station_id))
            assert len(holders) == 3  # leastconn spread them over every process
        finally:
            for cp in stations:
                await cp.close()
            proxy.terminate()
            await proxy.wait()


class Balancer:
    """The balancer's HTTP front, shaped like a Server for ``http`` and ``ready``."""

    def __init__(self, http_port: int) -> None:
        self.http_port = http_port

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as r:
                return int(r.status), bytes(r.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())
        except OSError:  # not listening yet
            return 0, b"{}"


async def held_by(cluster: Cluster, station_id: str) -> str:
    connection = await asyncpg.connect(cluster.database_url)
    try:
        node: str = await connection.fetchval(
            "SELECT node_id FROM connections WHERE station_id = $1 ORDER BY epoch DESC LIMIT 1",
            station_id,
        )
    finally:
        await connection.close()
    return node
