"""The relay's broker side: one AMQP connection, one confirm channel, the exchange.

``AmqpPublisher.send`` writes a batch of outbox rows with every publish in
flight; what it returns reports how many *leading* rows the broker
confirmed. The relay marks exactly those delivered and resends from the
first one that was not (the ordering this gives, and its one exception, in
ADR 0002 and 0007). The connection is ``ConfirmLink`` (pamqp frames on an
asyncio protocol), not aiormq: ADR 0010.
"""

from __future__ import annotations

import asyncio
import collections
import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import aiormq.exceptions
import orjson
import pamqp.body
import pamqp.frame
from pamqp import commands as spec

from csms.adapters.amqp.confirm_link import (
    CHANNEL,
    FRAME_OVERHEAD,
    Address,
    ConfirmLink,
    LinkClosed,
)
from csms.adapters.storage.urls import mask_password
from csms.core.events import Event
from csms.core.ports import OutboxRow

CONNECT_TIMEOUT_S = 5.0
CONFIRM_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 1.0

# What a lost or refusing broker raises: aio-pika's and aiormq's errors (the
# command consumer's; the connection errors among them are OSErrors), a channel
# used after it closed, and the relay's own link closing (a ConnectionError).
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    OSError,
    TimeoutError,
)

# ... and a URL the link cannot use (the settings check only its scheme and host).
CONNECT_ERRORS: tuple[type[BaseException], ...] = (*BROKER_ERRORS, ValueError)


class BrokerError(Exception):
    """The broker cannot be reached, or refused what the relay asked of it."""


@dataclass(frozen=True, slots=True)
class Published:
    """The outcome of one batch: its first ``confirmed`` rows are confirmed."""

    confirmed: int
    error: str | None = None  # why the row after them was not; None when all were


class Publisher(Protocol):
    """A live broker link that publishes outbox rows (a fake in tests)."""

    @property
    def is_open(self) -> bool: ...

    async def send(self, rows: Sequence[OutboxRow]) -> Awaitable[Published]:
        """Put ``rows`` on the wire, in order after anything sent before; what it
        returns resolves once the broker confirmed them (or some of them)."""
        ...

    async def close(self) -> None: ...


Connect = Callable[[Callable[[], None]], Awaitable[Publisher]]
"""Open a Publisher; its argument is called when the link closes. Raises BrokerError."""


def properties(event: Event) -> spec.Basic.Properties:
    """The AMQP properties of ``event``'s message, as the contract names them."""
    return spec.Basic.Properties(
        content_type="application/json",
        delivery_mode=2,
        message_id=event.event_id,
        message_type=event.type,
        headers={"station_id": event.station_id},
        app_id="csms",
    )


class AmqpPublisher:
    """``Publisher`` on a ``ConfirmLink``; open it with ``await AmqpPublisher.connect(...)``."""

    def __init__(self, link: ConfirmLink, exchange: str, confirms: ConfirmBook) -> None:
        self._link = link
        self._exchange = exchange
        self._confirms = confirms

    @classmethod
    async def connect(cls, url: str, exchange: str, on_close: Callable[[], None]) -> AmqpPublisher:
        """Connect, open a confirm channel and declare the durable topic ``exchange``."""
        confirms = ConfirmBook()

        def closed(reason: str) -> None:
            confirms.fail(reason)
            on_close()

        try:
            address = Address.from_url(url)
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                link = await ConfirmLink.open(
                    address,
                    connection_name="csms-outbox-relay",
                    on_confirm=confirms.confirm,
                    on_close=closed,
                )
        except CONNECT_ERRORS as exc:
            raise BrokerError(f"cannot connect to {mask_password(url)}: {_describe(exc)}") from exc
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await link.declare_topic_exchange(exchange)
        except BROKER_ERRORS as exc:
            link.abort("the exchange could not be declared")
            reason = _describe(exc)
            raise BrokerError(f"cannot declare the exchange {exchange!r}: {reason}") from exc
        except BaseException:
            link.abort("cancelled while connecting")
            raise
        return cls(link, exchange, confirms)

    @property
    def is_open(self) -> bool:
        return self._link.closed is None

    async def publish(self, rows: Sequence[OutboxRow]) -> Published:
        """Publish ``rows`` in order, all in flight at once; wait for their confirms."""
        return await (await self.send(rows))

    async def send(self, rows: Sequence[OutboxRow]) -> Awaitable[Published]:
        """Write ``rows`` in order; return what awaits their confirms.

        The whole batch is ONE socket write (the frames marshalled by pamqp)
        and one collector for its confirms: no task, lock round or future per
        message (docs/benchmarks.md). Order on the wire is the order of
        ``rows``, and a batch sent later goes after it.
        """
        link = self._link
        if link.closed is not None:
            return _outcome(Published(0, link.closed))
        frames = _marshal(self._exchange, rows, link.frame_max)
        # Registered and written with no await in between: tags follow the wire order.
        batch = self._confirms.expect(len(rows))
        try:
            link.write(frames)
            async with asyncio.timeout(CONFIRM_TIMEOUT_S):
                await link.drain()  # back-pressure: one batch in the socket buffer at a time
        except TimeoutError:  # a blocked connection (broker memory or disk alarm)
            reason = f"the broker took no frames for {CONFIRM_TIMEOUT_S:g} s"
            link.abort(reason)
            return _outcome(Published(0, reason))
        except LinkClosed as exc:
            return _outcome(Published(0, str(exc)))
        waiting = asyncio.ensure_future(_confirmed_prefix(batch))
        # Also when cancelled before it ran: late confirms are then ignored.
        waiting.add_done_callback(lambda _: batch.abandon())
        return waiting

    async def close(self) -> None:
        """Close without waiting long for a broker that may be gone."""
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._link.close()
        except TimeoutError:
            pass


def _marshal(exchange: str, rows: Sequence[OutboxRow], frame_max: int) -> bytes:
    """The frames that publish ``rows`` to ``exchange``, in order, as one buffer."""
    chunk = frame_max - FRAME_OVERHEAD
    publish_frames: dict[str, bytes] = {}  # by routing key: the same bytes each time
    parts: list[bytes] = []
    for row in rows:
        event = row.event
        body = orjson.dumps(event.body())
        method = publish_frames.get(event.type)
        if method is None:
            publish = spec.Basic.Publish(exchange=exchange, routing_key=event.type)
            method = publish_frames[event.type] = pamqp.frame.marshal(publish, CHANNEL)
        parts.append(method)
        parts.append(content_header_frame(event, len(body)))
        for start in range(0, len(body), chunk):
            content = pamqp.body.ContentBody(body[start : start + chunk])
            parts.append(pamqp.frame.marshal(content, CHANNEL))
    return b"".join(parts)


# The content header of an event's message, written directly: pamqp's generic
# property encoder was more than half of the relay's marshalling CPU. The bytes are
# checked against pamqp's for the same properties (tests/unit/test_amqp_frames.py).
_PROPERTY_FLAGS = (
    0x8000  # content-type
    | 0x2000  # headers
    | 0x1000  # delivery-mode
    | 0x0080  # message-id
    | 0x0020  # type
    | 0x0008  # app-id
)
# frame type, channel, size; class, weight, body size, property flags
_HEADER_START = struct.Struct(">BHIHHQH")
_CONTENT_TYPE = b"\x10application/json"
_STATION_ID_KEY = b"\x0astation_idS"  # short-string key, then "S": a long string
_APP_ID = b"\x04csms"
_FRAME_HEADER, _FRAME_END = 2, b"\xce"


def content_header_frame(event: Event, body_size: int) -> bytes:
    """The marshalled content header frame of ``event``'s message: ``properties(event)``."""
    station_id = event.station_id.encode()
    message_id = event.event_id.encode()
    kind = event.type.encode()
    if len(message_id) > 255 or len(kind) > 255:
        raise ValueError("an AMQP short string holds at most 255 bytes")
    headers = _STATION_ID_KEY + len(station_id).to_bytes(4, "big") + station_id
    fields = b"".join(
        (
            _CONTENT_TYPE,
            len(headers).to_bytes(4, "big"),
            headers,
            b"\x02",  # delivery mode: persistent
            bytes((len(message_id),)),
            message_id,
            bytes((len(kind),)),
            kind,
            _APP_ID,
        )
    )
    size = 14 + len(fields)  # class, weight, body size and flags before the fields
    start = _HEADER_START.pack(_FRAME_HEADER, CHANNEL, size, 60, 0, body_size, _PROPERTY_FLAGS)
    return start + fields + _FRAME_END


class ConfirmBook:
    """The delivery tags in flight on one channel, batch by batch.

    The broker numbers a channel's publishes 1, 2, ... in the order they
    arrived, and confirms them by tag, one at a time or "all up to N"
    (multiple). Batches are registered in the order they are written, so the
    tags of each are a contiguous run after the previous one's.
    """

    __slots__ = ("_batches", "_next_tag")

    def __init__(self) -> None:
        self._next_tag = 1
        self._batches: collections.deque[BatchConfirms] = collections.deque()

    def expect(self, count: int) -> BatchConfirms:
        """The collector for the next ``count`` publishes on the wire."""
        batch = BatchConfirms(self._next_tag, count)
        self._next_tag += count
        if count:
            self._batches.append(batch)
        return batch

    def confirm(self, tag: int, multiple: bool, acked: bool) -> None:
        """One Basic.Ack or Basic.Nack frame."""
        error = None if acked else f"the broker refused the publish (basic.nack, tag {tag})"
        batches = self._batches
        for batch in batches:
            if batch.first_tag > tag:
                break
            last = min(tag - batch.first_tag, batch.count - 1)
            if multiple:
                batch.settle(batch.unsettled, last, error)
            elif tag - batch.first_tag < batch.count:
                batch.settle(last, last, error)
                break
        while batches and batches[0].finished:
            batches.popleft()

    def fail(self, reason: str) -> None:
        """The link closed: whatever is unconfirmed stays so."""
        while self._batches:
            self._batches.popleft().fail(reason)


class BatchConfirms:
    """The broker's confirms of one batch, collected without a future per message.

    ``done`` resolves once the confirmed prefix is known: every message
    acked, or a nack with all before it settled, or the link lost.
    """

    __slots__ = ("_error", "_prefix", "_states", "abandoned", "count", "done", "first_tag")

    _OPEN, _ACKED, _NACKED = 0, 1, 2

    def __init__(self, first_tag: int, count: int) -> None:
        self.first_tag = first_tag
        self.count = count
        self._states = bytearray(count)
        self._prefix = 0
        self._error: str | None = None
        self.abandoned = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if count == 0:
            self.done.set_result(None)

    @property
    def confirmed(self) -> int:
        """How many leading messages the broker acked so far."""
        return self._prefix

    @property
    def error(self) -> str | None:
        """Why not all were confirmed: the first nack that arrived, or the lost link."""
        return self._error

    @property
    def unsettled(self) -> int:
        """The index of the first message neither acked nor nacked (``count`` if none)."""
        found = self._states.find(self._OPEN)
        return self.count if found < 0 else found

    @property
    def finished(self) -> bool:
        return self.abandoned or self.done.done()

    def settle(self, first: int, last: int, error: str | None) -> None:
        """Messages ``first`` to ``last`` (indices, inclusive) acked, or nacked with
        ``error``; those already settled keep their outcome."""
        if self.finished:
            return
        states = self._states
        mark = self._ACKED if error is None else self._NACKED
        for index in range(first, last + 1):
            if not states[index]:
                states[index] = mark
        if error is not None and self._error is None:
            self._error = error
        prefix = self._prefix
        while prefix < self.count and states[prefix] == self._ACKED:
            prefix += 1
        self._prefix = prefix
        if prefix == self.count or states[prefix] == self._NACKED:
            self.done.set_result(None)

    def fail(self, reason: str) -> None:
        """The link closed before all were settled."""
        if self.finished:
            return
        self._error = reason
        self.done.set_result(None)

    def abandon(self) -> None:
        """Stop listening: confirms that still arrive are ignored."""
        self.abandoned = True
        if not self.done.done():
            self.done.cancel()


async def _confirmed_prefix(confirms: BatchConfirms) -> Published:
    """How many leading messages are acked, waiting up to CONFIRM_TIMEOUT_S."""
    try:
        async with asyncio.timeout(CONFIRM_TIMEOUT_S):
            await confirms.done
    except TimeoutError:
        return Published(confirms.confirmed, f"no confirm within {CONFIRM_TIMEOUT_S:g} s")
    finally:
        confirms.abandon()
    return Published(confirms.confirmed, confirms.error)


async def _outcome(published: Published) -> Published:
    return published


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return mask_password(f"{type(exc).__name__}: {text}")
