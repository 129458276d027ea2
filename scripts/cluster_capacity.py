#!/usr/bin/env python3
"""Capacity of a CSMS cluster on one machine: a benchmark, not part of the product.

Starts ``--processes`` ``csms serve`` processes (CSMS_NODE_ID csms-1..N) on a
fresh PostgreSQL database and fresh RabbitMQ names, connects ``--stations``
lean stations (scripts/loadgen.py) spread evenly over them (what a load
balancer would do; here each station dials its process directly), and then:

1. holds the booted fleet idle for ``--hold`` s: connect and boot times, RSS,
   open files and CPU per process;
2. sends REST commands (TriggerMessage Heartbeat, which the stations accept)
   to a random station through a random process at ``--rate``/s for
   ``--duration`` s: latency p50/p99/max, local (the process asked holds the
   station) and remote (the command crosses RabbitMQ) apart, and errors;
3. measures ``--takeovers`` takeovers: a station booted on process A connects
   to B while its socket on A stays open; the time from B's handshake until A
   closes the old socket;
4. with ``--kill``, SIGKILLs the last process: its stations reconnect after a
   jittered 1-10 s backoff to the survivors in turn and boot again; the time until
   all are booted, and failures (not booted within ``--recover-within`` s).

It refuses ``--kill`` when the survivors could not hold the fleet under the
processes' open-file limit (unless ``--allow-overflow``). Everything it starts
is stopped by PID, and the database and broker names dropped, on any exit::

    python scripts/cluster_capacity.py --stations 3000 --duration 10 --kill

Loopback only; bounded by ``--stations``, ``--duration`` and ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import random
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if __package__ in (None, ""):  # run as a file: make `scripts.loadgen` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts import loadgen

MAX_STATIONS = 60_000
MAX_PROCESSES = 5
MAX_RATE = 1_000.0
MAX_DURATION = 120.0
MAX_TAKEOVERS = 1_000
# Open files a `csms serve` process needs besides its stations' sockets
# (listeners, database pool, broker links, log files, epoll): the margin kept
# under its open-file limit.
FD_HEADROOM = 200
# Stations one load-generator worker holds at most (its own open-file limit).
STATIONS_PER_WORKER = 14_000
COMMAND = ("TriggerMessage", {"requestedMessage": "Heartbeat"})
ID_PREFIX = "CAP-"


# --- pure helpers (tests/unit/test_cluster_capacity.py) -------------------------


def home_of(index: int, processes: int) -> int:
    """The process (0-based) that station ``index`` connects to first: even spread."""
    return index % processes


def workers_needed(stations: int, per_worker: int = STATIONS_PER_WORKER) -> int:
    """Load-generator processes for ``stations``: each under its open-file limit."""
    return max(2, math.ceil(stations / per_worker))


def survivor_load(stations: int, processes: int) -> int:
    """Stations the busiest survivor holds once one of ``processes`` is gone."""
    return math.ceil(stations / (processes - 1))


def kill_fits(stations: int, processes: int, fd_limit: int, headroom: int = FD_HEADROOM) -> bool:
    """Whether ``processes - 1`` survivors can hold the fleet under ``fd_limit``."""
    return survivor_load(stations, processes) + headroom <= fd_limit


def largest_kill_fleet(processes: int, fd_limit: int, headroom: int = FD_HEADROOM) -> int:
    """The largest fleet (a multiple of ``processes``) that ``kill_fits``."""
    per_survivor = fd_limit - headroom
    fleet = per_survivor * (processes - 1)
    return fleet - fleet % processes


def tail(values: Sequence[float]) -> dict[str, float | int]:
    """Count, p50, p99 and max of ``values`` (seconds) in milliseconds."""
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50_ms": loadgen.percentile(ordered, 0.5) * 1000,
        "p99_ms": loadgen.percentile(ordered, 0.99) * 1000,
        "max_ms": ordered[-1] * 1000 if ordered else math.nan,
    }


def cpu_percent(start: loadgen.ProcSample, end: loadgen.ProcSample) -> float:
    """A process's CPU between two samples, in % of one core."""
    seconds = end.at - start.at
    return 100 * (end.cpu_s - start.cpu_s) / seconds if seconds > 0 else math.nan


# --- the stations: loadgen's, spread over the processes, reconnecting --------------


class ClusterWorker(loadgen.Worker):
    """A share of the fleet: station i dials process ``home_of(i)``; a station
    whose connection drops comes back after a jittered backoff to the next
    live process (a round-robin load balancer's choice), and boots again."""

    def __init__(
        self,
        config: loadgen.Config,
        number: int,
        indices: Sequence[int],
        urls: Sequence[str],
        backoff: tuple[float, float],
    ) -> None:
        super().__init__(config, number, indices)
        self.urls = list(urls)
        self.live = list(range(len(urls)))
        self.backoff = backoff
        self.up: dict[int, loadgen.Station] = {}
        self.moved: set[int] = set()  # stations that dial the next live process
        self.turn = 0
        self.stopping = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.kill_at = math.nan
        self.lost = 0
        self.recovered = 0
        self.gave_up = 0
        self.initial: loadgen.WorkerResult = self.result

    def target(self, index: int) -> str:
        if index in self.moved:  # round robin over the live processes
            self.turn += 1
            return self.urls[self.live[self.turn % len(self.live)]]
        return self.urls[home_of(index, len(self.urls))]

    async def _bring_up(self, index: int, start_at: float) -> bool:
        up = await super()._bring_up(index, start_at)
        if up:  # no await since the append: the newest station is this one
            self.up[index] = self.stations[-1]
        return up

    def on_lost(self, station: loadgen.Station) -> None:
        if self.stopping or self.up.get(station.index) is not station:
            return  # a failed attempt, or the end of the run
        del self.up[station.index]
        self.lost += 1
        self.moved.add(station.index)
        task = self.loop.create_task(self._come_back(station.index, time.monotonic()))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _come_back(self, index: int, lost_at: float) -> None:
        await asyncio.sleep(random.uniform(*self.backoff))
        start_at = lost_at if math.isnan(self.kill_at) else self.kill_at
        if await self._bring_up(index, start_at):
            self.recovered += 1
        else:
            self.gave_up += 1

    def arm(self) -> None:
        """From now on count in a fresh result: what the kill costs."""
        self.result = loadgen.WorkerResult()
        self.lost = self.recovered = self.gave_up = 0

    def status(self) -> dict[str, int]:
        return {
            "up": len(self.up),
            "lost": self.lost,
            "recovered": self.recovered,
            "gave_up": self.gave_up,
        }

    async def stop(self) -> None:
        self.stopping = True
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.close_all()


def worker_main(
    config: loadgen.Config,
    number: int,
    indices: list[int],
    urls: list[str],
    backoff: tuple[float, float],
    pipe: Any,
) -> None:
    """Entry point of a worker process: obeys the parent's messages on ``pipe``."""
    loadgen.raise_fd_limit()
    import uvloop  # noqa: PLC0415 - a dependency of csms; only in the workers

    uvloop.run(_worker(config, number, indices, urls, backoff, pipe))


async def _worker(
    config: loadgen.Config,
    number: int,
    indices: list[int],
    urls: list[str],
    backoff: tuple[float, float],
    pipe: Any,
) -> None:
    loop = asyncio.get_running_loop()
    worker = ClusterWorker(config, number, indices, urls, backoff)
    started = time.process_time()
    try:
        connect_at: float = await loop.run_in_executor(None, pipe.recv)
        await worker.connect_all(connect_at)
        pipe.send(("ready", worker.initial))
        while True:
            message = await loop.run_in_executor(None, pipe.recv)
            kind = message[0]
            if kind == "arm":
                worker.arm()
                pipe.send(("armed", None))
            elif kind == "dead":
                _, process, kill_at = message
                worker.live = [i for i in worker.live if i != process]
                worker.kill_at = kill_at
            elif kind == "status":
                pipe.send(("status", worker.status()))
            else:  # "stop"
                break
        await worker.stop()
    finally:
        recovery = worker.result if worker.result is not worker.initial else None
        pipe.send(
            (
                "done",
                {
                    "initial": worker.initial,
                    "recovery": recovery,
                    "status": worker.status(),
                    "cpu_s": time.process_time() - started,
                },
            )
        )


class Fleet:
    """The parent's end of the workers."""

    def __init__(
        self,
        config: loadgen.Config,
        urls: Sequence[str],
        backoff: tuple[float, float],
        started: list[int],
    ) -> None:
        self.config = config
        context = multiprocessing.get_context("spawn")
        shares: list[list[int]] = [[] for _ in range(config.workers)]
        for index in range(config.stations):
            shares[index % config.workers].append(index)
        self.pipes: list[multiprocessing.connection.Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        for number, share in enumerate(shares):
            mine, theirs = context.Pipe()
            process = context.Process(
                target=worker_main,
                args=(config, number, share, list(urls), backoff, theirs),
                daemon=True,
            )
            process.start()
            assert process.pid is not None
            started.append(process.pid)
            self.pipes.append(mine)
            self.processes.append(process)

    def send(self, message: object) -> None:
        for pipe in self.pipes:
            pipe.send(message)

    async def gather(self, kind: str, within: float) -> list[Any]:
        deadline = time.monotonic() + within
        return await asyncio.to_thread(loadgen._gather, self.pipes, kind, deadline, lambda: None)

    async def status(self) -> dict[str, int]:
        self.send(("status",))
        total: dict[str, int] = {}
        for part in await self.gather("status", 30):
            loadgen._merge(total, part)
        return total

    async def stop(self) -> list[dict[str, Any]]:
        self.send(("stop",))
        return await self.gather("done", 30)

    def end(self) -> None:
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()  # SIGTERM to this worker's PID
                process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)


def merged(parts: Sequence[loadgen.WorkerResult]) -> loadgen.WorkerResult:
    total = loadgen.WorkerResult()
    for part in parts:
        total.connected += part.connected
        total.booted += part.booted
        loadgen._merge(total.connect_failures, part.connect_failures)
        loadgen._merge(total.retries, part.retries)
        total.connect_s.extend(part.connect_s)
        total.booted_s.extend(part.booted_s)
        total.server_calls += part.server_calls
        total.stale_answers += part.stale_answers
    return total


def fleet_figures(result: loadgen.WorkerResult, stations: int) -> dict[str, Any]:
    connects, boots = sorted(result.connect_s), sorted(result.booted_s)
    return {
        "connected": result.connected,
        "booted": result.booted,
        "failures": result.connect_failures,
        "retries": result.retries,
        "connect_p50_s": loadgen.percentile(connects, 0.5),
        "connect_p99_s": loadgen.percentile(connects, 0.99),
        "booted_p50_s": loadgen.percentile(boots, 0.5),
        "booted_p99_s": loadgen.percentile(boots, 0.99),
        "all_booted_s": boots[-1] if boots and len(boots) >= stations else math.nan,
    }


# --- the cluster ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def open_files(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


@dataclass(slots=True)
class Node:
    """One `csms serve` child."""

    node_id: str
    port: int
    http_port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    samples: dict[str, loadgen.ProcSample] = field(default_factory=dict)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def sample(self, name: str) -> None:
        with contextlib.suppress(OSError):
            self.samples[name] = loadgen.read_proc(self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass(frozen=True, slots=True)
class Names:
    """This run's database and broker names."""

    run: str
    database: str
    exchange: str
    command_queue: str

    @classmethod
    def fresh(cls) -> Names:
        run = secrets.token_hex(4)
        return cls(
            run,
            f"csms_bench_{run}",
            f"csms.bench.cap.{run}",
            f"csms.bench.cap.{run}.commands",
        )


def with_database(base: str, database: str) -> str:
    return base.rstrip("/") + "/" + database


async def create_database(base: str, names: Names) -> None:
    import asyncpg  # noqa: PLC0415 - a dependency of csms

    connection = await asyncpg.connect(with_database(base, "postgres"))
    try:
        await connection.execute(f'CREATE DATABASE "{names.database}"')
    finally:
        await connection.close()


async def drop_services(base: str, amqp_url: str, names: Names) -> list[str]:
    """Drop the database and delete the broker names; what failed, as text."""
    import aio_pika  # noqa: PLC0415 - a dependency of csms
    import aiormq.exceptions  # noqa: PLC0415
    import asyncpg  # noqa: PLC0415

    problems = []
    try:
        connection = await asyncpg.connect(with_database(base, "postgres"))
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{names.database}" WITH (FORCE)')
        finally:
            await connection.close()
    except (OSError, asyncpg.PostgresError) as exc:
        problems.append(f"database {names.database}: {exc}")
    try:
        broker = await aio_pika.connect(amqp_url)
        async with broker:
            for kind, name in (
                ("queue", names.command_queue),
                ("exchange", names.exchange),
                ("exchange", f"{names.exchange}.nodes"),
            ):
                channel = await broker.channel()
                try:
                    if kind == "queue":
                        await channel.queue_delete(name)
                    else:
                        await channel.exchange_delete(name)
                except (aiormq.exceptions.AMQPError, RuntimeError, OSError) as exc:
                    problems.append(f"{kind} {name}: {exc}")
                with contextlib.suppress(aiormq.exceptions.AMQPError, RuntimeError, OSError):
                    await channel.close()
    except (OSError, RuntimeError) as exc:
        problems.append(f"broker: {exc}")
    return problems


def limit_open_files(limit: int) -> None:
    """In a child before exec: RLIMIT_NOFILE soft limit ``limit`` (<= hard)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))


CSMS = [sys.executable, "-m", "csms"]


def csms_env(options: argparse.Namespace, names: Names, node_id: str = "") -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CSMS_")}
    env.update(
        CSMS_DATABASE_URL=with_database(options.database_url_base, names.database),
        CSMS_AMQP_URL=options.amqp_url,
        CSMS_AMQP_EXCHANGE=names.exchange,
        CSMS_AMQP_COMMAND_QUEUE=names.command_queue,
        CSMS_UNKNOWN_STATIONS="accept",
        CSMS_HOST="127.0.0.1",
        CSMS_LOG_LEVEL=options.log_level,
    )
    if node_id:
        env["CSMS_NODE_ID"] = node_id
    return env


def start_node(
    options: argparse.Namespace, names: Names, number: int, out: Path, started: list[int]
) -> Node:
    node_id = f"csms-{number}"
    port, http_port = free_port(), free_port()
    log_path = out / f"{node_id}.log"
    fd_limit = int(options.fd_limit)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [*CSMS, "serve", "--port", str(port), "--http-port", str(http_port)],
            env=csms_env(options, names, node_id),
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: limit_open_files(fd_limit),  # noqa: PLW1509 - no threads yet
        )
    started.append(proc.pid)
    return Node(node_id, port, http_port, proc, log_path)


async def wait_ready(nodes: Sequence[Node], within: float) -> None:
    """Until every node's /health/ready says ready with the broker up."""
    import aiohttp  # noqa: PLC0415 - a dependency of csms

    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        for node in nodes:
            while True:
                if not node.alive():
                    raise SystemExit(
                        f"cluster_capacity: {node.node_id} exited; see {node.log_path}"
                    )
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with http.get(
                        f"{node.http_url}/health/ready", timeout=aiohttp.ClientTimeout(total=2)
                    ) as answer:
                        body = await answer.json()
                        if answer.status == 200 and body["checks"].get("broker") == "up":
                            break
                if time.monotonic() > deadline:
                    raise SystemExit(f"cluster_capacity: {node.node_id} not ready in {within} s")
                await asyncio.sleep(0.2)


# --- REST commands ---------------------------------------------------------------------


@dataclass(slots=True)
class CommandTimes:
    local: array[float] = field(default_factory=lambda: array("d"))
    remote: array[float] = field(default_factory=lambda: array("d"))
    errors: dict[str, int] = field(default_factory=dict)
    late: int = 0  # sent more than 10 ms after their slot (the client fell behind)


async def rest_commands(
    nodes: Sequence[Node], stations: int, rate: float, duration: float, seed: int
) -> CommandTimes:
    """Open loop: a command every 1/rate s to a random station through a random
    process; its latency counted as local or remote by the station's home."""
    import aiohttp  # noqa: PLC0415

    rng = random.Random(seed)
    times = CommandTimes()
    action, payload = COMMAND
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}

    async def one(http: aiohttp.ClientSession, node: int, index: int) -> None:
        url = f"{nodes[node].http_url}/api/v1/stations/{ID_PREFIX}{index:06d}/ocpp/{action}"
        sent = time.monotonic()
        try:
            async with http.post(url, data=body, headers=headers) as answer:
                reply = await answer.read()
                status = answer.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            key = type(exc).__name__
            times.errors[key] = times.errors.get(key, 0) + 1
            return
        took = time.monotonic() - sent
        if status != 200 or json.loads(reply) != {"status": "Accepted"}:
            key = f"http_{status}"
            times.errors[key] = times.errors.get(key, 0) + 1
            return
        home = home_of(index, len(nodes))
        (times.local if home == node else times.remote).append(took)

    connector = aiohttp.TCPConnector(limit=0, limit_per_host=200)
    timeout = aiohttp.ClientTimeout(total=40)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as http,
        asyncio.TaskGroup() as group,
    ):
        start = time.monotonic() + 0.1
        total = int(rate * duration)
        for k in range(total):
            due = start + k / rate
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -0.01:
                times.late += 1
            group.create_task(one(http, rng.randrange(len(nodes)), rng.randrange(stations)))
    return times


# --- takeover ------------------------------------------------------------------------


@dataclass(slots=True)
class Takeovers:
    seconds: array[float] = field(default_factory=lambda: array("d"))
    close_codes: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)


async def takeovers(nodes: Sequence[Node], samples: int, run: str) -> Takeovers:
    """Station TK-k boots on process A, then connects to B with its socket on A
    left open: the time from B's handshake until A closes the old socket."""
    from websockets.asyncio.client import connect  # noqa: PLC0415
    from websockets.exceptions import WebSocketException  # noqa: PLC0415
    from websockets.typing import Subprotocol  # noqa: PLC0415

    found = Takeovers()
    boot = [
        2,
        f"{run}-boot",
        "BootNotification",
        {"chargePointVendor": "LoadGen", "chargePointModel": "LG-1"},
    ]
    for k in range(samples):
        old_node, new_node = k % len(nodes), (k + 1 + k // len(nodes)) % len(nodes)
        if new_node == old_node:
            new_node = (old_node + 1) % len(nodes)
        station_id = f"TK-{run}-{k:04d}"
        try:
            async with asyncio.timeout(15):
                old = await connect(
                    f"{nodes[old_node].ws_url}/{station_id}",
                    subprotocols=[Subprotocol(loadgen.OCPP16)],
                    compression=None,
                )
                try:
                    await old.send(json.dumps(boot))
                    answer = json.loads(await old.recv())
                    if answer[0] != loadgen.CALLRESULT:
                        raise loadgen.ConnectError("boot refused")
                    new = await connect(
                        f"{nodes[new_node].ws_url}/{station_id}",
                        subprotocols=[Subprotocol(loadgen.OCPP16)],
                        compression=None,
                    )
                    opened = time.monotonic()
                    try:
                        async with asyncio.timeout(5):
                            await old.wait_closed()
                        found.seconds.append(time.monotonic() - opened)
                        code = str(old.close_code)
                        found.close_codes[code] = found.close_codes.get(code, 0) + 1
                    finally:
                        await new.close()
                finally:
                    await old.close()
        except (OSError, TimeoutError, WebSocketException, loadgen.ConnectError) as exc:
            key = type(exc).__name__
            found.failures[key] = found.failures.get(key, 0) + 1
    return found


async def connections_by_node(base: str, names: Names) -> dict[str, int]:
    import asyncpg  # noqa: PLC0415

    connection = await asyncpg.connect(with_database(base, names.database))
    try:
        rows = await connection.fetch(
            "SELECT node_id, count(*) AS n FROM connections GROUP BY node_id ORDER BY node_id"
        )
    finally:
        await connection.close()
    return {str(row["node_id"]): int(row["n"]) for row in rows}


async def cluster_view(base: str, names: Names) -> dict[str, Any]:
    """Per node: connection rows, and seconds since its lease was renewed."""
    import asyncpg  # noqa: PLC0415

    connection = await asyncpg.connect(with_database(base, names.database))
    try:
        leases = await connection.fetch(
            "SELECT node_id, extract(epoch FROM now() - seen_at) AS age FROM nodes"
        )
        rows = await connection.fetch("SELECT node_id, count(*) AS n FROM connections GROUP BY 1")
    finally:
        await connection.close()
    counts = {str(row["node_id"]): int(row["n"]) for row in rows}
    return {
        str(row["node_id"]): {
            "rows": counts.get(str(row["node_id"]), 0),
            "lease_age_s": round(float(row["age"]), 1),
        }
        for row in leases
    }


# --- the run ---------------------------------------------------------------------------


def services_sample() -> dict[int, tuple[str, float]]:
    return loadgen.services_cpu_s()


class Run:
    """One benchmark: what it started (PIDs), and the figures."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.names = Names.fresh()
        self.out = Path(options.out or f"/tmp/cluster_capacity_{self.names.run}")  # noqa: S108
        self.started: list[int] = []
        self.nodes: list[Node] = []
        self.fleet: Fleet | None = None
        self.database_created = False
        self.report: dict[str, Any] = {"run": self.names.run}
        self.marks: dict[str, tuple[float, dict[int, tuple[str, float]], float]] = {}

    def mark(self, name: str) -> None:
        """CPU of every node, the services and the machine at this moment."""
        for node in self.nodes:
            if node.alive():
                node.sample(name)
        self.marks[name] = (time.monotonic(), services_sample(), loadgen.machine_busy_s())

    def phase_cpu(self, start: str, end: str) -> dict[str, Any]:
        at0, services0, busy0 = self.marks[start]
        at1, services1, busy1 = self.marks[end]
        seconds = at1 - at0
        nodes = {
            node.node_id: round(cpu_percent(node.samples[start], node.samples[end]), 1)
            for node in self.nodes
            if start in node.samples and end in node.samples
        }
        others = loadgen.services_cpu_percent(services0, services1, seconds, relay=False)
        return {
            "seconds": round(seconds, 1),
            "csms_cpu_percent": nodes,
            "services_cpu_percent": {k: round(v, 1) for k, v in others.items()},
            "machine_busy_cores": round((busy1 - busy0) / max(seconds, 1e-9), 2),
        }

    def memory(self, name: str, held: dict[str, int] | None = None) -> dict[str, Any]:
        """RSS and open files of each node; with ``held`` (stations per node),
        KiB per station in all and added since the node started."""
        found: dict[str, Any] = {}
        for node in self.nodes:
            if name not in node.samples:
                continue
            rss = node.samples[name].rss_kib
            figures: dict[str, Any] = {
                "rss_mib": round(rss / 1024, 1),
                "open_files": open_files(node.proc.pid) if node.alive() else None,
            }
            count = (held or {}).get(node.node_id, 0)
            if count and "start" in node.samples:
                figures["stations"] = count
                figures["kib_per_station"] = round(rss / count, 1)
                figures["kib_added_per_station"] = round(
                    (rss - node.samples["start"].rss_kib) / count, 1
                )
            found[node.node_id] = figures
        return found

    async def loop_lag(self) -> dict[str, dict[str, dict[float, float]]]:
        """Each node's event-loop lag histogram (its /metrics)."""
        found = {}
        for node in self.nodes:
            if node.alive():
                url = f"{node.http_url}/metrics"
                found[node.node_id] = await asyncio.to_thread(loadgen.server_histograms, url)
        return found

    async def execute(self) -> dict[str, Any]:
        options = self.options
        async with asyncio.timeout(options.max_seconds):
            await self._cluster()
            await self._connect()
            await self._hold()
            await self._commands()
            await self._takeover()
            if options.kill:
                await self._kill()
            assert self.fleet is not None
            done = await self.fleet.stop()
            self.report["loadgen_cpu_s"] = round(sum(part["cpu_s"] for part in done), 1)
            recovered = [part["recovery"] for part in done if part["recovery"] is not None]
            if options.kill and recovered:
                back = merged(recovered)
                figures = fleet_figures(back, 0)
                within = sum(1 for s in back.booted_s if s <= options.recover_within)
                figures["booted_within_s"] = options.recover_within
                figures["booted_within"] = within
                figures["not_booted_within"] = self.report["kill"]["stations_on_killed"] - within
                self.report["kill"]["reconnect"] = figures
        return self.report

    async def _cluster(self) -> None:
        options = self.options
        self.out.mkdir(parents=True, exist_ok=True)
        await create_database(options.database_url_base, self.names)
        self.database_created = True
        migrate = await asyncio.to_thread(
            subprocess.run,
            [*CSMS, "migrate"],
            env=csms_env(options, self.names),
            capture_output=True,
            check=False,
        )
        if migrate.returncode != 0:
            raise SystemExit(f"cluster_capacity: csms migrate failed: {migrate.stderr.decode()}")
        for number in range(1, options.processes + 1):
            self.nodes.append(start_node(options, self.names, number, self.out, self.started))
        await wait_ready(self.nodes, 60)
        self.report["nodes"] = {
            node.node_id: {"pid": node.proc.pid, "ws": node.ws_url, "http": node.http_url}
            for node in self.nodes
        }

    async def _connect(self) -> None:
        options = self.options
        config = loadgen.Config(
            url=self.nodes[0].ws_url,
            workload="idle",
            stations=options.stations,
            workers=options.workers or workers_needed(options.stations),
            duration=0.0,
            warmup=0.0,
            rate=0.0,
            ocpp=options.ocpp,
            id_prefix=ID_PREFIX,
            id_tag="LOADGEN1",
            call_timeout=30.0,
            connect_timeout=options.connect_timeout,
            connect_concurrency=options.connect_concurrency,
            uvloop=True,
            nonce=secrets.token_hex(3) + "-",
            retries=30,
            answer_calls=True,
        )
        self.mark("start")
        self.fleet = Fleet(
            config, [node.ws_url for node in self.nodes], tuple(options.backoff), self.started
        )
        connect_at = time.monotonic() + 2.0  # every worker is up by then
        self.fleet.send(connect_at)
        rounds = math.ceil(options.stations / config.workers / config.connect_concurrency)
        ready = await self.fleet.gather("ready", options.connect_timeout * rounds + 120)
        self.mark("booted")
        initial = merged(ready)
        self.report["fleet"] = {
            "stations": options.stations,
            "processes": options.processes,
            "loadgen_workers": config.workers,
            "ocpp": options.ocpp,
            **fleet_figures(initial, options.stations),
            "connect_phase": self.phase_cpu("start", "booted"),
        }

    async def _hold(self) -> None:
        self.mark("hold")
        await asyncio.sleep(self.options.hold)
        self.mark("held")
        held = await connections_by_node(self.options.database_url_base, self.names)
        assert self.fleet is not None
        self.report["hold"] = {
            "memory": self.memory("held", held),
            **self.phase_cpu("hold", "held"),
            "fleet_status": await self.fleet.status(),
            "connections_by_node": held,
        }

    async def _commands(self) -> None:
        options = self.options
        if options.rate <= 0 or options.duration <= 0:
            return
        waited, busy_before = 0.0, math.nan
        if options.wait_quiet:  # the idle fleet itself keeps the machine a little busy
            waited, busy_before = await asyncio.to_thread(
                loadgen.wait_quiet, options.wait_quiet, 0.5
            )
        lag_before = await self.loop_lag()
        self.mark("rest")
        cpu_before = time.process_time()
        times = await rest_commands(
            self.nodes, options.stations, options.rate, options.duration, seed=1
        )
        client_cpu = time.process_time() - cpu_before
        self.mark("rested")
        lag_after = await self.loop_lag()
        lag = {
            node: {
                key.removeprefix("server_"): value
                for key, value in loadgen.server_tails(lag_before[node], after).items()
            }
            for node, after in lag_after.items()
            if node in lag_before
        }
        both = [*times.local, *times.remote]
        self.report["rest"] = {
            "command": f"POST /api/v1/stations/{{id}}/ocpp/{COMMAND[0]} {json.dumps(COMMAND[1])}",
            "rate": options.rate,
            "duration_s": options.duration,
            "all": tail(both),
            "local": tail(times.local),
            "remote": tail(times.remote),
            "errors": times.errors,
            "late_sends": times.late,
            "rest_client_cpu_s": round(client_cpu, 2),
            "csms_loop_lag_and_commits": lag,
            "quiet_wait_s": round(waited, 1),
            "machine_busy_before_cores": round(busy_before, 2),
            "memory": self.memory("rested"),
            **self.phase_cpu("rest", "rested"),
        }

    async def _takeover(self) -> None:
        if self.options.takeovers <= 0:
            return
        found = await takeovers(self.nodes, self.options.takeovers, self.names.run)
        self.report["takeover"] = {
            **tail(found.seconds),
            "close_codes": found.close_codes,
            "failures": found.failures,
        }

    async def _kill(self) -> None:
        options, fleet = self.options, self.fleet
        assert fleet is not None
        victim = self.nodes[-1]
        fleet.send(("arm",))
        await fleet.gather("armed", 30)
        before = await fleet.status()
        self.mark("kill")
        victim.proc.send_signal(signal.SIGKILL)
        kill_at = time.monotonic()
        fleet.send(("dead", len(self.nodes) - 1, kill_at))
        victim.proc.wait()
        expected = sum(
            1 for i in range(options.stations) if home_of(i, len(self.nodes)) == len(self.nodes) - 1
        )
        status: dict[str, int] = {}
        all_back = math.nan
        rows_gone = math.nan
        deadline = kill_at + options.recover_within + 30
        timeline: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            status = await fleet.status()
            if not timeline or time.monotonic() - kill_at - timeline[-1]["at_s"] >= 5:
                view = await cluster_view(options.database_url_base, self.names)
                timeline.append(
                    {"at_s": round(time.monotonic() - kill_at, 1), "up": status["up"], **view}
                )
            if math.isnan(rows_gone):
                rows = await connections_by_node(options.database_url_base, self.names)
                if rows.get(victim.node_id, 0) == 0:
                    rows_gone = time.monotonic() - kill_at
            settled = status["recovered"] + status["gave_up"] == status["lost"]
            if status["lost"] >= expected and settled and math.isnan(all_back):
                all_back = time.monotonic() - kill_at
            if not math.isnan(all_back) and not math.isnan(rows_gone):
                break
        self.mark("recovered")
        rows = await connections_by_node(options.database_url_base, self.names)
        self.report["kill"] = {
            "killed": victim.node_id,
            "stations_on_killed": expected,
            "status_before": before,
            "status_after": status,
            "all_back_polled_s": all_back,  # the parent polls every 0.5 s
            "dead_node_rows_closed_s": rows_gone,
            "connections_by_node": rows,
            "timeline": timeline,
            "survivors_alive": [n.node_id for n in self.nodes if n is not victim and n.alive()],
            "memory": self.memory("recovered", rows),
            **self.phase_cpu("kill", "recovered"),
        }

    def stop_processes(self) -> None:
        """Stop everything this run started, by PID: workers, then the nodes."""
        if self.fleet is not None:
            with contextlib.suppress(OSError, EOFError, BrokenPipeError):
                self.fleet.send(("stop",))
            self.fleet.end()
        for node in self.nodes:
            if node.alive():
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes:
            try:
                node.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait(timeout=10)


def check_options(options: argparse.Namespace) -> None:
    for url in (options.database_url_base, options.amqp_url):
        host = urlsplit(url).hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"cluster_capacity: {url!r} is not on this machine (loopback only)")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    options.fd_limit = min(options.fd_limit or hard, hard)
    per_node = math.ceil(options.stations / options.processes)
    if per_node + FD_HEADROOM > options.fd_limit:
        raise SystemExit(
            f"cluster_capacity: {per_node} stations per process do not fit under its "
            f"open-file limit {options.fd_limit}; use more --processes"
        )
    workers = options.workers or workers_needed(options.stations)
    if math.ceil(options.stations / workers) + FD_HEADROOM > hard:
        raise SystemExit("cluster_capacity: too few --workers for the open-file limit")
    if options.kill and not kill_fits(options.stations, options.processes, options.fd_limit):
        largest = largest_kill_fleet(options.processes, options.fd_limit)
        message = (
            f"cluster_capacity: after the kill {options.processes - 1} processes would hold "
            f"{survivor_load(options.stations, options.processes)} stations each, over "
            f"their open-file limit {options.fd_limit} (hard limit {hard}); the largest "
            f"fleet that fits is {largest}"
        )
        if not options.allow_overflow:
            raise SystemExit(message + " (--allow-overflow runs it anyway)")
        print(message + ": running it anyway (--allow-overflow)", file=sys.stderr)


def _bounded(kind: type[float] | type[int], low: float, high: float) -> Any:
    return loadgen._bounded(kind, low, high)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--stations", type=_bounded(int, 1, MAX_STATIONS), default=3_000)
    p.add_argument("--processes", type=_bounded(int, 2, MAX_PROCESSES), default=3)
    p.add_argument("--workers", type=_bounded(int, 0, 32), default=0, help="0: enough for fds")
    p.add_argument("--ocpp", choices=("1.6", "2.0.1", "both"), default="both")
    p.add_argument("--rate", type=_bounded(float, 0, MAX_RATE), default=200.0)
    p.add_argument("--duration", type=_bounded(float, 0, MAX_DURATION), default=30.0)
    p.add_argument("--hold", type=_bounded(float, 0, 300), default=10.0, help="idle seconds")
    p.add_argument("--takeovers", type=_bounded(int, 0, MAX_TAKEOVERS), default=100)
    p.add_argument("--kill", action="store_true", help="SIGKILL the last process at the end")
    p.add_argument("--recover-within", type=_bounded(float, 1, 300), default=60.0)
    p.add_argument(
        "--backoff",
        type=_bounded(float, 0, 60),
        nargs=2,
        default=[1.0, 10.0],
        metavar=("MIN", "MAX"),
        help="a dropped station waits uniform(MIN, MAX) s before it reconnects",
    )
    p.add_argument(
        "--allow-overflow", action="store_true", help="--kill even when the survivors' fds cannot"
    )
    p.add_argument(
        "--fd-limit",
        type=_bounded(int, 0, 1_048_576),
        default=0,
        help="RLIMIT_NOFILE of the csms processes (0: the hard limit)",
    )
    p.add_argument("--connect-timeout", type=_bounded(float, 1, 300), default=120.0)
    p.add_argument("--connect-concurrency", type=_bounded(int, 1, 5000), default=250)
    p.add_argument("--database-url-base", default="postgresql://postgres@127.0.0.1:5432")
    p.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument(
        "--wait-quiet",
        type=_bounded(float, 0, 300),
        default=0.0,
        help="before the commands, wait up to this long for a second with < 0.5 cores busy",
    )
    p.add_argument("--max-seconds", type=_bounded(float, 10, 3600), default=900.0)
    p.add_argument("--out", help="folder for the csms logs (default /tmp/cluster_capacity_RUN)")
    p.add_argument("--json", dest="json_path", help="append the report as a JSON line")
    return p


def print_summary(report: dict[str, Any]) -> None:
    def line(name: str, figures: dict[str, Any]) -> str:
        return (
            f"{name} {figures['count']}: p50 {figures['p50_ms']:.1f} ms, "
            f"p99 {figures['p99_ms']:.1f} ms, max {figures['max_ms']:.1f} ms"
        )

    fleet = report.get("fleet", {})
    if fleet:
        print(
            f"fleet: {fleet['booted']}/{fleet['stations']} booted on {fleet['processes']} "
            f"processes ({fleet['loadgen_workers']} load workers); connect p50/p99 "
            f"{fleet['connect_p50_s']:.1f}/{fleet['connect_p99_s']:.1f} s, booted p50/p99 "
            f"{fleet['booted_p50_s']:.1f}/{fleet['booted_p99_s']:.1f} s, all booted "
            f"{fleet['all_booted_s']:.1f} s; failures {fleet['failures']}"
        )
    hold = report.get("hold")
    if hold:
        print(f"hold: {hold['memory']}; CPU % {hold['csms_cpu_percent']}")
    rest = report.get("rest")
    if rest:
        print(
            f"rest at {rest['rate']:g}/s for {rest['duration_s']:g} s: {line('all', rest['all'])}"
        )
        print(f"  {line('local', rest['local'])}; {line('remote', rest['remote'])}")
        print(f"  errors {rest['errors']}, late sends {rest['late_sends']}")
        print(f"  CPU % {rest['csms_cpu_percent']}, others {rest['services_cpu_percent']}")
    takeover = report.get("takeover")
    if takeover:
        print(
            f"takeover: {line('samples', takeover)}; close codes {takeover['close_codes']}, "
            f"failures {takeover['failures']}"
        )
    kill = report.get("kill")
    if kill:
        reconnect = kill.get("reconnect", {})
        print(
            f"kill {kill['killed']}: {kill['stations_on_killed']} stations on it; "
            f"{kill['status_after']}; reconnect booted p50/p99/max "
            f"{reconnect.get('booted_p50_s', math.nan):.1f}/"
            f"{reconnect.get('booted_p99_s', math.nan):.1f}/"
            f"{reconnect.get('all_booted_s', math.nan):.1f} s after the kill; not booted within "
            f"{reconnect.get('booted_within_s')} s: {reconnect.get('not_booted_within')}; "
            f"failures {reconnect.get('failures')}; dead node's rows closed after "
            f"{kill['dead_node_rows_closed_s']:.1f} s; survivors {kill['memory']}"
        )


def main(argv: list[str] | None = None) -> int:
    options = parser().parse_args(argv)
    check_options(options)
    run = Run(options)
    print(f"cluster_capacity: run {run.names.run}, logs in {run.out}", file=sys.stderr)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    report: dict[str, Any] = {}
    status = 0
    try:
        report = asyncio.run(run.execute())
    except KeyboardInterrupt:
        print("cluster_capacity: interrupted; stopping what it started", file=sys.stderr)
        status = 130
    finally:
        run.stop_processes()
        if run.database_created:
            problems = asyncio.run(
                drop_services(options.database_url_base, options.amqp_url, run.names)
            )
            for problem in problems:
                print(f"cluster_capacity: could not drop {problem}", file=sys.stderr)
        signal.signal(signal.SIGTERM, previous)
        if not report:
            report = run.report
        report["argv"] = sys.argv[1:] if argv is None else argv
        text = json.dumps(report, default=loadgen._jsonable, indent=1)
        print(text)
        if options.json_path:
            with open(options.json_path, "a", encoding="utf-8") as out:
                out.write(json.dumps(report, default=loadgen._jsonable) + "\n")
    print_summary(report)
    failed = report.get("kill", {}).get("reconnect", {}).get("not_booted_within")
    return status or (1 if failed else 0)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
