#!/usr/bin/env python3
"""BENCHMARK FIXTURE, NOT PART OF THE PRODUCT: the ceiling a CSMS is measured against.

A bare ``websockets`` server that answers every OCPP CALL with a canned
CALLRESULT: it parses the frame (orjson), validates nothing, stores nothing.
Speaks ``ocpp1.6`` and ``ocpp2.0.1``; the same options as the CSMS's listener
(no compression, pings every 60 s)::

    python scripts/bench/bare_baseline.py --port 9101 [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
from datetime import UTC, datetime
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

SUBPROTOCOLS = [Subprotocol("ocpp2.0.1"), Subprotocol("ocpp1.6")]
NOW = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
ACCEPTED = {"status": "Accepted"}
CANNED: dict[str, dict[str, Any]] = {
    "BootNotification": {"currentTime": NOW, "interval": 300, "status": "Accepted"},
    "Heartbeat": {"currentTime": NOW},
    "Authorize": {"idTagInfo": ACCEPTED, "idTokenInfo": ACCEPTED},
    "StartTransaction": {"transactionId": 1, "idTagInfo": ACCEPTED},
    "StopTransaction": {"idTagInfo": ACCEPTED},
    "TransactionEvent": {},
}


async def answer(ws: ServerConnection) -> None:
    """Answer each CALL of one connection with its canned CALLRESULT."""
    try:
        async for raw in ws:
            frame = orjson.loads(raw)
            if frame[0] == 2:
                reply = [3, frame[1], CANNED.get(frame[2], {})]
                await ws.send(orjson.dumps(reply), text=True)
    except ConnectionClosed:
        pass


async def main(port: int, backlog: int) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(
        answer,
        "127.0.0.1",
        port,
        subprotocols=SUBPROTOCOLS,
        compression=None,
        max_queue=4,
        backlog=backlog,
    ):
        print(f"bare baseline listening on ws://127.0.0.1:{port}/", flush=True)
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=9101)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    parser.add_argument(
        "--backlog", type=int, default=100, help="listen backlog (asyncio's default: 100)"
    )
    options = parser.parse_args()
    if options.uvloop:
        import uvloop

        uvloop.run(main(options.port, options.backlog))
    else:
        asyncio.run(main(options.port, options.backlog))
