#!/usr/bin/env python3
"""BENCHMARK FIXTURE, NOT PART OF THE PRODUCT: the peer a user would pick instead.

The central system as the ``ocpp`` package documents it: one ``ChargePoint``
subclass per connection under ``websockets.serve``, ``@on`` handlers that
answer and store nothing. The package validates every payload against its
JSON schemas and converts keys to snake_case, as it does by default. Speaks
``ocpp1.6`` and ``ocpp2.0.1`` (one subclass per version)::

    python scripts/bench/ocpp_baseline.py --port 9102 [--log-info] [--uvloop]

The documented example also sets ``logging.basicConfig(level=logging.INFO)``,
which logs every frame; that costs about a quarter of the throughput, so it
is off unless ``--log-info`` (the kinder comparison for the baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import resource
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v16.datatypes import IdTagInfo
from ocpp.v16.enums import AuthorizationStatus, RegistrationStatus
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

_transaction_ids = itertools.count(1)
F = TypeVar("F", bound=Callable[..., Any])


def handles(action: str) -> Callable[[F], F]:
    """The package's ``@on(action)``, typed."""
    return cast(Callable[[F], F], on(action))


def now() -> str:
    return datetime.now(UTC).isoformat()


class CentralSystem16(ChargePoint16):  # type: ignore[misc]  # ocpp is untyped
    """OCPP 1.6 handlers: accept everything, store nothing."""

    @handles("BootNotification")
    async def on_boot_notification(
        self, charge_point_vendor: str, charge_point_model: str, **kwargs: Any
    ) -> Any:
        return result16.BootNotification(
            current_time=now(), interval=300, status=RegistrationStatus.accepted
        )

    @handles("Heartbeat")
    async def on_heartbeat(self) -> Any:
        return result16.Heartbeat(current_time=now())

    @handles("StatusNotification")
    async def on_status_notification(self, **kwargs: Any) -> Any:
        return result16.StatusNotification()

    @handles("Authorize")
    async def on_authorize(self, id_tag: str) -> Any:
        return result16.Authorize(id_tag_info=IdTagInfo(status=AuthorizationStatus.accepted))

    @handles("StartTransaction")
    async def on_start_transaction(self, **kwargs: Any) -> Any:
        return result16.StartTransaction(
            transaction_id=next(_transaction_ids),
            id_tag_info=IdTagInfo(status=AuthorizationStatus.accepted),
        )

    @handles("StopTransaction")
    async def on_stop_transaction(self, **kwargs: Any) -> Any:
        return result16.StopTransaction(id_tag_info=IdTagInfo(status=AuthorizationStatus.accepted))

    @handles("MeterValues")
    async def on_meter_values(self, connector_id: int, meter_value: Any, **kwargs: Any) -> Any:
        return result16.MeterValues()


class CentralSystem201(ChargePoint201):  # type: ignore[misc]  # ocpp is untyped
    """OCPP 2.0.1 handlers: accept everything, store nothing."""

    @handles("BootNotification")
    async def on_boot_notification(self, charging_station: Any, reason: str, **kwargs: Any) -> Any:
        return result201.BootNotification(current_time=now(), interval=300, status="Accepted")

    @handles("Heartbeat")
    async def on_heartbeat(self, **kwargs: Any) -> Any:
        return result201.Heartbeat(current_time=now())

    @handles("StatusNotification")
    async def on_status_notification(self, **kwargs: Any) -> Any:
        return result201.StatusNotification()

    @handles("Authorize")
    async def on_authorize(self, id_token: Any, **kwargs: Any) -> Any:
        return result201.Authorize(id_token_info={"status": "Accepted"})

    @handles("TransactionEvent")
    async def on_transaction_event(self, **kwargs: Any) -> Any:
        return result201.TransactionEvent()

    @handles("MeterValues")
    async def on_meter_values(self, **kwargs: Any) -> Any:
        return result201.MeterValues()


async def on_connect(websocket: ServerConnection) -> None:
    """The documented connection handler: pick the class by subprotocol, start it."""
    assert websocket.request is not None
    if "Sec-WebSocket-Protocol" not in websocket.request.headers or not websocket.subprotocol:
        await websocket.close()
        return
    charge_point_id = websocket.request.path.strip("/").rsplit("/", 1)[-1]
    kind = CentralSystem16 if websocket.subprotocol == "ocpp1.6" else CentralSystem201
    charge_point = kind(charge_point_id, websocket)
    with contextlib.suppress(ConnectionClosed):
        await charge_point.start()


async def main(port: int) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    subprotocols = [Subprotocol("ocpp2.0.1"), Subprotocol("ocpp1.6")]
    async with serve(on_connect, "127.0.0.1", port, subprotocols=subprotocols):
        print(f"ocpp baseline listening on ws://127.0.0.1:{port}/", flush=True)
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=9102)
    parser.add_argument("--log-info", action="store_true", help="log every frame, as documented")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO if options.log_info else logging.WARNING)
    if options.uvloop:
        import uvloop

        uvloop.run(main(options.port))
    else:
        asyncio.run(main(options.port))
