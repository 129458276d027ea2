"""The station listener: websockets glue around the RPC rules.

Handshake: station id from the last path segment (percent-decoded), a
supported subprotocol, registration and Basic auth, all before the upgrade.
Then one task per connection reads frames and answers each CALL in turn; a
station sends at most one CALL at a time, so this is also its backpressure.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ssl
import time
import weakref
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from csms.core import interop
from csms.core.domain import MAX_STATION_ID_LENGTH
from csms.core.errors import StorageError
from csms.core.interop import Tolerance
from csms.core.waiting import wait_at_most
from csms.services import Services, StationContext
from csms.services.stations import Admission, Credentials, Refusal
from csms.telemetry import metrics
from csms.transport import rpc
from csms.transport.admission import ConnectionPolicy, MessagePacer
from protocols.common import Adapter

LISTEN_BACKLOG = 4096
log = structlog.get_logger("csms.server")

# How long disconnect() waits for a closed station's disconnection to be recorded.
DISCONNECT_WAIT = 5.0

# websockets' default high-water mark, stated: what one station may have
# queued towards it before our send waits for it to read.
WRITE_LIMIT = 32 * 1024

# Refusals that no other Basic-auth credentials would cure: 403, not 401.
_FORBIDDEN = {
    Refusal.TLS_REQUIRED: "this station's security profile requires TLS (wss://)",
    Refusal.CLIENT_CERTIFICATE_REQUIRED: "this station must present its client certificate",
    Refusal.CLIENT_CERTIFICATE_MISMATCH: "the client certificate names another station",
}


class _Admitted(NamedTuple):
    """What the handshake decided, for the connection it opens."""

    station_id: str
    uses_previous_password: bool
    subprotocol: str
    tolerances: frozenset[Tolerance]


class _StationConnection(ServerConnection):
    """websockets' connection, freed by reference counting once closed.

    With a ``select_subprotocol`` hook, websockets gives the protocol a closure
    that refers back to the connection: a reference cycle that only the cyclic
    GC frees, about 30 objects per connection (29 under uvloop). After 19,000 stations leave at
    once, the full collection that frees them held the event loop for a second
    (docs/benchmarks.md). The hook is only needed during the handshake."""

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # The instance attribute shadows the class's default; dropping it breaks the cycle.
        vars(self.protocol).pop("select_subprotocol", None)


class StationNotConnectedError(Exception):
    """A CALL was meant for a station that has no open connection."""


@dataclass(slots=True)
class StationLink:
    """One open station connection, as the rest of the CSMS may use it."""

    station_id: str
    adapter: Adapter
    ws: ServerConnection
    outgoing: rpc.OutgoingCalls = field(default_factory=rpc.OutgoingCalls)
    # Set once the connection is closed and its disconnection recorded.
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def ocpp_version(self) -> str:
        return self.adapter.ocpp_version


def station_id_from_path(path: str) -> str:
    """The last path segment, percent-decoded; '' when there is none."""
    return unquote(urlsplit(path).path.rsplit("/", 1)[-1])


def offered_subprotocols(headers: Headers) -> list[str]:
    return [
        token.strip()
        for value in headers.get_all("Sec-WebSocket-Protocol")
        for token in value.split(",")
        if token.strip()
    ]


def basic_credentials(headers: Headers) -> tuple[str, str] | None:
    """(user, password) of an HTTP Basic Authorization header, else None."""
    value = headers.get("Authorization")
    if not value:
        return None
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class StationServer:
    """Accepts stations and routes their frames to the protocol adapters."""

    def __init__(
        self,
        services: Services,
        adapters: dict[str, Adapter],
        *,
        call_timeout: float,
        ping_interval: float,
        ping_timeout: float,
        max_frame_bytes: int,
        policy: ConnectionPolicy | None = None,
    ) -> None:
        self._services = services
        self._policy = policy or ConnectionPolicy()
        self._gate = self._policy.gate()
        metrics.HANDSHAKES_QUEUED.set_function(lambda: self._gate.waiting)
        self._adapters = adapters
        self._call_timeout = call_timeout
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._max_frame_bytes = max_frame_bytes
        self._links: dict[str, StationLink] = {}
        # Weak: a handshake admitted here may still fail in websockets (426).
        self._admitted: weakref.WeakKeyDictionary[ServerConnection, _Admitted] = (
            weakref.WeakKeyDictionary()
        )
        # New passwords waiting for their station to connect (memory only: a
        # secret is not written to disk in clear; see README "Passwords").
        self._pending_passwords: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._connect_listeners: list[Callable[[str], Coroutine[Any, Any, None]]] = []
        self._replies = rpc.ReplyCache()
        self._server: Server | None = None
        # Metric children by label values: .labels() takes a lock and builds a key per call.
        self._message_counters: dict[tuple[str, str, str], Callable[[], None]] = {}
        self._handler_timers: dict[tuple[str, str], Callable[[float], None]] = {}

    # --- lifecycle -----------------------------------------------------------

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        self._server = await serve(
            self._serve_connection,
            host,
            port,
            ssl=tls,
            subprotocols=list(self._adapters),  # type: ignore[arg-type]
            select_subprotocol=self._select_subprotocol,
            create_connection=_StationConnection,
            process_request=self._process_request,
            compression=None,  # 16 KiB per idle station instead of ~60 KiB
            # Bounded buffers: at most 4 unread frames of max_size per station,
            # and a station that does not read has at most write_limit bytes
            # queued before our send waits (then the ping timeout closes it).
            max_size=self._max_frame_bytes,
            max_queue=4,
            write_limit=WRITE_LIMIT,
            ping_interval=self._ping_interval,
            ping_timeout=self._ping_timeout,
            close_timeout=5,
            open_timeout=self._policy.handshake_timeout,
            server_header=None,
            # asyncio's default backlog of 100 drops SYNs when a whole fleet
            # reconnects at once; the kernel caps it at somaxconn anyway.
            backlog=LISTEN_BACKLOG,
        )

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop accepting, close every station with 1001 (going away) and
        wait for their handlers, so their last writes are submitted."""
        if self._server is None:
            return
        self._gate.close()  # queued handshakes get their 503 now, not after their patience
        self._server.close(close_connections=True)
        await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- what the rest of the CSMS may ask ----------------------------------

    def links(self) -> Iterable[StationLink]:
        return self._links.values()

    def find_link(self, station_id: str) -> StationLink | None:
        return self._links.get(station_id)

    def add_connect_listener(self, listener: Callable[[str], Coroutine[Any, Any, None]]) -> None:
        """Run ``listener(station_id)`` on a tracked task each time a station's
        connection is set up (registered and recorded), e.g. to send it what waits."""
        self._connect_listeners.append(listener)

    async def disconnect(self, station_id: str, reason: str) -> bool:
        """Close a station's connection (1000, ``reason``) and wait until its
        disconnection is recorded; False if it has none."""
        link = self._links.get(station_id)
        if link is None:
            return False
        await link.ws.close(1000, reason)
        await wait_at_most(link.finished, DISCONNECT_WAIT)
        return True

    async def call(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        answer_timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send a CALL to a connected station and return its CALLRESULT payload.

        Raises StationNotConnectedError, rpc.CallErrorReceived or
        rpc.CallTimeoutError. One CALL at a time per station: a second caller
        waits its turn.
        """
        link = self._links.get(station_id)
        if link is None:
            raise StationNotConnectedError(station_id)
        version = link.ocpp_version
        async with link.outgoing.lock:
            frame, answer = link.outgoing.begin(action, payload)
            try:
                await link.ws.send(frame, text=True)
                result: dict[str, Any] = await asyncio.wait_for(
                    answer, answer_timeout or self._call_timeout
                )
            except TimeoutError:
                metrics.CALL_TIMEOUTS.labels(action, version).inc()
                metrics.MESSAGES.labels("out", action, version, "timeout").inc()
                raise rpc.CallTimeoutError(action) from None
            except rpc.CallErrorReceived as exc:
                metrics.CALL_ERRORS.labels("in", exc.error.code, version).inc()
                metrics.MESSAGES.labels("out", action, version, "call_error").inc()
                raise
            except ConnectionClosed:
                raise StationNotConnectedError(station_id) from None
            finally:
                link.outgoing.end()
        metrics.MESSAGES.labels("out", action, version, "ok").inc()
        return result

    async def change_password(self, station_id: str, password: str) -> str | None:
        """Send a rotated password to the station if it is connected; return its
        answer (Accepted, Rejected...), or None when it waits for the station.

        The station keeps being admitted with its old password until it
        reconnects with the new one (see StationService.rotate_password).
        """
        self._pending_passwords[station_id] = password
        if station_id not in self._links:
            return None
        return await self._send_password(station_id)

    async def _send_password(self, station_id: str) -> str:
        link = self._links[station_id]
        action, payload = link.adapter.set_password(self._pending_passwords[station_id])
        answer = await self.call(station_id, action, payload)
        status = link.adapter.password_status(answer)
        if status == "Accepted":
            self._pending_passwords.pop(station_id, None)
        log.info("password_sent", station_id=station_id, status=status)
        return status

    async def _deliver_password(self, station_id: str) -> None:
        try:
            await self._send_password(station_id)
        except (StationNotConnectedError, rpc.CallErrorReceived, rpc.CallTimeoutError) as exc:
            log.warning("password_not_delivered", station_id=station_id, error=repr(exc))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- handshake ----------------------------------------------------------

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        station_id = station_id_from_path(request.path)
        if not station_id or len(station_id) > MAX_STATION_ID_LENGTH:
            return self._refuse(
                connection,
                HTTPStatus.BAD_REQUEST,
                "bad_station_id",
                f"station id must be 1-{MAX_STATION_ID_LENGTH} characters",
            )
        offered = offered_subprotocols(request.headers)
        subprotocol = self._subprotocol_for(offered)
        if subprotocol is None:
            return self._refuse(
                connection,
                HTTPStatus.BAD_REQUEST,
                "unsupported_subprotocol",
                f"offer one of the subprotocols {', '.join(self._adapters)}",
                station_id=station_id,
                offered=offered,
            )
        self._tolerate_missing_upgrade(request, station_id)
        busy = await self._gate.admit(self._policy.handshake_queue_wait)
        if busy is None and connection.transport.is_closing():
            self._gate.leave()  # it gave up while waiting: no lookup, no password check
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "gone\n")
        if busy is not None:
            response = self._refuse(
                connection,
                HTTPStatus.SERVICE_UNAVAILABLE,
                busy.reason,
                busy.message,
                station_id=station_id,
            )
            response.headers["Retry-After"] = str(busy.retry_after)
            return response
        metrics.HANDSHAKES_IN_FLIGHT.inc()
        try:
            admission = await self._admit(connection, request, station_id)
        finally:
            self._gate.leave()
            metrics.HANDSHAKES_IN_FLIGHT.dec()
        if isinstance(admission, Response):
            return admission
        if not offered:
            interop.applied(
                Tolerance.MISSING_SUBPROTOCOL, station_id=station_id, subprotocol=subprotocol
            )
        assert admission.station is not None
        station = admission.station
        self._admitted[connection] = _Admitted(
            station.id,
            admission.uses_previous_password,
            subprotocol,
            self._policy.interop.for_station(
                station.vendor, station.model, station.firmware_version
            ),
        )
        return None

    async def _admit(
        self, connection: ServerConnection, request: Request, station_id: str
    ) -> Admission | Response:
        """The station's admission, or the response that refuses it."""
        over_tls, certificate_cn = self._policy.peer.read(
            connection.remote_address[0] if connection.remote_address else None,
            connection.transport.get_extra_info("ssl_object"),
            request.headers,
        )
        basic = basic_credentials(request.headers)
        credentials = Credentials(
            user=basic[0] if basic else None,
            password=basic[1] if basic else None,
            over_tls=over_tls,
            certificate_cn=certificate_cn,
        )
        try:
            admission = await self._services.stations.admit(station_id, credentials)
        except StorageError as exc:
            log.error("handshake_failed", station_id=station_id, error=str(exc))
            return self._refuse(
                connection,
                HTTPStatus.SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "the CSMS cannot reach its database; retry later",
            )
        refusal = admission.refusal
        if refusal is None:
            return admission
        if refusal is Refusal.UNKNOWN_STATION:
            return self._refuse(
                connection,
                HTTPStatus.NOT_FOUND,
                refusal.value,
                "unknown station",
                station_id=station_id,
            )
        if refusal in _FORBIDDEN:
            return self._refuse(
                connection,
                HTTPStatus.FORBIDDEN,
                refusal.value,
                _FORBIDDEN[refusal],
                station_id=station_id,
                over_tls=over_tls,
                certificate_cn=certificate_cn,
            )
        response = self._refuse(
            connection,
            HTTPStatus.UNAUTHORIZED,
            refusal.value,
            "station authentication failed",
            station_id=station_id,
        )
        response.headers["WWW-Authenticate"] = 'Basic realm="csms", charset="UTF-8"'
        return response

    def _subprotocol_for(self, offered: list[str]) -> str | None:
        """The newest supported offer; the configured default when there is no
        offer at all (a tolerance); None to refuse."""
        for subprotocol in self._adapters:
            if subprotocol in offered:
                return subprotocol
        if not offered and self._policy.default_subprotocol:
            return self._policy.default_subprotocol
        return None

    def _select_subprotocol(
        self, connection: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        """websockets' hook: the newest offer we speak; none (no response
        header) for a station that offered none and got the default."""
        for subprotocol in self._adapters:
            if subprotocol in offered:
                return Subprotocol(subprotocol)
        return None

    def _tolerate_missing_upgrade(self, request: Request, station_id: str) -> None:
        """Some firmware omits ``Connection: Upgrade``; add it when tolerated."""
        if not self._policy.interop.is_global(Tolerance.MISSING_CONNECTION_UPGRADE):
            return
        tokens = ",".join(request.headers.get_all("Connection")).lower()
        wants_websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        if wants_websocket and "upgrade" not in tokens:
            if "Connection" in request.headers:
                del request.headers["Connection"]
            request.headers["Connection"] = "Upgrade"
            interop.applied(Tolerance.MISSING_CONNECTION_UPGRADE, station_id=station_id)

    def _refuse(
        self,
        connection: ServerConnection,
        status: HTTPStatus,
        reason: str,
        text: str,
        **context: Any,
    ) -> Response:
        metrics.HANDSHAKES_REJECTED.labels(reason).inc()
        log.info("handshake_refused", reason=reason, status=int(status), **context)
        return connection.respond(status, text + "\n")

    # --- connection ---------------------------------------------------------

    async def _serve_connection(self, ws: ServerConnection) -> None:
        station_id, uses_previous_password, subprotocol, tolerances = self._admitted.pop(ws)
        # Nothing reads the handshake's headers once the socket is open, and they
        # are about 2 KiB of every idle station's memory. (websockets keeps the
        # request itself: it marks the handshake as done.)
        if ws.request is not None:
            ws.request.headers.clear()
        ws.response = None
        adapter = self._adapters[subprotocol]
        version = adapter.ocpp_version
        link = StationLink(station_id, adapter, ws)
        structlog.contextvars.bind_contextvars(station_id=station_id, ocpp_version=version)
        previous = self._links.get(station_id)
        self._links[station_id] = link
        if previous is not None:
            log.info("station_replaced")
            await previous.ws.close(1000, "replaced by a newer connection")
        metrics.STATIONS_CONNECTED.labels(version).inc()
        metrics.CONNECTIONS.labels("connect", version).inc()
        remote = ws.remote_address[0] if ws.remote_address else None
        log.info("station_connected", remote=remote)
        ctx = StationContext(station_id, version, self._services, tolerances)
        pacer = self._policy.pacer()
        self._services.transactions.forget_station(station_id)
        try:
            await self._services.stations.connected(station_id, version, remote)
            if uses_previous_password and station_id in self._pending_passwords:
                self._spawn(self._deliver_password(station_id))
            for listener in self._connect_listeners:
                self._spawn(listener(station_id))
            async for frame in ws:
                if not await self._pace(link, pacer):
                    break
                await self._on_frame(link, ctx, frame)
        except ConnectionClosed:
            pass
        except StorageError as exc:
            log.error("station_dropped", error=str(exc))
        finally:
            link.outgoing.cancel()
            if self._links.get(station_id) is link:
                del self._links[station_id]
            metrics.STATIONS_CONNECTED.labels(version).dec()
            metrics.CONNECTIONS.labels("disconnect", version).inc()
            code = ws.close_code
            reason = ws.close_reason or ""
            log.info("station_disconnected", close_code=code, close_reason=reason)
            try:
                await self._services.stations.disconnected(station_id, version, code, reason)
            except StorageError as exc:
                log.error("disconnect_not_recorded", error=str(exc))
            finally:
                link.finished.set()

    async def _pace(self, link: StationLink, pacer: MessagePacer) -> bool:
        """Hold the station's next frame back while it is over its message
        rate; close it (1008) and return False once it has been for too long."""
        delay = pacer.delay()
        if delay is None:
            metrics.CONNECTIONS_CLOSED_FOR_ABUSE.labels("message_rate").inc()
            log.warning("station_closed_for_abuse", reason="message_rate")
            await link.ws.close(1008, "message rate limit exceeded for too long")
            return False
        if delay > 0:
            metrics.MESSAGES_DELAYED.labels(link.ocpp_version).inc()
            await asyncio.sleep(delay)
        return True

    async def _on_frame(self, link: StationLink, ctx: StationContext, raw: str | bytes) -> None:
        adapter = link.adapter
        try:
            frame = rpc.decode(raw, adapter.codes)
        except rpc.RpcError as exc:
            self._count_error(adapter, "(invalid)", exc.code)
            log.info("frame_refused", code=exc.code, reason=exc.description)
            await link.ws.send(exc.frame(), text=True)
            return
        if not isinstance(frame, rpc.Call):
            if not link.outgoing.resolve(frame):
                log.info("unexpected_answer", message_id=frame.unique_id)
            return
        cached = self._replies.get(link.station_id, frame.unique_id, frame.action)
        if cached is not None:
            log.info("call_repeated", action=frame.action, message_id=frame.unique_id)
            await link.ws.send(cached, text=True)
            return
        started = time.perf_counter()
        reply, outcome = await self._answer(adapter, ctx, frame)
        if outcome != "InternalError":
            self._replies.put(link.station_id, frame.unique_id, frame.action, reply)
        await link.ws.send(reply, text=True)
        action = adapter.action_label(frame.action)
        timer = self._handler_timers.get((action, adapter.ocpp_version))
        if timer is None:
            timer = metrics.HANDLER_SECONDS.labels(action, adapter.ocpp_version).observe
            self._handler_timers[(action, adapter.ocpp_version)] = timer
        timer(time.perf_counter() - started)
        self._count(adapter, action, outcome)

    async def _answer(
        self, adapter: Adapter, ctx: StationContext, call: rpc.Call
    ) -> tuple[bytes, str]:
        try:
            result = await adapter.handle(ctx, call)
        except rpc.RpcError as exc:
            log.info(
                "call_refused",
                action=call.action,
                message_id=call.unique_id,
                code=exc.code,
                reason=exc.description,
            )
            self._count_error(adapter, adapter.action_label(call.action), exc.code)
            return exc.frame(call.unique_id), exc.code
        except StorageError as exc:
            log.error("call_failed", action=call.action, message_id=call.unique_id, error=str(exc))
            return self._internal_error(adapter, call), "InternalError"
        except Exception:
            log.exception("call_crashed", action=call.action, message_id=call.unique_id)
            return self._internal_error(adapter, call), "InternalError"
        return rpc.encode_call_result(call.unique_id, result), "ok"

    def _internal_error(self, adapter: Adapter, call: rpc.Call) -> bytes:
        self._count_error(adapter, adapter.action_label(call.action), "InternalError")
        return rpc.encode_call_error(
            call.unique_id, "InternalError", "the CSMS could not handle this message", {}
        )

    def _count(self, adapter: Adapter, action: str, outcome: str) -> None:
        key = (action, adapter.ocpp_version, outcome)
        inc = self._message_counters.get(key)
        if inc is None:
            inc = metrics.MESSAGES.labels("in", action, adapter.ocpp_version, outcome).inc
            self._message_counters[key] = inc
        inc()

    def _count_error(self, adapter: Adapter, action: str, code: str) -> None:
        metrics.CALL_ERRORS.labels("out", code, adapter.ocpp_version).inc()
        if action == "(invalid)":
            self._count(adapter, action, code)
