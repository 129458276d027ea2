"""The operations listener: health, metrics (and the REST API, csms/edge/api.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from csms.core.errors import StorageError
from csms.core.ports import StorageHealth
from csms.telemetry import metrics

log = structlog.get_logger("csms.http")

BrokerState = Callable[[], str]
"""Returns "up", "down" or "disabled"."""

READY_TIMEOUT = 2.0


def build_app(
    storage: StorageHealth,
    broker_state: BrokerState,
    extra_routes: list[web.AbstractRouteDef] | None = None,
    middlewares: list[Any] | None = None,
    refresh: Callable[[], Awaitable[None]] | None = None,
    draining: Callable[[], bool] | None = None,
) -> web.Application:
    """The operations app; ``refresh`` updates the gauges read from the database
    before each scrape (skipped, with a warning, when the database is slow or down);
    while ``draining()`` (a shutdown closing the stations) readiness is 503, so that
    a load balancer sends new stations elsewhere."""
    app = web.Application(middlewares=middlewares or [])

    async def live(_: web.Request) -> web.Response:
        return web.json_response({"status": "live"})

    async def ready(_: web.Request) -> web.Response:
        try:
            database_up = await asyncio.wait_for(storage.ping(), READY_TIMEOUT)
        except TimeoutError:
            database_up = False
        checks: dict[str, str | bool] = {
            "database": "up" if database_up else "down",
            "broker": broker_state(),
        }
        ready = database_up
        if draining is not None:
            checks["draining"] = draining()
            ready = ready and not checks["draining"]
        body = {"status": "ready" if ready else "unready", "checks": checks}
        return web.json_response(body, status=200 if ready else 503)

    async def metrics_text(_: web.Request) -> web.Response:
        if refresh is not None:
            try:
                await asyncio.wait_for(refresh(), READY_TIMEOUT)
            except (StorageError, TimeoutError) as exc:
                log.warning("metrics_not_refreshed", error=str(exc) or type(exc).__name__)
        # The exposition is built synchronously; at a few hundred series it
        # takes well under a millisecond.
        payload = generate_latest(metrics.REGISTRY)
        response = web.Response(body=payload)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app.add_routes(
        [
            web.get("/health/live", live),
            web.get("/health/ready", ready),
            web.get("/metrics", metrics_text),
            *(extra_routes or []),
        ]
    )
    return app


class OpsHttp:
    def __init__(self, app: web.Application) -> None:
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        self._site: web.TCPSite | None = None

    @property
    def app(self) -> web.Application:
        """The application served (its router lists every route)."""
        return self._runner.app

    async def start(self, host: str, port: int) -> None:
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port)
        await self._site.start()

    @property
    def port(self) -> int:
        return int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        await self._runner.cleanup()
