"""The StationLink across a cluster: any process reaches any station.

A station connected here is called directly. One held by another process
(the presence view says which, csms.services.connections) is called
through the ``NodeBus``: a request to that node naming the connection's
epoch, answered with the station's answer or the error it came to. The
holding node refuses a request for an epoch it does not hold (the station
moved on), so a CALL goes at most to the connection it was meant for; it is
never retried, so never sent twice. While it waits, the asking process
watches the station's presence: if the connection closes there (its
process stopped and the lease ran out, or the station reconnected
elsewhere), the caller learns at once that the station disconnected before
answering. docs/adr/0011-cluster.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from csms.core.errors import (
    CallErrorReceived,
    CallTimeoutError,
    ClusterUnavailableError,
    NodeUnreachableError,
    StationDisconnectedError,
    StationLinkError,
    StationNotConnectedError,
    StorageError,
)
from csms.core.ports import LinkOpened, LocalLink, NodeBus, Presence
from csms.services.connections import ConnectionService

log = structlog.get_logger("csms.cluster")

# What the hop to another process may add to a CALL's own timeout.
HOP_MARGIN = 2.0
# How often a caller waiting on another process looks whether the station is still there.
WATCH_INTERVAL = 1.0
# How long the holding node may take to close a station and record it
# (StationServer: the close handshake, then up to 5 s for the record).
DISCONNECT_WAIT = 12.0

_ERRORS = {
    "not_connected": StationNotConnectedError,
    "disconnected": StationDisconnectedError,
}


class ClusterLink:
    """``StationLink`` over this process's stations and, with a bus, the others'."""

    def __init__(
        self,
        local: LocalLink,
        connections: ConnectionService,
        bus: NodeBus | None,
        *,
        call_timeout: float,
        watch_interval: float = WATCH_INTERVAL,
    ) -> None:
        self._local = local
        self._connections = connections
        self._bus = bus
        self._call_timeout = call_timeout
        self._watch_interval = watch_interval
        if bus is not None:
            bus.serve(self._serve)

    @property
    def node_id(self) -> str:
        return self._connections.node_id

    def is_connected(self, station_id: str) -> bool:
        return self._local.is_connected(station_id)

    async def locate(self, station_id: str) -> Presence | None:
        here = self._local.presence_of(station_id)
        if here is not None:
            return here
        held = await self._connections.locate(station_id)
        if held is not None and held.node_id == self.node_id:
            return None  # closing here, its record not yet removed: this process knows
        return held

    async def call(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        answer_timeout: float | None = None,
    ) -> dict[str, Any]:
        if self._local.is_connected(station_id):
            return await self._local.call(station_id, action, payload, answer_timeout)
        held = await self._elsewhere(station_id)
        timeout = answer_timeout or self._call_timeout
        request = {
            "op": "call",
            "station_id": station_id,
            "epoch": held.epoch,
            "action": action,
            "payload": payload,
            "timeout": timeout,
        }
        reply = await self._watched(held, request, timeout + HOP_MARGIN, action)
        if "result" in reply:
            result: dict[str, Any] = reply["result"]
            return result
        raise _error(reply, station_id, action)

    async def disconnect(self, station_id: str, reason: str) -> bool:
        if self._local.is_connected(station_id):
            return await self._local.disconnect(station_id, reason)
        try:
            held = await self._elsewhere(station_id)
        except StationNotConnectedError:
            return False
        request = {"op": "disconnect", "station_id": station_id, "reason": reason}
        try:
            reply = await self._request(held, request, DISCONNECT_WAIT)
        except StationNotConnectedError:
            return False
        except TimeoutError:
            # Asked to close; its record may still be on its way.
            log.warning("disconnect_unconfirmed", station_id=station_id, node=held.node_id)
            return True
        return bool(reply.get("closed"))

    async def on_connect(self, opened: LinkOpened) -> None:
        """Takeover: the processes still holding older connections of the
        station close them (a half-open socket after a network hand-over)."""
        if self._bus is None or opened.presence is None:
            return
        for older in opened.superseded:
            message = {
                "op": "supersede",
                "station_id": opened.station_id,
                "epoch": opened.presence.epoch,
            }
            try:
                await self._bus.tell(older.node_id, message)
            except NodeUnreachableError:
                # Its process is gone (no queue): nobody else will close its record.
                await self._connections.close_abandoned(older)
            except ClusterUnavailableError:
                log.warning("supersede_not_sent", station_id=opened.station_id, node=older.node_id)

    # --- asking another node -------------------------------------------------

    async def _elsewhere(self, station_id: str) -> Presence:
        held = await self._connections.locate(station_id)
        if held is None or held.node_id == self.node_id:
            raise StationNotConnectedError(station_id)
        if self._bus is None:
            log.warning("station_held_elsewhere_without_broker", node=held.node_id)
            raise StationNotConnectedError(station_id)
        return held

    async def _request(
        self, held: Presence, request: dict[str, Any], wait: float
    ) -> dict[str, Any]:
        assert self._bus is not None
        try:
            return await self._bus.request(held.node_id, request, wait)
        except NodeUnreachableError:
            # The request reached no process: nothing was sent to the station.
            raise StationNotConnectedError(held.station_id) from None

    async def _watched(
        self, held: Presence, request: dict[str, Any], wait: float, action: str
    ) -> dict[str, Any]:
        """The node's reply, unless the station's connection ends first."""
        asking = asyncio.ensure_future(self._request(held, request, wait))
        watching = asyncio.ensure_future(self._until_gone(held))
        try:
            done, _ = await asyncio.wait({asking, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (asking, watching):
                task.cancel()
            for task in (asking, watching):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if asking in done:
            try:
                return asking.result()
            except TimeoutError:
                # Neither an answer nor a sign of the station leaving: the process
                # holding it is stuck or its reply was lost. It is not sent again.
                raise CallTimeoutError(action) from None
        raise StationDisconnectedError(held.station_id)

    async def _until_gone(self, held: Presence) -> None:
        while True:
            await asyncio.sleep(self._watch_interval)
            try:
                now = await self._connections.locate(held.station_id)
            except StorageError:
                continue  # a database blip says nothing about the station
            if now is None or now.epoch != held.epoch:
                log.info("station_left_during_call", station_id=held.station_id, node=held.node_id)
                return

    # --- answering another node ------------------------------------------------

    async def _serve(self, request: dict[str, Any]) -> dict[str, Any] | None:
        op, station_id = request.get("op"), str(request.get("station_id"))
        if op == "supersede":
            await self._local.supersede(station_id, int(request["epoch"]))
            return None
        if op == "disconnect":
            closed = await self._local.disconnect(station_id, str(request.get("reason", "")))
            return {"closed": closed}
        if op == "call":
            return await self._call_here(request, station_id)
        return {"error": "unknown_op"}

    async def _call_here(self, request: dict[str, Any], station_id: str) -> dict[str, Any]:
        here = self._local.presence_of(station_id)
        if here is None or here.epoch != request.get("epoch"):
            return {"error": "not_connected"}  # it moved on: the CALL is not sent
        try:
            result = await self._local.call(
                station_id, str(request["action"]), request["payload"], float(request["timeout"])
            )
        except StationNotConnectedError:
            return {"error": "not_connected"}
        except StationDisconnectedError:
            return {"error": "disconnected"}
        except CallTimeoutError:
            return {"error": "timeout"}
        except CallErrorReceived as exc:
            return {
                "error": "call_error",
                "code": exc.code,
                "description": exc.description,
                "details": exc.details,
            }
        except StationLinkError:
            return {"error": "disconnected"}
        return {"result": result}


def _error(reply: dict[str, Any], station_id: str, action: str) -> StationLinkError:
    kind = reply.get("error")
    if kind == "call_error":
        return CallErrorReceived(
            str(reply.get("code")), str(reply.get("description", "")), reply.get("details") or {}
        )
    if kind == "timeout":
        return CallTimeoutError(action)
    return _ERRORS.get(str(kind), StationDisconnectedError)(station_id)
