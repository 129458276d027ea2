"""Composition root: settings -> logging -> storage -> services -> listeners.

``run`` serves until SIGTERM/SIGINT, then shuts down in the order that loses
nothing, within CSMS_SHUTDOWN_SECONDS (``ShutdownPlan``): readiness answers
503 and the station listener stops accepting at once; stations are closed
with 1001 in waves (each answers the CALL in hand first); the outbox relay
gets a moment to publish what is pending; then the HTTP listener stops and
storage is flushed.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import gc
import signal
import ssl
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog

from csms.adapters.amqp.command_queue import CommandConsumer
from csms.adapters.amqp.node_bus import AmqpNodeBus
from csms.adapters.amqp.publisher import AmqpPublisher
from csms.adapters.amqp.relay import OutboxRelay
from csms.adapters.sealing import PasswordSealer
from csms.adapters.storage import mask_password, open_storage
from csms.core import interop
from csms.core.errors import ConfigurationError
from csms.core.ports import Storage
from csms.core.settings import Settings
from csms.edge.api import Api, auth_middleware
from csms.edge.gauges import refresh
from csms.edge.http import OpsHttp, build_app
from csms.services import Services
from csms.services.answers import AnswerRetention
from csms.services.cluster import ClusterLink
from csms.services.connections import ConnectionService
from csms.services.dispatcher import CommandDispatcher
from csms.services.passwords import PasswordDelivery
from csms.telemetry import metrics
from csms.telemetry.loop_lag import LoopLagMonitor
from csms.transport import tls
from csms.transport.admission import ConnectionPolicy
from csms.transport.server import StationServer
from protocols import adapters

log = structlog.get_logger("csms.app")


@dataclass(frozen=True, slots=True)
class ShutdownPlan:
    """How CSMS_SHUTDOWN_SECONDS is spent: each step done by so many seconds
    after the signal.

    With the default 10 s: station waves from 0 to 5 s, the last stations
    closed (their CALLs in hand answered) by 6 s, the relay done publishing
    by 7 s, the HTTP listener and storage closed by 8 s. The rest, at most
    2 s, is the margin for the process to exit.
    """

    waves: float
    stations: float
    relay: float
    total: float

    @classmethod
    def of(cls, seconds: float) -> ShutdownPlan:
        return cls(
            waves=0.5 * seconds,
            stations=0.6 * seconds,
            relay=0.7 * seconds,
            total=seconds - min(2.0, 0.2 * seconds),
        )


@dataclass(slots=True)
class Running:
    """A started CSMS; tests use it in-process, ``run`` in production."""

    settings: Settings
    storage: Storage
    stations: StationServer
    http: OpsHttp
    commands: CommandDispatcher
    connections: ConnectionService
    link: ClusterLink
    bus: AmqpNodeBus | None = None
    relay: OutboxRelay | None = None
    command_queue: CommandConsumer | None = None
    loop_lag: LoopLagMonitor | None = None
    answers: AnswerRetention | None = None

    async def stop(self) -> None:
        """Shut down in order, each step bounded so the whole stays within
        CSMS_SHUTDOWN_SECONDS even if a broker or database stops answering."""
        loop = asyncio.get_running_loop()
        plan = ShutdownPlan.of(self.settings.shutdown_seconds)
        began = loop.time()
        deadline = began + plan.total
        self.stations.stop_accepting()  # readiness answers 503 from now on
        if self.loop_lag is not None:
            await self.loop_lag.stop()
        if self.answers is not None:
            await self.answers.stop()
        if self.command_queue is not None:
            await _bounded("command_queue", self.command_queue.stop(), deadline, loop.time() + 1.0)
        await _bounded("commands", self.commands.stop(), deadline, loop.time() + 1.0)
        stations_until = began + plan.stations
        await _bounded(
            "stations",
            self.stations.stop(
                window=max(0.0, began + plan.waves - loop.time()),
                grace=plan.stations - plan.waves,
            ),
            deadline,
            stations_until + 0.5,
        )
        await _bounded("connections", self.connections.stop(), deadline, loop.time() + 1.0)
        if self.bus is not None:
            await _bounded("node_bus", self.bus.stop(), deadline, loop.time() + 1.0)
        if self.relay is not None:
            await _stop_relay(self.relay, deadline, began + plan.relay)
        await _bounded("http", self.http.stop(), deadline, loop.time() + 1.0)
        await _bounded("storage", self.storage.close(), deadline, deadline)


async def _bounded(
    step: str, work: Coroutine[Any, Any, None], deadline: float, until: float
) -> None:
    """Run one shutdown step until at most ``until`` and never past ``deadline``
    (loop times)."""
    remaining = min(until, deadline) - asyncio.get_running_loop().time()
    try:
        await asyncio.wait_for(work, max(remaining, 0.1))
    except TimeoutError:
        log.warning("shutdown_step_slow", step=step, seconds=round(remaining, 1))


async def _stop_relay(relay: OutboxRelay, deadline: float, until: float) -> None:
    """Let the relay publish what is pending until ``until``, then stop it."""
    drain = max(0.0, min(until, deadline) - asyncio.get_running_loop().time() - 0.5)
    await _bounded("relay", relay.stop(drain), deadline, until)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The station listener's TLS context (security profiles 2 and 3), if any."""
    return tls.server_context(settings)


async def start(settings: Settings) -> Running:
    """Open storage (migrating it), then both listeners."""
    _name_this_process(settings.node)
    tolerances = interop.load(settings.interop_profiles)
    context = tls_context(settings)
    storage = await _open_storage(settings)
    try:
        services = Services.build(
            storage,
            heartbeat_interval=settings.heartbeat_interval,
            accept_unknown_stations=settings.unknown_stations == "accept",
            abandon_after=timedelta(seconds=settings.abandon_after),
            interop=tolerances,
            node_id=settings.node,
            # SQLite is one process: what is open at its start was left by a crash.
            single_process=storage.dialect != "postgresql",
        )
        connections = services.connections
        versions = adapters()
        stations = StationServer(
            services,
            versions,
            call_timeout=settings.call_timeout,
            ping_interval=settings.ws_ping_interval,
            ping_timeout=settings.ws_ping_timeout,
            max_frame_bytes=settings.max_frame_bytes,
            policy=ConnectionPolicy.from_settings(settings, tolerances),
        )
        relay = _relay(storage, settings) if settings.relay == "inline" else None
        command_queue: CommandConsumer | None = None
        # On PostgreSQL with a broker, processes form a cluster (ADR 0011).
        bus = (
            AmqpNodeBus(settings.amqp_url, settings.amqp_exchange, settings.node)
            if settings.amqp_url and storage.dialect == "postgresql"
            else None
        )

        def broker_state() -> str:
            # With CSMS_RELAY=external, the broker link this process has is the command queue's.
            if relay is not None:
                state = relay.broker_state
            else:
                state = "disabled" if command_queue is None else command_queue.broker_state
            # In a cluster the line to the other processes is a broker link too.
            return "down" if bus is not None and bus.broker_state != "up" else state

        link = ClusterLink(stations, services.connections, bus, call_timeout=settings.call_timeout)
        commands = CommandDispatcher(
            storage, services, link, versions, call_timeout=settings.call_timeout
        )
        passwords = PasswordDelivery(link, versions, storage, await PasswordSealer.load(storage))
        stations.add_connect_listener(link.on_connect)
        stations.add_connect_listener(passwords.on_connect)
        stations.add_connect_listener(commands.on_connect)
        api = Api(storage, services, link, commands, passwords)
        connections.on_lease_lapsed = stations.reconnect_lost
        # Before the listeners: close what an earlier life of this node left open,
        # and link to the other processes before a station can arrive.
        await connections.start()
        if bus is not None:
            bus.start()
        http = OpsHttp(
            build_app(
                storage,
                broker_state=broker_state,
                draining=lambda: stations.draining,
                extra_routes=api.routes(),
                middlewares=[auth_middleware(settings.api_token)],
                # Without a relay here, this process keeps the backlog gauges fresh
                # (with CSMS_RELAY=external too: a dead relay process must still alarm).
                refresh=functools.partial(refresh, storage, outbox=relay is None),
            )
        )
        try:
            await _listen_both(settings, http, stations, context)
        except BaseException:
            if bus is not None:
                await bus.stop()
            await connections.stop()
            raise
    except BaseException:
        await storage.close()
        raise
    if relay is not None:
        relay.start()
    commands.start()
    if settings.amqp_url:
        command_queue = CommandConsumer(settings.amqp_url, settings.amqp_command_queue, commands)
        command_queue.start()
    loop_lag = LoopLagMonitor()
    loop_lag.start()
    answers = AnswerRetention(storage, services.clock)
    answers.start()
    return Running(
        settings,
        storage,
        stations,
        http,
        commands,
        connections,
        link,
        bus,
        relay,
        command_queue,
        loop_lag,
        answers,
    )


def _name_this_process(node_id: str) -> None:
    """Every line this process logs from here on names it (a cluster's logs
    interleave), and so does its metrics page."""
    structlog.contextvars.bind_contextvars(node_id=node_id)
    metrics.NODE.info({"node_id": node_id})


async def _open_storage(settings: Settings) -> Storage:
    """The database, migrated, its station path waiting out short outages."""
    storage = await open_storage(settings.database_url, migrate=True)
    storage.wait_out_outages(settings.database_outage_wait)
    return storage


async def _listen_both(
    settings: Settings, http: OpsHttp, stations: StationServer, tls: ssl.SSLContext | None
) -> None:
    """The operations listener, then the stations' (the first closed if the second fails)."""
    await _listen(
        "CSMS_HTTP_PORT", settings.http_port, http.start(settings.host, settings.http_port)
    )
    try:
        await _listen("CSMS_PORT", settings.port, stations.start(settings.host, settings.port, tls))
    except BaseException:
        await http.stop()
        raise


async def run_relay(settings: Settings) -> None:
    """``csms relay``: publish the outbox until SIGTERM or SIGINT, nothing else.

    For ``CSMS_RELAY=external``: the stations' process then spends no CPU on
    publishing. Any number may run against one database; one leads (the
    same lock as in-process relays), the others stand by. It serves
    /health/* and /metrics on CSMS_HTTP_PORT.
    """
    if not settings.amqp_url:
        raise ConfigurationError("csms relay needs CSMS_AMQP_URL (the broker to publish to)")
    storage = await open_storage(settings.database_url, migrate=True)
    relay = _relay(storage, settings)
    assert relay is not None  # amqp_url is set
    http = OpsHttp(
        build_app(
            storage,
            broker_state=lambda: relay.broker_state,
            refresh=functools.partial(refresh, storage, outbox=False),
        )
    )
    try:
        await _listen(
            "CSMS_HTTP_PORT", settings.http_port, http.start(settings.host, settings.http_port)
        )
    except BaseException:
        await storage.close()
        raise
    relay.start()
    loop_lag = LoopLagMonitor()
    loop_lag.start()
    tune_gc()
    log.info("relay_started", http_port=http.port, database=storage.dialect)
    await _until_signalled()
    log.info("relay_stopping")
    loop = asyncio.get_running_loop()
    plan = ShutdownPlan.of(settings.shutdown_seconds)
    began = loop.time()
    deadline = began + plan.total
    await loop_lag.stop()
    await _stop_relay(
        relay, deadline, began + plan.relay
    )  # no stations: the relay gets their share
    await _bounded("http", http.stop(), deadline, loop.time() + 1.0)
    await _bounded("storage", storage.close(), deadline, deadline)
    log.info("relay_stopped")


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _relay(storage: Storage, settings: Settings) -> OutboxRelay | None:
    """The outbox relay, or None without CSMS_AMQP_URL (events wait in the outbox)."""
    if not settings.amqp_url:
        return None
    log.info(
        "relay_configured",
        broker=mask_password(settings.amqp_url),
        exchange=settings.amqp_exchange,
    )
    connect = functools.partial(AmqpPublisher.connect, settings.amqp_url, settings.amqp_exchange)
    return OutboxRelay(storage, connect, retention=timedelta(hours=settings.outbox_retention_hours))


async def _listen(name: str, port: int, starting: object) -> None:
    assert asyncio.iscoroutine(starting)
    try:
        await starting
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(f"{name}={port}: address already in use") from None
        raise ConfigurationError(f"{name}={port}: cannot listen: {exc.strerror}") from None


def tune_gc() -> None:
    """Fewer, cheaper collections: about a fifth of a loaded process's CPU
    went to the cyclic GC rescanning long-lived objects (docs/benchmarks.md).
    Everything alive after start-up is moved out of its reach; the young
    generation is collected every 50,000 allocations instead of 700."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


async def run(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT."""
    running = await start(settings)
    tune_gc()
    log.info(
        "csms_started",
        port=running.stations.port,
        http_port=running.http.port,
        database=running.storage.dialect,
    )
    await _until_signalled()
    log.info("csms_stopping")
    await running.stop()
    log.info("csms_stopped")
