"""A publish-only AMQP 0-9-1 connection in confirm mode, framed by pamqp.

The relay needs nine AMQP methods: the connection handshake (PLAIN login),
one channel, ``Confirm.Select``, ``Exchange.Declare``, ``Basic.Publish`` and
the broker's ``Basic.Ack`` / ``Basic.Nack``, heartbeats and closing. This
module speaks exactly those over an ``asyncio.Protocol``; pamqp, the AMQP
codec aiormq is built on, marshals and parses the frames through its public
API. Why not aiormq: its public ``Channel.basic_publish`` costs a task, a
lock round, a queue hand-over and a socket write per message, about five
times the relay's CPU per event, and publishing whole batches through it
meant writing into its private state (ADR 0010).

What a caller sees: ``write()`` a batch of marshalled frames, ``drain()`` for
back-pressure, and two callbacks, one per confirm frame the broker sends and
one when the link closes, for whatever reason, exactly once.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import pamqp.exceptions
import pamqp.frame
import pamqp.header
import pamqp.heartbeat
import structlog
from pamqp import commands as spec
from pamqp.base import Frame

log = structlog.get_logger("csms.relay")

CHANNEL = 1  # the one channel the link opens
DEFAULT_FRAME_MAX = 131_072  # RabbitMQ's default, when the broker names no limit
DEFAULT_HEARTBEAT_S = 60
FRAME_OVERHEAD = 8  # type, channel, size and the end marker around a frame's payload

_HEADER = struct.Struct(">BHI")
_FRAME_METHOD, _FRAME_HEARTBEAT, _FRAME_END = 1, 8, 0xCE
# Basic.Ack (60, 80) and Basic.Nack (60, 120): class, method, delivery tag, flags.
_CONFIRM = struct.Struct(">HHQB")
_BASIC, _ACK, _NACK = 60, 80, 120

OnConfirm = Callable[[int, bool, bool], None]
"""Called with (delivery tag, multiple, acked) for each Basic.Ack / Basic.Nack."""
OnClose = Callable[[str], None]
"""Called once with the reason when the link closed, whoever closed it."""


class LinkClosed(ConnectionError):
    """The link is closed; the message says why."""


@dataclass(frozen=True, slots=True)
class Address:
    """Where and how to connect, from an ``amqp://`` or ``amqps://`` URL.

    The query options are aiormq's names, so an existing ``CSMS_AMQP_URL``
    keeps its meaning: ``heartbeat`` (seconds, 0 = none), and for amqps
    ``cafile``, ``certfile``, ``keyfile``, ``no_verify_ssl=1``.
    """

    host: str
    port: int
    user: str
    password: str
    vhost: str
    heartbeat: int
    tls: ssl.SSLContext | None

    @classmethod
    def from_url(cls, url: str) -> Address:
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise ValueError("not an amqp:// or amqps:// URL with a host")
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        tls = _tls_context(query) if parts.scheme == "amqps" else None
        return cls(
            host=parts.hostname,
            port=parts.port or (5671 if tls else 5672),
            user=unquote(parts.username or "guest"),
            password=unquote(parts.password or "guest"),
            vhost=unquote(parts.path[1:]) or "/",
            heartbeat=int(query.get("heartbeat", DEFAULT_HEARTBEAT_S)),
            tls=tls,
        )


def _tls_context(query: dict[str, str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=query.get("cafile"))
    if "certfile" in query:
        context.load_cert_chain(query["certfile"], query.get("keyfile"))
    if query.get("no_verify_ssl", "0") != "0":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class ConfirmLink(asyncio.Protocol):
    """One AMQP connection with one confirm-mode channel; ``await ConfirmLink.open(...)``."""

    def __init__(self, on_confirm: OnConfirm, on_close: OnClose) -> None:
        self._on_confirm = on_confirm
        self._on_close = on_close
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        # Replies to what the link asked (handshake, declare, close); a LinkClosed
        # when the link closes, so that a waiting request ends too.
        self._replies: asyncio.Queue[Frame | LinkClosed] = asyncio.Queue()
        self._drain_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._paused = False
        self._closed: str | None = None
        self.frame_max = DEFAULT_FRAME_MAX
        self._heartbeat = 0
        self._heartbeat_timer: asyncio.TimerHandle | None = None
        self._last_received = self._loop.time()
        self.blocked: str | None = None  # the broker's reason while it blocks publishers

    @classmethod
    async def open(
        cls, address: Address, *, connection_name: str, on_confirm: OnConfirm, on_close: OnClose
    ) -> ConfirmLink:
        """Connect, log in, open the channel in confirm mode. Raises OSError or LinkClosed."""
        loop = asyncio.get_running_loop()
        _, link = await loop.create_connection(
            lambda: cls(on_confirm, on_close),
            address.host,
            address.port,
            ssl=address.tls,
            server_hostname=address.host if address.tls else None,
        )
        try:
            await link._handshake(address, connection_name)
        except BaseException:
            link.abort("the handshake did not complete")
            raise
        return link

    @property
    def closed(self) -> str | None:
        """Why the link closed; None while it is open."""
        return self._closed

    async def declare_topic_exchange(self, name: str) -> None:
        """Declare the durable topic exchange ``name`` (a no-op when it exists as such)."""
        self._send(
            CHANNEL, spec.Exchange.Declare(exchange=name, exchange_type="topic", durable=True)
        )
        await self._expect(spec.Exchange.DeclareOk)

    def write(self, frames: bytes) -> None:
        """Queue marshalled frames for the socket; raises LinkClosed once closed."""
        if self._closed is not None or self._transport is None:
            raise LinkClosed(self._closed or "not connected")
        self._transport.write(frames)

    async def drain(self) -> None:
        """Wait until the socket's buffer is below its high-water mark again."""
        if self._closed is not None:
            raise LinkClosed(self._closed)
        if not self._paused:
            return
        waiter = self._loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter

    async def close(self) -> None:
        """Close politely: Connection.Close, then its Close-Ok (bound it with a timeout);
        the socket is closed however this ends."""
        if self._closed is not None:
            return
        closing = spec.Connection.Close(200, "the relay closes", class_id=0, method_id=0)
        self._send(0, closing)
        try:
            await self._expect(spec.Connection.CloseOk)
        except LinkClosed:
            pass
        finally:
            self.abort("closed by the relay")

    def abort(self, reason: str) -> None:
        """Close at once: the socket, the waiters, then ``on_close(reason)``."""
        if self._closed is not None:
            return
        self._closed = reason
        if self._heartbeat_timer is not None:
            self._heartbeat_timer.cancel()
        if self._transport is not None:
            self._transport.close()
        error = LinkClosed(reason)
        while self._drain_waiters:
            waiter = self._drain_waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)
        self._replies.put_nowait(error)
        self._on_close(reason)

    # --- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is one without subclassing asyncio.Transport).
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        detail = f": {' '.join(str(exc).split()) or type(exc).__name__}" if exc else ""
        self.abort(f"the broker connection was lost{detail}")

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        while self._drain_waiters:
            waiter = self._drain_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._last_received = self._loop.time()
        buffer = self._buffer
        buffer += data
        offset, size = 0, len(buffer)
        while size - offset >= FRAME_OVERHEAD and self._closed is None:
            kind, channel, length = _HEADER.unpack_from(buffer, offset)
            end = offset + FRAME_OVERHEAD + length
            if end > size:
                break
            if buffer[end - 1] != _FRAME_END:
                self.abort("the broker sent a malformed frame")
                return
            if kind == _FRAME_METHOD:
                self._method(buffer, offset, end, channel)
            # Heartbeats only prove the broker alive; content frames (a Basic.Return's)
            # carry nothing the relay reads.
            offset = end
        del buffer[:offset]

    # --- frames -------------------------------------------------------------------

    def _method(self, buffer: bytearray, offset: int, end: int, channel: int) -> None:
        if end - offset == FRAME_OVERHEAD + _CONFIRM.size:
            class_id, method_id, tag, flags = _CONFIRM.unpack_from(buffer, offset + 7)
            if class_id == _BASIC and method_id in (_ACK, _NACK):
                # The frame the broker sends thousands of: read without pamqp.
                self._on_confirm(tag, bool(flags & 1), method_id == _ACK)
                return
        try:
            _, _, frame = pamqp.frame.unmarshal(bytes(buffer[offset:end]))
        except pamqp.exceptions.UnmarshalingException as exc:
            self.abort(f"the broker sent a frame pamqp cannot read: {exc}")
            return
        match frame:
            case spec.Connection.Close():
                self._send(0, spec.Connection.CloseOk())
                self.abort(f"the broker closed the connection: {_reason(frame)}")
            case spec.Channel.Close():
                self._send(channel, spec.Channel.CloseOk())
                self.abort(f"the broker closed the channel: {_reason(frame)}")
            case spec.Connection.Blocked():
                # A memory or disk alarm: publishes wait in the socket until it clears.
                self.blocked = frame.reason or "blocked"
                log.warning("relay_broker_blocked", reason=self.blocked)
            case spec.Connection.Unblocked():
                self.blocked = None
                log.info("relay_broker_unblocked")
            case spec.Basic.Return():
                pass  # only for mandatory publishes, which the relay does not make
            case Frame():
                self._replies.put_nowait(frame)

    def _send(self, channel: int, frame: Frame | pamqp.heartbeat.Heartbeat) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(pamqp.frame.marshal(frame, channel))

    async def _expect(self, kind: type[Any]) -> Any:
        reply = await self._replies.get()
        if isinstance(reply, LinkClosed):
            raise reply
        if not isinstance(reply, kind):
            self.abort(f"the broker sent {reply.name} where {kind.__name__} was due")
            raise LinkClosed(self._closed or "")
        return reply

    async def _handshake(self, address: Address, connection_name: str) -> None:
        assert self._transport is not None
        self._transport.write(pamqp.header.ProtocolHeader().marshal())
        start: spec.Connection.Start = await self._expect(spec.Connection.Start)
        if "PLAIN" not in str(start.mechanisms).split():
            raise LinkClosed(f"the broker offers no PLAIN login ({start.mechanisms})")
        self._send(
            0,
            spec.Connection.StartOk(
                client_properties={
                    "product": "csms",
                    "connection_name": connection_name,
                    "capabilities": {
                        "authentication_failure_close": True,
                        "basic.nack": True,
                        "connection.blocked": True,
                        "publisher_confirms": True,
                    },
                },
                mechanism="PLAIN",
                response=f"\0{address.user}\0{address.password}",
            ),
        )
        tune: spec.Connection.Tune = await self._expect(spec.Connection.Tune)
        self.frame_max = tune.frame_max or DEFAULT_FRAME_MAX
        offered = [s for s in (tune.heartbeat, address.heartbeat) if s]
        self._heartbeat = min(offered) if address.heartbeat and offered else 0
        self._send(
            0,
            spec.Connection.TuneOk(
                channel_max=tune.channel_max, frame_max=self.frame_max, heartbeat=self._heartbeat
            ),
        )
        self._send(0, spec.Connection.Open(virtual_host=address.vhost))
        await self._expect(spec.Connection.OpenOk)
        self._send(CHANNEL, spec.Channel.Open())
        await self._expect(spec.Channel.OpenOk)
        self._send(CHANNEL, spec.Confirm.Select())
        await self._expect(spec.Confirm.SelectOk)
        if self._heartbeat:
            self._beat()

    def _beat(self) -> None:
        """Send a heartbeat every half interval; give up after two silent intervals."""
        if self._closed is not None:
            return
        if self._loop.time() - self._last_received > 2 * self._heartbeat:
            self.abort(f"no frame from the broker for {2 * self._heartbeat} s (heartbeats)")
            return
        self._send(0, pamqp.heartbeat.Heartbeat())
        self._heartbeat_timer = self._loop.call_later(self._heartbeat / 2, self._beat)


def _reason(frame: spec.Connection.Close | spec.Channel.Close) -> str:
    return f"{frame.reply_code} {frame.reply_text}"
