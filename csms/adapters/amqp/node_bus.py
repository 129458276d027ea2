"""The cluster's NodeBus on RabbitMQ: one queue per process, a direct exchange.

Each process declares ``<CSMS_AMQP_EXCHANGE>.node.<node id>`` (exclusive: it
goes with the process's connection, so a process that dies leaves no queue)
bound with its node id on the direct exchange ``<CSMS_AMQP_EXCHANGE>.nodes``.
A request is published there with the target's node id as routing key,
``mandatory`` and publisher confirms: a request that no queue takes comes
back, and the caller learns the node is gone at once. Requests carry a
per-message TTL (``expiration``), so one not taken in time is dropped by
the broker rather than carried out late. Replies come back to the asker's
own queue with the request's ``correlation_id``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from typing import Any

import aio_pika
import orjson
import structlog
from pamqp.commands import Basic

from csms.adapters.amqp.publisher import BROKER_ERRORS
from csms.adapters.amqp.relay import Backoff
from csms.adapters.storage.urls import mask_password
from csms.core.errors import ClusterUnavailableError, NodeUnreachableError
from csms.core.ports import NodeHandler
from csms.telemetry.outage import Outage

log = structlog.get_logger("csms.node_bus")

CONNECT_TIMEOUT_S = 5.0
# A request not taken by its node within this is dropped by the broker.
PICKUP_SECONDS = 1.0
_REQUEST, _REPLY = "csms.node.request", "csms.node.reply"


class AmqpNodeBus:
    """``NodeBus`` over RabbitMQ; ``start()``, later ``stop()``."""

    def __init__(
        self, url: str, exchange: str, node_id: str, *, backoff: Backoff | None = None
    ) -> None:
        self._url = url
        self._exchange_name = f"{exchange}.nodes"
        self._queue_name = f"{exchange}.node.{node_id}"
        self._node_id = node_id
        self._backoff = backoff or Backoff()
        self._handler: NodeHandler | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._run_task: asyncio.Task[None] | None = None
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._ready = asyncio.Event()
        self._outage = Outage()
        self._stopping = False

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def broker_state(self) -> str:
        connection = self._connection
        up = self._ready.is_set() and connection is not None and not connection.is_closed
        return "up" if up else "down"

    def serve(self, handler: NodeHandler) -> None:
        self._handler = handler

    def start(self) -> None:
        self._run_task = asyncio.create_task(self._run(), name="csms-node-bus")

    async def stop(self) -> None:
        self._stopping = True
        tasks = [*self._tasks, *([self._run_task] if self._run_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for waiter in self._pending.values():
            if not waiter.done():
                # Published, so possibly carried out: its outcome is unknown (504), not "not sent".
                waiter.set_exception(TimeoutError())
        self._pending.clear()

    # --- asking ------------------------------------------------------------------

    async def request(
        self, node_id: str, message: dict[str, Any], expires_in: float
    ) -> dict[str, Any]:
        correlation_id = uuid.uuid4().hex
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = waiter
        try:
            # One bound for all of it: a broker that swallows the publish as well.
            async with asyncio.timeout(expires_in):
                await self._publish(node_id, message, correlation_id)
                return await waiter
        finally:
            self._pending.pop(correlation_id, None)

    async def tell(self, node_id: str, message: dict[str, Any]) -> None:
        async with asyncio.timeout(PICKUP_SECONDS * 5):
            await self._publish(node_id, message, None)

    async def _publish(
        self, node_id: str, message: dict[str, Any], correlation_id: str | None
    ) -> None:
        exchange = self._exchange
        if exchange is None or not self._ready.is_set():
            raise ClusterUnavailableError("the broker linking the CSMS processes is unreachable")
        try:
            confirmation = await exchange.publish(
                aio_pika.Message(
                    orjson.dumps(message),
                    content_type="application/json",
                    type=_REQUEST,
                    correlation_id=correlation_id,
                    reply_to=self._node_id if correlation_id else None,
                    # Taken within a second or dropped by the broker: never carried
                    # out after its asker stopped waiting (ADR 0011).
                    expiration=PICKUP_SECONDS,
                    app_id="csms",
                ),
                routing_key=node_id,
                mandatory=True,
            )
        except BROKER_ERRORS as exc:
            raise ClusterUnavailableError(f"cannot reach the broker: {exc}") from None
        if not isinstance(confirmation, Basic.Ack):  # returned: no queue of that node
            raise NodeUnreachableError(f"no CSMS process {node_id!r} listens")

    # --- the queue ------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                await self._serve_queue()
            except BROKER_ERRORS as exc:
                self._ready.clear()
                # A warning when the outage begins, its retries at debug.
                level = log.warning if self._outage.failed() else log.debug
                level(
                    "node_bus_unavailable",
                    broker=mask_password(self._url),
                    error=str(exc) or type(exc).__name__,
                    attempt=attempt + 1,
                )
                await asyncio.sleep(self._backoff.delay(attempt))
                attempt += 1
                continue
            attempt = 0

    async def _serve_queue(self) -> None:
        """Connect, declare this node's queue and consume it until the link goes;
        aio-pika re-declares and re-consumes after a reconnect by itself."""
        connection = await aio_pika.connect_robust(
            self._url,
            timeout=CONNECT_TIMEOUT_S,
            client_properties={"connection_name": f"csms-node-{self._node_id}"},
        )
        self._connection = connection
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            # Gone with the last process's queue: the cluster's line leaves nothing behind.
            exchange = await channel.declare_exchange(
                self._exchange_name, aio_pika.ExchangeType.DIRECT, auto_delete=True
            )
            # Exclusive: a second process with this CSMS_NODE_ID is refused here.
            queue = await channel.declare_queue(self._queue_name, exclusive=True, auto_delete=True)
            await queue.bind(exchange, routing_key=self._node_id)
            await queue.consume(self._on_message, no_ack=True)
            self._exchange = exchange
            connection.close_callbacks.add(self._on_lost)
            connection.reconnect_callbacks.add(self._on_reconnected)
            self._on_reconnected(connection)
            await asyncio.Future()  # until stop() cancels us

    def _on_lost(self, _: object, error: BaseException | None = None) -> None:
        self._ready.clear()
        if not self._stopping and self._outage.failed():
            reason = " ".join(str(error).split()) if error else "closed"
            log.warning("node_bus_lost", error=reason or type(error).__name__)

    def _on_reconnected(self, _: object) -> None:
        self._ready.set()
        log.info("node_bus_ready", queue=self._queue_name, **(self._outage.recovered() or {}))

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        try:
            body = orjson.loads(message.body)
        except orjson.JSONDecodeError:
            log.warning("node_message_unreadable", type=message.type)
            return
        if message.type == _REPLY:
            waiter = self._pending.get(message.correlation_id or "")
            if waiter is not None and not waiter.done():
                waiter.set_result(body)
            return
        self._spawn(self._answer(body, message.reply_to, message.correlation_id))

    async def _answer(
        self, request: dict[str, Any], reply_to: str | None, correlation_id: str | None
    ) -> None:
        if self._handler is None:
            return
        try:
            reply = await self._handler(request)
        except Exception:  # our bug: the asker still gets an answer (CancelledError passes)
            log.exception("node_request_crashed", op=request.get("op"))
            reply = {"error": "internal_error"}
        if reply is None or not reply_to or self._exchange is None:
            return
        try:
            await self._exchange.publish(
                aio_pika.Message(
                    orjson.dumps(reply),
                    content_type="application/json",
                    type=_REPLY,
                    correlation_id=correlation_id,
                    app_id="csms",
                ),
                routing_key=reply_to,
                mandatory=False,
            )
        except BROKER_ERRORS as exc:
            log.warning("node_reply_lost", reply_to=reply_to, error=str(exc))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
