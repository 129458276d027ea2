"""The relay's broker side: one AMQP connection, one confirm channel, the exchange.

``AmqpPublisher.send`` writes a batch of outbox rows with every publish in
flight; what it returns reports how many *leading* rows the broker
confirmed. The relay marks exactly those delivered and resends from the
first one that was not (the ordering this gives, and its one exception, in
ADR 0002 and 0007).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aio_pika
import aiormq
import aiormq.exceptions
import orjson
import pamqp.body
import pamqp.frame
import pamqp.header
from aiormq.abc import ChannelFrame
from pamqp import commands as spec

from csms.adapters.storage.urls import mask_password
from csms.core.events import Event
from csms.core.ports import OutboxRow

CONNECT_TIMEOUT_S = 5.0
CONFIRM_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 1.0

# What a lost or refusing broker raises: aio-pika's and aiormq's errors (the
# connection errors among them are OSErrors) and a channel used after it closed.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    OSError,
    TimeoutError,
)


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


def properties(event: Event) -> aiormq.spec.Basic.Properties:
    """The AMQP properties of ``event``'s message, as the contract names them."""
    return aiormq.spec.Basic.Properties(
        content_type="application/json",
        delivery_mode=2,
        message_id=event.event_id,
        message_type=event.type,
        headers={"station_id": event.station_id},
        app_id="csms",
    )


class AmqpPublisher:
    """``Publisher`` on aio-pika; open it with ``await AmqpPublisher.connect(...)``."""

    def __init__(
        self,
        connection: aio_pika.abc.AbstractConnection,
        channel: aio_pika.abc.AbstractChannel,
        exchange: aio_pika.abc.AbstractExchange,
    ) -> None:
        self._connection = connection
        self._channel = channel
        self._exchange = exchange

    @classmethod
    async def connect(cls, url: str, exchange: str, on_close: Callable[[], None]) -> AmqpPublisher:
        """Connect, open a confirm channel and declare the durable topic ``exchange``."""
        try:
            connection = await aio_pika.connect(
                url,
                timeout=CONNECT_TIMEOUT_S,
                client_properties={"connection_name": "csms-outbox-relay"},
            )
        except BROKER_ERRORS as exc:
            raise BrokerError(f"cannot connect to {mask_password(url)}: {_describe(exc)}") from exc
        try:
            channel = await connection.channel(publisher_confirms=True)
            declared = await channel.declare_exchange(
                exchange, aio_pika.ExchangeType.TOPIC, durable=True, timeout=CONNECT_TIMEOUT_S
            )
        except BROKER_ERRORS as exc:
            await _close(connection)
            reason = _describe(exc)
            raise BrokerError(f"cannot declare the exchange {exchange!r}: {reason}") from exc
        except BaseException:
            await _close(connection)
            raise

        def closed(*_: Any) -> None:
            on_close()

        connection.close_callbacks.add(closed)
        return cls(connection, channel, declared)

    @property
    def is_open(self) -> bool:
        return not (self._connection.is_closed or self._channel.is_closed)

    async def publish(self, rows: Sequence[OutboxRow]) -> Published:
        """Publish ``rows`` in order, all in flight at once; wait for their confirms."""
        return await (await self.send(rows))

    async def send(self, rows: Sequence[OutboxRow]) -> Awaitable[Published]:
        """Write ``rows`` in order; return what awaits their confirms.

        The whole batch goes to aiormq's writer as ONE buffer (the frames
        marshalled by pamqp), each message's confirmation registered under its
        delivery tag as ``Channel.basic_publish`` would: no task, lock round
        and socket write per message, about half the relay's CPU per event
        (docs/benchmarks.md). Order on the wire is the order of ``rows``, and
        a batch sent later goes after it.
        """
        channel = await self._channel.get_underlay_channel()
        assert isinstance(channel, aiormq.Channel)
        try:
            async with asyncio.timeout(CONFIRM_TIMEOUT_S):
                confirmations = await _write_batch(channel, self._exchange.name, rows)
        except TimeoutError:  # a blocked connection (broker memory or disk alarm)
            return _outcome(Published(0, f"the broker took no frames for {CONFIRM_TIMEOUT_S:g} s"))
        except asyncio.CancelledError:
            if _cancelling():
                raise
            return _outcome(Published(0, "the broker connection closed"))
        except BROKER_ERRORS as exc:
            return _outcome(Published(0, _describe(exc)))
        waiting = asyncio.ensure_future(_confirmed_prefix(confirmations))
        # Also when cancelled before it ran: late confirms are then ignored.
        waiting.add_done_callback(lambda _: confirmations.abandon())
        return waiting

    async def close(self) -> None:
        await _close(self._connection)


async def _write_batch(
    channel: aiormq.Channel, exchange: str, rows: Sequence[OutboxRow]
) -> BatchConfirms:
    """Queue the publishes of ``rows`` as one write; what collects their confirms."""
    number = channel.number
    chunk = channel.max_content_size  # negative when the broker set no frame limit
    publish_frames: dict[str, bytes] = {}  # by routing key: the same bytes each time
    parts: list[bytes] = []
    # One future per batch, in the channel's store: aiormq fails it when the
    # channel or connection closes, as it would each message's future.
    confirms = BatchConfirms(len(rows), channel.create_future())
    confirmations: dict[int, Any] = channel.confirmations
    async with channel.lock:
        first_tag = channel.delivery_tag + 1
        try:
            for index, row in enumerate(rows):
                event = row.event
                body = orjson.dumps(event.body())
                method = publish_frames.get(event.type)
                if method is None:
                    method = pamqp.frame.marshal(
                        spec.Basic.Publish(exchange=exchange, routing_key=event.type), number
                    )
                    publish_frames[event.type] = method
                parts.append(method)
                header = pamqp.header.ContentHeader(0, len(body), properties(event))
                parts.append(pamqp.frame.marshal(header, number))
                step = chunk if chunk > 0 else max(len(body), 1)
                for start in range(0, len(body), step):
                    content = pamqp.body.ContentBody(body[start : start + step])
                    parts.append(pamqp.frame.marshal(content, number))
                channel.delivery_tag += 1
                confirmations[channel.delivery_tag] = _Confirmation(confirms, index)
            drained = channel.create_future()
            await channel.write_queue.put(
                ChannelFrame(payload=b"".join(parts), should_close=False, drain_future=drained)
            )
        except BaseException:
            # Nothing reached the broker: give the tags back, as basic_publish does.
            for tag in range(first_tag, channel.delivery_tag + 1):
                confirmations.pop(tag, None)
            channel.delivery_tag = first_tag - 1
            confirms.abandon()
            raise
    await drained  # back-pressure: one batch in the socket buffer at a time
    return confirms


class BatchConfirms:
    """The broker's confirms of one batch, collected without a future per message.

    aiormq settles each delivery tag's entry in ``Channel.confirmations`` with
    ``set_result(frame)`` (an ack) or ``set_exception`` (a nack); a future per
    message, each with its callbacks in aiormq's future stores, was about a
    tenth of a loaded server's CPU under 2.0.1 TransactionEvents
    (docs/benchmarks.md). ``done`` resolves once the confirmed prefix is known:
    every message acked, or a nack with all before it settled.
    """

    __slots__ = ("_error", "_prefix", "_states", "abandoned", "done")

    _ACKED, _NACKED = 1, 2

    def __init__(self, count: int, done: asyncio.Future[Any]) -> None:
        self._states = bytearray(count)
        self._prefix = 0
        self._error: str | None = None
        self.abandoned = False
        self.done = done
        if count == 0 and not done.done():
            done.set_result(None)

    @property
    def confirmed(self) -> int:
        """How many leading messages the broker acked so far."""
        return self._prefix

    @property
    def error(self) -> str | None:
        """The first nack's reason that arrived (it may be a later tag's)."""
        return self._error

    def settle(self, index: int, error: BaseException | None) -> None:
        if self.abandoned or self._states[index]:
            return
        self._states[index] = self._NACKED if error is not None else self._ACKED
        if error is not None and self._error is None:
            self._error = _describe(error)
        states, prefix = self._states, self._prefix
        while prefix < len(states) and states[prefix] == self._ACKED:
            prefix += 1
        self._prefix = prefix
        finished = prefix == len(states) or states[prefix] == self._NACKED
        if finished and not self.done.done():
            self.done.set_result(None)

    def abandon(self) -> None:
        """Stop listening: confirms that still arrive are ignored."""
        self.abandoned = True
        if not self.done.done():
            self.done.cancel()


class _Confirmation:
    """One delivery tag's entry in ``Channel.confirmations``: the part of
    ``asyncio.Future`` aiormq calls, reported to the batch."""

    __slots__ = ("_batch", "_index")

    def __init__(self, batch: BatchConfirms, index: int) -> None:
        self._batch = batch
        self._index = index

    def done(self) -> bool:
        return self._batch.abandoned

    def cancelled(self) -> bool:
        return self._batch.abandoned  # aiormq then logs an ignored confirm at DEBUG only

    def set_result(self, _frame: object) -> None:
        self._batch.settle(self._index, None)

    def set_exception(self, error: BaseException) -> None:
        self._batch.settle(self._index, error)


async def _confirmed_prefix(confirms: BatchConfirms) -> Published:
    """How many leading messages are acked, waiting up to CONFIRM_TIMEOUT_S."""
    try:
        async with asyncio.timeout(CONFIRM_TIMEOUT_S):
            await confirms.done
    except TimeoutError:
        return Published(confirms.confirmed, f"no confirm within {CONFIRM_TIMEOUT_S:g} s")
    except asyncio.CancelledError:
        # aiormq fails what waits on a connection it closes itself (a missed
        # heartbeat) with CancelledError: that is the broker's loss.
        if _cancelling():
            raise
        return Published(confirms.confirmed, "the broker connection closed")
    except Exception as exc:  # the channel or connection closed
        return Published(confirms.confirmed, _describe(exc))
    finally:
        confirms.abandon()
    return Published(confirms.confirmed, confirms.error)


async def _outcome(published: Published) -> Published:
    return published


def _cancelling() -> bool:
    """Whether this task itself is being cancelled (not a future it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _close(connection: aio_pika.abc.AbstractConnection) -> None:
    """Close without waiting long for a broker that may be gone."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await connection.close()
    except BROKER_ERRORS:
        pass


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return mask_password(f"{type(exc).__name__}: {text}")
