"""The station listener: websockets glue around the sans-I/O OCPP-J session.

Handshake: station id from the last path segment (percent-decoded), a
supported subprotocol, registration and Basic auth, all before the upgrade.
Then one task per connection feeds its frames to the connection's
``Session`` (csms.transport.session) and carries out what it returns: send
a frame, run a handler, resolve the CSMS's outgoing CALL. A station sends
at most one CALL at a time, so this is also its backpressure.

``StationServer`` implements the ``StationLink`` port (csms.core.ports) for
the stations connected to this process.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ssl
import weakref
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from csms.core import interop
from csms.core.domain import MAX_STATION_ID_LENGTH
from csms.core.errors import (
    CallTimeoutError,
    StationDisconnectedError,
    StationNotConnectedError,
    StorageError,
)
from csms.core.interop import Tolerance
from csms.core.ports import ConnectListener, LinkOpened, Presence
from csms.core.waiting import wait_at_most
from csms.services import Services, StationContext
from csms.services.stations import Admission, Credentials, Refusal
from csms.telemetry import metrics
from csms.transport import rpc
from csms.transport.admission import ConnectionPolicy
from csms.transport.session import (
    ABUSE_CLOSE_CODE,
    ABUSE_CLOSE_REASON,
    REFUSALS_CLOSE_REASON,
    Answered,
    OcppVersion,
    ReplyCache,
    Session,
)

LISTEN_BACKLOG = 4096
log = structlog.get_logger("csms.server")

# How long disconnect() waits for a closed station's disconnection to be recorded.
DISCONNECT_WAIT = 5.0
# How long a shutdown waits, after the last wave, for the CALLs in hand to be
# answered (their commits take milliseconds) unless the caller says otherwise.
DRAIN_SECONDS = 3.0
# A shutdown closes stations in waves, so that the cluster's other processes
# are not stormed by every station reconnecting at once: at most MAX_WAVES,
# and a wave of at least WAVE_STATIONS (a handful of stations is one wave).
MAX_WAVES = 8
WAVE_STATIONS = 10

BINARY_CLOSE_REASON = "OCPP-J messages are text frames"
# A superseded socket that does not answer the close within this is aborted.
SUPERSEDED_CLOSE_WAIT = 1.0
LEASE_LOST_REASON = "the CSMS process lost its cluster lease; reconnect"

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


@dataclass(slots=True, eq=False)
class Connection:
    """One open station connection: its socket, its session, the CSMS's call to it."""

    station_id: str
    ws: ServerConnection
    session: Session
    # Held for the whole round trip of one outgoing CALL.
    calling: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Resolved by the session's Answered (or its close()).
    waiter: asyncio.Future[dict[str, Any]] | None = None
    # Set once the connection is closed and its disconnection recorded.
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    # A station's CALL is being handled and answered: a shutdown lets its answer go out first.
    handling: bool = False
    # Its record in the cluster's presence view, once written.
    presence: Presence | None = None
    # Its wave of a shutdown came: no CALL is handled any more, it closes with 1001.
    closing: bool = False

    @property
    def ocpp_version(self) -> str:
        return self.session.version.ocpp_version

    def settle(self, answered: Answered | None) -> None:
        """Hand the session's verdict on the outgoing CALL to its waiting caller."""
        waiter = self.waiter
        if answered is None or waiter is None or waiter.done():
            return
        if answered.error is not None:
            waiter.set_exception(answered.error)
        else:
            assert answered.result is not None
            waiter.set_result(answered.result)


def wave_count(stations: int) -> int:
    """How many waves a shutdown closes ``stations`` in: one per WAVE_STATIONS
    stations (rounded up), at most MAX_WAVES; 0 for none."""
    return min(MAX_WAVES, -(-stations // WAVE_STATIONS))


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
    """Accepts stations and routes their frames to the protocol adapters
    (``versions``: subprotocol -> adapter, newest first); the StationLink port."""

    def __init__(
        self,
        services: Services,
        versions: Mapping[str, OcppVersion],
        *,
        call_timeout: float,
        ping_interval: float,
        ping_timeout: float,
        max_frame_bytes: int,
        policy: ConnectionPolicy,
    ) -> None:
        self._services = services
        self._policy = policy
        self._gate = self._policy.gate()
        metrics.HANDSHAKES_QUEUED.set_function(lambda: self._gate.waiting)
        self._adapters = versions
        self._call_timeout = call_timeout
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._max_frame_bytes = max_frame_bytes
        self._links: dict[str, Connection] = {}
        # Weak: a handshake admitted here may still fail in websockets (426).
        self._admitted: weakref.WeakKeyDictionary[ServerConnection, _Admitted] = (
            weakref.WeakKeyDictionary()
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._connect_listeners: list[ConnectListener] = []
        self._replies = ReplyCache()
        self._server: Server | None = None
        self._stopping = asyncio.Event()

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

    @property
    def draining(self) -> bool:
        """True from ``stop_accepting()`` on: readiness answers 503."""
        return self._stopping.is_set()

    def stop_accepting(self) -> None:
        """Stop accepting stations at once (queued handshakes get their 503 now,
        not after their patience); those connected are served until ``stop()``
        closes them. Idempotent."""
        if self._server is None or self._stopping.is_set():
            return
        self._stopping.set()
        self._gate.close()
        self._server.close(close_connections=False)

    async def stop(self, window: float = 0.0, grace: float = DRAIN_SECONDS) -> None:
        """Stop accepting, then close every station with 1001 (going away) in
        waves spread over ``window`` seconds, and wait up to ``grace`` seconds
        more for the last ones to close.

        Each wave closes an equal share of the stations still open, idle ones
        first. Until its wave a station is served as usual. From its wave on,
        a CALL it sends is not handled (the station resends it to the next
        process); one in hand is answered before its socket closes, so that
        no durable work loses its answer (issue 22).
        """
        if self._server is None:
            return
        self.stop_accepting()
        loop = asyncio.get_running_loop()
        began = loop.time()
        stations = len(self._links)
        waves = wave_count(stations)
        log.info(
            "draining", stations=stations, waves=waves, seconds=round(window, 2) if waves > 1 else 0
        )
        for wave in range(waves):
            if wave:
                await asyncio.sleep(began + window * wave / (waves - 1) - loop.time())
            self._close_share(waves - wave)
        aborted = 0
        try:
            await asyncio.wait_for(asyncio.shield(self._server.wait_closed()), grace)
        except TimeoutError:
            # A handler stuck (its database gone): its answer cannot come; drop them.
            aborted = len(self._links)
            log.warning("stations_not_drained", still_open=aborted)
            for link in list(self._links.values()):
                link.ws.transport.abort()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        log.info(
            "drained",
            stations=stations,
            aborted=aborted,
            seconds=round(loop.time() - began, 2),
        )

    def _close_share(self, waves_left: int) -> None:
        """Close 1/``waves_left`` of the stations still open, idle ones first."""
        still_open = [link for link in self._links.values() if not link.closing]
        still_open.sort(key=lambda link: link.handling)  # stable: idle ones first
        for link in still_open[: -(-len(still_open) // waves_left)]:
            link.closing = True
            if not link.handling:  # else its conversation closes it after answering
                self._spawn(link.ws.close(CloseCode.GOING_AWAY))

    # --- the StationLink port, and what tests may look at ---------------------

    def links(self) -> Iterable[Connection]:
        return self._links.values()

    def find_link(self, station_id: str) -> Connection | None:
        return self._links.get(station_id)

    def is_connected(self, station_id: str) -> bool:
        return station_id in self._links

    def presence_of(self, station_id: str) -> Presence | None:
        """The record of the station's connection here; before it is written,
        one with epoch 0 (it is connected already: local calls may go out)."""
        link = self._links.get(station_id)
        if link is None:
            return None
        if link.presence is not None:
            return link.presence
        connections = self._services.connections
        return Presence(station_id, connections.node_id, 0, link.ocpp_version, connections.clock())

    async def supersede(self, station_id: str, epoch: int) -> bool:
        """Close the station's connection here if it is older than ``epoch``
        (a newer one opened on another process); False if there was none.

        It leaves the table at once, so that nothing is sent to it any more,
        and a socket that does not answer the close (half-open, the usual
        case) is aborted after a second."""
        link = self._links.get(station_id)
        if link is None or link.presence is None or link.presence.epoch >= epoch:
            return False
        log.info("station_superseded", station_id=station_id)
        del self._links[station_id]
        try:
            await asyncio.wait_for(
                link.ws.close(1000, "replaced by a newer connection on another process"),
                SUPERSEDED_CLOSE_WAIT,
            )
        except TimeoutError:
            link.ws.transport.abort()
        return True

    async def reconnect_lost(self, still_open: set[tuple[str, int]]) -> None:
        """Close with 1012 (service restart) the stations here whose connection
        record is gone (this process's lease ran out and another process took
        them for dead): reconnecting, they are recorded (and reported) anew.
        The others keep their connection."""
        for link in list(self._links.values()):
            p = link.presence
            if p is not None and (p.station_id, p.epoch) not in still_open:
                self._spawn(link.ws.close(CloseCode.SERVICE_RESTART, LEASE_LOST_REASON))

    def add_connect_listener(self, listener: ConnectListener) -> None:
        """Run ``listener(LinkOpened)`` on a tracked task each time a station's
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

        Raises a StationLinkError (csms.core.errors): not connected,
        disconnected before answering, timed out, CALLERROR. One CALL at a
        time per station: a second caller waits its turn.
        """
        link = self._links.get(station_id)
        if link is None:
            raise StationNotConnectedError(station_id)
        session = link.session
        async with link.calling:
            frame = session.send_call(action, payload)
            waiter = link.waiter = asyncio.get_running_loop().create_future()
            try:
                await link.ws.send(frame, text=True)
                return await asyncio.wait_for(waiter, answer_timeout or self._call_timeout)
            except TimeoutError:
                session.call_timed_out()
                raise CallTimeoutError(action) from None
            except ConnectionClosed:
                # The close may have settled the waiter first; the outcome is the same.
                raise StationDisconnectedError(station_id) from None
            finally:
                link.waiter = None
                session.abandon_call()
                if waiter.done() and not waiter.cancelled():
                    waiter.exception()  # settled by the close while send() failed: seen

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
        if self._stopping.is_set():  # its handshake finished while the server was stopping
            await ws.close(CloseCode.GOING_AWAY)
            return
        # Nothing reads the handshake's headers once the socket is open, and they
        # are about 2 KiB of every idle station's memory. (websockets keeps the
        # request itself: it marks the handshake as done.)
        if ws.request is not None:
            ws.request.headers.clear()
        ws.response = None
        adapter = self._adapters[subprotocol]
        version = adapter.ocpp_version
        session = Session(station_id, adapter, self._replies, self._policy.pacer())
        link = Connection(station_id, ws, session)
        structlog.contextvars.bind_contextvars(station_id=station_id, ocpp_version=version)
        await self._register(link)
        metrics.STATIONS_CONNECTED.labels(version).inc()
        metrics.CONNECTIONS.labels("connect", version).inc()
        remote = ws.remote_address[0] if ws.remote_address else None
        log.info("station_connected", remote=remote)
        ctx = StationContext(station_id, version, self._services, tolerances)
        self._services.transactions.forget_station(station_id)
        connections = self._services.connections
        try:
            link.presence, older = await connections.opened(station_id, version, remote)
            elsewhere = tuple(p for p in older if p.node_id != connections.node_id)
            opened = LinkOpened(
                station_id, version, uses_previous_password, link.presence, elsewhere
            )
            for listener in self._connect_listeners:
                self._spawn(listener(opened))
            await self._converse(link, adapter, ctx)
        except ConnectionClosed:
            pass
        except StorageError as exc:
            log.error("station_dropped", error=str(exc))
        finally:
            # Whoever waits for this station's answer learns at once that none comes.
            link.settle(session.close())
            if self._links.get(station_id) is link:
                del self._links[station_id]
            metrics.STATIONS_CONNECTED.labels(version).dec()
            metrics.CONNECTIONS.labels("disconnect", version).inc()
            code = ws.close_code
            reason = ws.close_reason or ""
            log.info("station_disconnected", close_code=code, close_reason=reason)
            try:
                if link.presence is not None:  # else its opening was not recorded either
                    await connections.closed(link.presence, code, reason)
            finally:
                link.finished.set()

    async def _register(self, link: Connection) -> None:
        """Make ``link`` the station's connection, closing an older one first."""
        previous = self._links.get(link.station_id)
        self._links[link.station_id] = link
        if previous is None:
            return
        log.info("station_replaced")
        try:
            await previous.ws.close(1000, "replaced by a newer connection")
        except BaseException:  # cancelled (a stop) before this link was set up
            if self._links.get(link.station_id) is link:
                del self._links[link.station_id]
            raise

    async def _converse(self, link: Connection, adapter: OcppVersion, ctx: StationContext) -> None:
        """Feed the station's frames to its session and carry out its actions."""
        ws, session = link.ws, link.session
        binary_tolerated = Tolerance.BINARY_FRAMES in ctx.tolerances
        async for raw in ws:
            if type(raw) is bytes and not binary_tolerated:
                # OCPP-J messages are text frames (RFC 6455 7.4.1: 1003, data it cannot accept).
                metrics.CONNECTIONS_CLOSED_FOR_ABUSE.labels("binary_frame").inc()
                log.info("binary_frame_refused", size=len(raw))
                await ws.close(CloseCode.UNSUPPORTED_DATA, BINARY_CLOSE_REASON)
                return
            delay = session.pace()
            if delay is None:
                await ws.close(ABUSE_CLOSE_CODE, ABUSE_CLOSE_REASON)
                return
            if delay > 0:
                await asyncio.sleep(delay)
            if link.closing:  # no await between this and handling: nothing slips in
                break
            action = session.receive(raw)
            if type(action) is rpc.Call:
                if not await self._answer(link, adapter, ctx, action):
                    break
            elif type(action) is bytes:
                await ws.send(action, text=True)
            elif type(action) is Answered:
                link.settle(action)
                continue
            if session.abusive:  # its refusals came too fast: it costs others their latency
                await ws.close(ABUSE_CLOSE_CODE, REFUSALS_CLOSE_REASON)
                return
        if link.closing:
            await ws.close(CloseCode.GOING_AWAY)

    async def _answer(
        self, link: Connection, adapter: OcppVersion, ctx: StationContext, call: rpc.Call
    ) -> bool:
        """Handle the station's CALL and send the answer; False when its wave
        of a shutdown came meanwhile (it is to close now)."""
        link.handling = True
        try:
            frame = await self._handle(adapter, ctx, link.session, call)
            await link.ws.send(frame, text=True)
        finally:
            link.handling = False
        return not link.closing

    @staticmethod
    async def _handle(
        adapter: OcppVersion, ctx: StationContext, session: Session, call: rpc.Call
    ) -> bytes:
        """Run the handler; the session turns its result or failure into the frame."""
        try:
            result = await adapter.handle(ctx, call)
        except Exception as exc:  # every failure is answered; CancelledError is not an Exception
            return session.fail(call, exc)
        return session.answer(call, result)
