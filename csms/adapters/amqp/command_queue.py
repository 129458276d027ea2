"""The RabbitMQ command queue: the REST API's commands for services that speak
AMQP (docs/commands.md).

The CSMS consumes the durable queue ``CSMS_AMQP_COMMAND_QUEUE`` when
``CSMS_AMQP_URL`` is set. A message is a JSON object naming a station and a
neutral ``command`` (with its fields, top level or in ``payload``) or a raw
OCPP ``action`` with its ``payload``, optionally ``queue``; the answer (the
REST API's status code and body) goes to the message's ``reply_to`` with its
``correlation_id``. A message is acknowledged once answered; one the broker
delivers again (the CSMS stopped while handling it) is not carried out a
second time but answered 409 ``redelivered``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import aio_pika
import orjson
import structlog

from csms.adapters.amqp.publisher import BROKER_ERRORS
from csms.adapters.amqp.relay import Backoff
from csms.adapters.storage.urls import mask_password
from csms.services.commands import NEUTRAL_COMMANDS
from csms.services.dispatcher import CommandDispatcher, Submission
from csms.services.operator.errors import OperatorError
from csms.services.operator.requests import QUEUE, QueueWindow, queue_of
from csms.services.operator.resources import CommandResource
from csms.services.operator.rules import BODY_STATUS, STATION_ID, check
from csms.telemetry.outage import Outage

log = structlog.get_logger("csms.command_queue")

CONNECT_TIMEOUT_S = 5.0
PREFETCH = 16
_ENVELOPE = frozenset({"station_id", "command", "action", "payload", "queue"})


def _reply(status: int, body: dict[str, Any], command_id: str | None = None) -> dict[str, Any]:
    return {"status": status, "body": body, "command_id": command_id}


def _refusal(status: int, kind: str, message: str) -> dict[str, Any]:
    return _reply(status, {"error": kind, "message": message})


async def answer(
    dispatcher: CommandDispatcher, raw: bytes, *, redelivered: bool = False, source: str = "amqp"
) -> dict[str, Any]:
    """Carry out one command message; its reply ``{"status", "body", "command_id"}``."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _refusal(400, "invalid_json", "the message body is not valid JSON")
    if not isinstance(message, dict):
        return _refusal(400, "invalid_json", "the message body must be a JSON object")
    station_id, name, action = (
        message.get("station_id"),
        message.get("command"),
        message.get("action"),
    )
    try:
        station_id = check(
            STATION_ID, station_id, name="station_id", status=BODY_STATUS, kind="invalid_value"
        )
    except OperatorError as exc:
        return _reply(exc.status, exc.body)
    if (name is None) == (action is None) or not isinstance(name or action, str):
        return _refusal(422, "invalid_value", "give either command (neutral) or action (OCPP)")
    if name is not None and name not in NEUTRAL_COMMANDS:
        return _refusal(
            404, "unknown_command", f"no command {name!r}: one of {', '.join(NEUTRAL_COMMANDS)}"
        )
    payload = message.get("payload")
    if payload is None:
        payload = {k: v for k, v in message.items() if k not in _ENVELOPE} if name else {}
    if not isinstance(payload, dict):
        return _refusal(422, "invalid_value", "payload is a JSON object")
    if redelivered:
        return _refusal(
            409,
            "redelivered",
            "delivered again after the CSMS stopped while handling it: it may have been "
            "carried out; see the station's commands and send it again if it was not",
        )
    try:
        spec = check(
            QUEUE, message.get("queue"), name="queue", status=BODY_STATUS, kind=QueueWindow.kind
        )
        queue, expires_at = queue_of(spec, dispatcher.now())
        outcome = await dispatcher.submit(
            Submission(
                station_id,
                payload,
                name=name,
                action=action,
                queue=queue,
                expires_at=expires_at,
                source=source,
            )
        )
    except OperatorError as exc:  # CommandRefused included
        return _reply(exc.status, exc.body, exc.body.get("command_id"))
    command = outcome.command
    if outcome.queued:
        return _reply(202, CommandResource.of(command).dump(), command.id)
    if name is not None:
        return _reply(200, CommandResource.of(command).dump(), command.id)
    return _reply(200, outcome.response, command.id)


class CommandConsumer:
    """Consumes the command queue through broker outages; ``start()``, later ``stop()``."""

    def __init__(
        self,
        url: str,
        queue: str,
        dispatcher: CommandDispatcher,
        *,
        prefetch: int = PREFETCH,
        backoff: Backoff | None = None,
    ) -> None:
        self._url = url
        self._queue = queue
        self._dispatcher = dispatcher
        self._prefetch = prefetch
        self._backoff = backoff or Backoff()
        self._run_task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._consuming = asyncio.Event()
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._outage = Outage()
        self._stopping = False

    @property
    def broker_state(self) -> str:
        """ "up" while consuming over an open connection, else "down"."""
        connection = self._connection
        up = self._consuming.is_set() and connection is not None and not connection.is_closed
        return "up" if up else "down"

    def start(self) -> None:
        self._run_task = asyncio.create_task(self._run(), name="csms-command-queue")

    async def wait_consuming(self) -> None:
        """Return once the queue is declared and consumed (tests, start-up checks)."""
        await self._consuming.wait()

    async def stop(self) -> None:
        """Stop consuming; commands in hand are abandoned (their messages come back
        and are answered ``redelivered``)."""
        self._stopping = True
        tasks = [*self._handlers, *([self._run_task] if self._run_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                connection = await aio_pika.connect_robust(
                    self._url,
                    timeout=CONNECT_TIMEOUT_S,
                    client_properties={"connection_name": "csms-command-queue"},
                )
            except BROKER_ERRORS as exc:
                # A warning when the outage begins, its retries at debug.
                level = log.warning if self._outage.failed() else log.debug
                level(
                    "command_queue_unavailable",
                    broker=mask_password(self._url),
                    error=str(exc),
                    attempt=attempt + 1,
                )
                await asyncio.sleep(self._backoff.delay(attempt))
                attempt += 1
                continue
            break
        self._connection = connection
        async with connection:
            # A robust connection reconnects, and re-declares and re-consumes, by itself.
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self._prefetch)
            queue = await channel.declare_queue(self._queue, durable=True)
            self._exchange = channel.default_exchange
            await queue.consume(self._on_message)
            self._consuming.set()
            log.info("command_queue_consuming", queue=self._queue, **self._recovered())
            # aio-pika reconnects by itself; it tells us when the link goes and comes back.
            connection.close_callbacks.add(self._on_lost)
            connection.reconnect_callbacks.add(self._on_reconnected)
            await asyncio.Future()  # until stop() cancels us

    def _on_lost(self, _: object, error: BaseException | None = None) -> None:
        if self._stopping or not self._outage.failed():
            return
        reason = " ".join(str(error).split()) or type(error).__name__ if error else "closed"
        log.warning("command_queue_broker_lost", error=reason)

    def _on_reconnected(self, _: object) -> None:
        log.info("command_queue_consuming", queue=self._queue, **self._recovered())

    def _recovered(self) -> dict[str, Any]:
        return self._outage.recovered() or {}

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self._spawn(self._handle(message))

    async def _handle(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        """Answer and acknowledge every message: one left unacknowledged holds
        a prefetch slot until the broker connection ends."""
        try:
            reply = await answer(
                self._dispatcher, message.body, redelivered=bool(message.redelivered)
            )
        except Exception:  # our bug: the sender still gets an answer (CancelledError passes)
            log.exception("command_message_crashed", correlation_id=message.correlation_id)
            reply = _refusal(500, "internal_error", "the CSMS could not handle this command")
        log.info(
            "command_message_answered",
            status=reply["status"],
            command_id=reply["command_id"],
            correlation_id=message.correlation_id,
        )
        if message.reply_to and self._exchange is not None:
            try:
                await self._exchange.publish(
                    aio_pika.Message(
                        orjson.dumps(reply),
                        content_type="application/json",
                        correlation_id=message.correlation_id,
                        app_id="csms",
                    ),
                    routing_key=message.reply_to,
                    mandatory=False,
                )
            except BROKER_ERRORS as exc:
                log.warning("command_reply_lost", reply_to=message.reply_to, error=str(exc))
        with contextlib.suppress(*BROKER_ERRORS):
            await message.ack()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
