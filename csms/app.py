"""Composition root: settings -> logging -> storage -> services -> listeners.

``run`` serves until SIGTERM/SIGINT, then shuts down in the order that loses
nothing: stop accepting and reading, let the CALLs in hand commit and answer,
close stations with 1001, give the outbox relay a moment to publish what is
pending, stop the HTTP listener, flush storage.
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
from csms.adapters.amqp.publisher import AmqpPublisher
from csms.adapters.amqp.relay import OutboxRelay
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
from csms.services.dispatcher import CommandDispatcher
from csms.services.passwords import PasswordDelivery
from csms.telemetry.loop_lag import LoopLagMonitor
from csms.transport import tls
from csms.transport.admission import ConnectionPolicy
from csms.transport.server import StationServer
from protocols import adapters

log = structlog.get_logger("csms.app")

SHUTDOWN_BUDGET = 8.0
# Of it, what the relay gets to publish the events of the last moments.
RELAY_DRAIN_BUDGET = 3.0


@dataclass(slots=True)
class Running:
    """A started CSMS; tests use it in-process, ``run`` in production."""

    settings: Settings
    storage: Storage
    stations: StationServer
    http: OpsHttp
    commands: CommandDispatcher
    relay: OutboxRelay | None = None
    command_queue: CommandConsumer | None = None
    loop_lag: LoopLagMonitor | None = None
    answers: AnswerRetention | None = None

    async def stop(self) -> None:
        """Shut down in order, each step bounded so the whole stays within the
        contract's 10 s even if a broker or database stops answering."""
        deadline = asyncio.get_running_loop().time() + SHUTDOWN_BUDGET
        if self.loop_lag is not None:
            await self.loop_lag.stop()
        if self.answers is not None:
            await self.answers.stop()
        if self.command_queue is not None:
            await _bounded("command_queue", self.command_queue.stop(), deadline, 1.0)
        await _bounded("commands", self.commands.stop(), deadline, 1.0)
        await _bounded("stations", self.stations.stop(), deadline, SHUTDOWN_BUDGET / 2)
        if self.relay is not None:
            await _bounded(
                "relay", self.relay.stop(RELAY_DRAIN_BUDGET), deadline, RELAY_DRAIN_BUDGET + 0.5
            )
        await _bounded("http", self.http.stop(), deadline, 1.0)
        await _bounded("storage", self.storage.close(), deadline, SHUTDOWN_BUDGET)


async def _bounded(step: str, work: Coroutine[Any, Any, None], deadline: float, cap: float) -> None:
    """Run one shutdown step for at most ``cap`` seconds and never past ``deadline``."""
    remaining = min(cap, deadline - asyncio.get_running_loop().time())
    try:
        await asyncio.wait_for(work, max(remaining, 0.1))
    except TimeoutError:
        log.warning("shutdown_step_slow", step=step, seconds=round(remaining, 1))


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The station listener's TLS context (security profiles 2 and 3), if any."""
    return tls.server_context(settings)


async def start(settings: Settings) -> Running:
    """Open storage (migrating it), then both listeners."""
    tolerances = interop.load(settings.interop_profiles)
    context = tls_context(settings)
    storage = await open_storage(settings.database_url, migrate=True)
    try:
        services = Services.build(
            storage,
            heartbeat_interval=settings.heartbeat_interval,
            accept_unknown_stations=settings.unknown_stations == "accept",
            interop=tolerances,
        )
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

        def broker_state() -> str:
            # With CSMS_RELAY=external, the broker link this process has is the command queue's.
            if relay is not None:
                return relay.broker_state
            return "disabled" if command_queue is None else command_queue.broker_state

        commands = CommandDispatcher(
            storage, services, stations, versions, call_timeout=settings.call_timeout
        )
        passwords = PasswordDelivery(stations, versions)
        stations.add_connect_listener(passwords.on_connect)
        stations.add_connect_listener(commands.on_connect)
        api = Api(storage, services, stations, commands, passwords)
        http = OpsHttp(
            build_app(
                storage,
                broker_state=broker_state,
                extra_routes=api.routes(),
                middlewares=[auth_middleware(settings.api_token)],
                # Without a relay here, this process keeps the backlog gauges fresh
                # (with CSMS_RELAY=external too: a dead relay process must still alarm).
                refresh=functools.partial(refresh, storage, outbox=relay is None),
            )
        )
        await _listen(
            "CSMS_HTTP_PORT", settings.http_port, http.start(settings.host, settings.http_port)
        )
        try:
            await _listen(
                "CSMS_PORT",
                settings.port,
                stations.start(settings.host, settings.port, context),
            )
        except BaseException:
            await http.stop()
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
        settings, storage, stations, http, commands, relay, command_queue, loop_lag, answers
    )


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
    await loop_lag.stop()
    deadline = asyncio.get_running_loop().time() + SHUTDOWN_BUDGET
    await _bounded("relay", relay.stop(RELAY_DRAIN_BUDGET), deadline, RELAY_DRAIN_BUDGET + 0.5)
    await _bounded("http", http.stop(), deadline, 1.0)
    await _bounded("storage", storage.close(), deadline, SHUTDOWN_BUDGET)
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
