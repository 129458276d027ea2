"""Sending commands to stations, for the REST API and the RabbitMQ command queue.

A command goes out at once when its station is connected to this process.
Otherwise, when asked to, it is queued (persisted) and sent when the station
connects, oldest first and one at a time, after the connection is set up; a
queued command whose expiry passes first is marked expired. Every command is
recorded with its outcome (csms.services.commands); what a station's answer
changes is stored with it.

Errors are ``CommandRefused`` with the HTTP status the REST API answers
(the RabbitMQ reply carries the same): 404 unknown station, 409 not
connected or disconnected before answering, 422 invalid request, 502
CALLERROR or invalid answer, 503 database down, 504 no answer in time.
Stations are reached through the ``StationLink`` port; each OCPP version
through the ``OcppVersion`` protocol (csms.services.versions), both injected.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from csms.core.domain import Command, CommandStatus
from csms.core.errors import (
    CallErrorReceived,
    CallTimeoutError,
    ClusterUnavailableError,
    ConflictError,
    InvalidRequestError,
    OcppError,
    StationDisconnectedError,
    StationNotConnectedError,
    StorageError,
)
from csms.core.ports import CommandFilter, CommandQueueStore, LinkOpened, StationLink
from csms.services import Services
from csms.services.commands import NO_EFFECTS, CommandError, NeutralCommand
from csms.services.operator.errors import OperatorError
from csms.services.operator.limits import (
    DEFAULT_QUEUE_EXPIRY,
    MAX_PASSWORD,
    MAX_QUEUE_EXPIRY,
    MIN_PASSWORD,
)
from csms.services.versions import OcppVersion
from csms.telemetry import metrics

log = structlog.get_logger("csms.commands")

SWEEP_INTERVAL = 5.0
# A command still "sent" this long past the call timeout lost its answer (the
# CSMS stopped while waiting): it is failed when its station connects again.
ORPHAN_GRACE = timedelta(seconds=5)


class CommandRefused(OperatorError):
    """The command was not carried out; ``status`` is the HTTP status to answer."""

    def __init__(
        self, status: int, kind: str, message: str, command_id: str | None = None, **extra: Any
    ) -> None:
        super().__init__(status, kind, message, **extra)
        if command_id is not None:
            self.body["command_id"] = command_id


@dataclass(frozen=True, slots=True)
class Submission:
    """What a caller asks: a neutral ``name`` with its fields, or a raw OCPP
    ``action`` with its payload (``body``); queued if the station is offline
    and ``queue`` is set, until ``expires_at`` (default: in 24 h)."""

    station_id: str
    body: dict[str, Any]
    name: str | None = None
    action: str | None = None
    queue: bool = False
    expires_at: datetime | None = None
    source: str = "api"


@dataclass(frozen=True, slots=True)
class Outcome:
    """A command sent and answered (``queued`` False), or queued."""

    command: Command
    queued: bool

    @property
    def response(self) -> dict[str, Any]:
        return self.command.response or {}


class CommandDispatcher:
    """Sends and queues commands; ``start()`` its expiry sweeper, later ``stop()``.
    ``on_connect`` is the StationLink connect listener that drains the queue."""

    def __init__(
        self,
        storage: CommandQueueStore,
        services: Services,
        stations: StationLink,
        versions: Mapping[str, OcppVersion],
        *,
        call_timeout: float = 30.0,
        sweep_interval: float = SWEEP_INTERVAL,
    ) -> None:
        self._storage = storage
        self._services = services
        self._commands = services.commands
        self._stations = stations
        self._by_version = {v.ocpp_version: v for v in versions.values()}
        self._sweep_interval = sweep_interval
        self._orphaned_after = timedelta(seconds=call_timeout) + ORPHAN_GRACE
        self._draining: set[str] = set()
        self._drain_again: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._spawn(self._sweep_forever())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def on_connect(self, opened: LinkOpened) -> None:
        await self.drain(opened.station_id)

    async def _connected_version(self, station_id: str) -> OcppVersion | None:
        """The version of the station's open connection on any process; None
        when no process holds it."""
        held = await self._stations.locate(station_id)
        return self._by_version.get(held.ocpp_version) if held is not None else None

    # --- submitting ----------------------------------------------------------

    def now(self) -> datetime:
        """The services' clock: every edge reckons a queue's deadline from it."""
        return self._services.clock()

    async def submit(self, sub: Submission) -> Outcome:
        """Send the command now, or queue it; raise CommandRefused."""
        try:
            station = await self._storage.find_station(sub.station_id)
            if station is None:
                raise CommandRefused(404, "station_not_found", f"no station {sub.station_id!r}")
            connected = await self._connected_version(sub.station_id)
            if connected is not None:
                return await self._send_now(sub, connected)
            if not sub.queue:
                raise CommandRefused(
                    409, "station_not_connected", f"station {sub.station_id!r} is not connected"
                )
            adapter = self._by_version.get(station.ocpp_version or "")
            if adapter is None:
                raise CommandRefused(
                    409,
                    "station_protocol_unknown",
                    f"station {sub.station_id!r} never connected: its protocol is unknown, "
                    "so a command cannot be queued for it",
                )
            return await self._queue(sub, adapter)
        except StorageError as exc:
            log.error("command_not_recorded", station_id=sub.station_id, error=str(exc))
            raise CommandRefused(
                503, "storage_unavailable", "the CSMS cannot reach its database; retry later"
            ) from None

    async def _queue(self, sub: Submission, adapter: OcppVersion) -> Outcome:
        now = self._services.clock()
        expires_at = sub.expires_at or now + DEFAULT_QUEUE_EXPIRY
        if expires_at <= now:
            raise CommandRefused(422, "invalid_queue", "queue.expires_at is in the past")
        if expires_at > now + MAX_QUEUE_EXPIRY:
            raise CommandRefused(
                422, "invalid_queue", f"a command waits at most {MAX_QUEUE_EXPIRY.days} days"
            )
        request, action, payload = self._prepare(sub, adapter)
        if adapter.commands.password(action, payload) is not None:
            raise CommandRefused(
                422,
                "cannot_queue_secret",
                "a command carrying a password is not stored; use POST "
                f"/api/v1/stations/{sub.station_id}/password, which delivers it on connect",
            )
        command = self._commands.new(
            sub.station_id,
            name=sub.name,
            action=sub.action,
            ocpp_version=adapter.ocpp_version,
            request=request,
            source=sub.source,
            expires_at=expires_at,
        )
        await self._commands.queue(command)
        metrics.COMMANDS.labels(_label(command), "queued").inc()
        log.info("command_queued", station_id=sub.station_id, command_id=command.id)
        if self._stations.is_connected(sub.station_id):
            # It connected while we queued: its drain may have looked already.
            self._spawn(self.drain(sub.station_id))
        return Outcome(command, queued=True)

    async def _send_now(self, sub: Submission, adapter: OcppVersion) -> Outcome:
        request, action, payload = self._prepare(sub, adapter)
        secret = adapter.commands.password(action, payload)
        if secret is not None:
            await self._rotate(sub.station_id, secret)
        command = self._commands.new(
            sub.station_id,
            name=sub.name,
            action=action,
            ocpp_version=adapter.ocpp_version,
            request=adapter.commands.mask(action, request, False) if sub.name is None else request,
            source=sub.source,
        )
        sent = await self._commands.sending(
            command,
            action=action,
            ocpp_version=adapter.ocpp_version,
            payload=adapter.commands.mask(action, payload, False),
            recorded=False,
        )
        return Outcome(await self._exchange(sent, adapter, action, payload), queued=False)

    async def _rotate(self, station_id: str, password: str) -> None:
        """A raw call setting the Basic-auth password is a rotation: store its
        hash first (the old one stays valid until the station uses the new one)."""
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise CommandRefused(
                422,
                "invalid_password",
                f"a Basic-auth password has {MIN_PASSWORD} to {MAX_PASSWORD} characters",
            )
        await self._services.stations.rotate_password(station_id, password)

    def _prepare(
        self, sub: Submission, adapter: OcppVersion
    ) -> tuple[dict[str, Any], str, dict[str, Any]]:
        """(request as recorded, action, payload) for ``adapter``'s protocol; 422 if invalid."""
        if sub.name is not None:
            try:
                neutral = NeutralCommand.parse(sub.name, sub.body)
                action, payload = adapter.commands.build(neutral)
            except InvalidRequestError as exc:
                raise CommandRefused(422, "invalid_command", str(exc)) from None
            request = neutral.fields()
        else:
            assert sub.action is not None  # a Submission names a command or an action
            action, payload, request = sub.action, sub.body, sub.body
        try:
            adapter.validate_request(action, payload)
        except OcppError as exc:
            raise CommandRefused(
                422,
                "invalid_payload",
                f"{action}: {exc.description}",
                code=exc.code,
                details=exc.details,
                ocpp_version=adapter.ocpp_version,
            ) from None
        return request, action, payload

    async def _exchange(
        self, command: Command, adapter: OcppVersion, action: str, payload: dict[str, Any]
    ) -> Command:
        """Send a recorded command, record its outcome; CommandRefused unless answered."""
        station_id = command.station_id
        try:
            response = await self._stations.call(station_id, action, payload)
        except StationNotConnectedError:
            # Gone between the check and the send: the CALL never went out.
            error = CommandError(
                "station_not_connected", f"station {station_id!r} is not connected"
            )
            raise await self._failed(command, error, 409) from None
        except StationDisconnectedError:
            error = CommandError(
                "station_not_connected", f"station {station_id!r} disconnected before answering"
            )
            raise await self._failed(command, error, 409) from None
        except CallErrorReceived as exc:
            error = CommandError(
                "station_call_error",
                "the station answered with a CALLERROR",
                exc.code,
                exc.description,
                exc.details,
            )
            raise await self._failed(command, error, 502) from None
        except CallTimeoutError:
            error = CommandError("station_timeout", "the station did not answer in time")
            raise await self._failed(command, error, 504) from None
        except ClusterUnavailableError:
            error = CommandError(
                "cluster_unavailable",
                f"station {station_id!r} is connected to another CSMS process and the broker "
                "linking the processes is unreachable; retry later",
            )
            raise await self._failed(command, error, 503) from None
        masked = adapter.commands.mask(action, response, True)
        try:
            adapter.validate_response(action, response)
        except OcppError as exc:
            error = CommandError("invalid_station_answer", exc.description)
            raise await self._failed(command, error, 502, answer=masked) from None
        try:
            effects = adapter.commands.effects(station_id, action, payload, response)
        except OcppError as exc:  # a date the schema let through but we cannot read
            log.warning("command_answer_not_applied", action=action, error=exc.description)
            effects = NO_EFFECTS
        done = await self._commands.completed(command, masked, effects)
        metrics.COMMANDS.labels(_label(done), "completed").inc()
        log.info("command_completed", station_id=station_id, command_id=done.id, action=action)
        return done

    async def _failed(
        self, command: Command, error: CommandError, status: int, **extra: Any
    ) -> CommandRefused:
        """Record the failure (unless another writer settled the command first);
        the refusal to answer."""
        try:
            done = await self._commands.failed(command, error)
        except ConflictError:
            log.info("command_settled_elsewhere", command_id=command.id)
        else:
            metrics.COMMANDS.labels(_label(done), "failed").inc()
            # A warning with the station's CALLERROR code, if any: what an operator
            # looking for broken stations filters on.
            log.warning(
                "command_failed",
                station_id=done.station_id,
                command_id=done.id,
                action=done.action,
                error=error.kind,
                code=error.code,
                description=error.description,
            )
        body = error.as_dict()
        kind, message = body.pop("error"), body.pop("message")
        return CommandRefused(status, kind, message, command.id, **body, **extra)

    # --- the queue -------------------------------------------------------------

    async def drain(self, station_id: str) -> None:
        """Send a station's queued commands, oldest first, while it stays connected.

        Called (on a tracked task) when the station connected; a call while a
        drain of the same station runs makes that drain look once more.
        """
        if station_id in self._draining:
            self._drain_again.add(station_id)
            return
        self._draining.add(station_id)
        try:
            await self._fail_orphans(station_id)
            while True:
                self._drain_again.discard(station_id)
                queued = await self._storage.list_queued_commands(station_id)
                for command in queued:
                    if not await self._deliver(command):
                        return
                if not queued and station_id not in self._drain_again:
                    return
        except StorageError as exc:
            log.warning("queue_not_drained", station_id=station_id, error=str(exc))
        finally:
            self._draining.discard(station_id)

    async def _fail_orphans(self, station_id: str) -> None:
        """Commands left "sent" by a CSMS that stopped while waiting for the answer."""
        cutoff = self._services.clock() - self._orphaned_after
        where = CommandFilter(station_id=station_id, status=CommandStatus.SENT, limit=1000)
        error = CommandError(
            "station_not_connected",
            "no answer was recorded: the connection or the CSMS went away while waiting",
        )
        for command in await self._storage.list_commands(where):
            if command.sent_at is not None and command.sent_at < cutoff:
                await self._failed(command, error, 409)

    async def _deliver(self, command: Command) -> bool:
        """Send one queued command; False when the station is gone."""
        adapter = await self._connected_version(command.station_id)
        if adapter is None:
            return False
        with contextlib.suppress(ConflictError):  # the sweeper or another instance moved it
            if command.expires_at is not None and command.expires_at <= self._services.clock():
                await self._expire(command)
                return True
            sub = Submission(
                command.station_id,
                command.request,
                name=command.name,
                action=command.action if command.name is None else None,
            )
            try:
                _, action, payload = self._prepare(sub, adapter)
            except CommandRefused as refused:
                # The station came back speaking another protocol than the payload's.
                error = CommandError(refused.body["error"], str(refused))
                await self._failed(command, error, refused.status)
                return True
            sent = await self._commands.sending(
                command,
                action=action,
                ocpp_version=adapter.ocpp_version,
                payload=adapter.commands.mask(action, payload, False),
                recorded=True,
            )
            try:
                await self._exchange(sent, adapter, action, payload)
            except CommandRefused as refused:
                return refused.status != 409
        return True

    async def _expire(self, command: Command) -> None:
        done = await self._commands.expired(command)
        metrics.COMMANDS.labels(_label(done), "expired").inc()
        log.info("command_expired", station_id=done.station_id, command_id=done.id)

    async def forget_station(self, station_id: str) -> None:
        """A deleted station's queued commands fail ("station_deleted")."""
        error = CommandError("station_deleted", f"station {station_id!r} was deleted")
        for command in await self._storage.list_queued_commands(station_id, limit=10_000):
            with contextlib.suppress(ConflictError):
                await self._failed(command, error, 410)

    async def sweep(self) -> None:
        """Expire what is due; drain connected stations that have queued commands
        (queued meanwhile, or by another instance)."""
        for command in await self._storage.list_expired_commands(self._services.clock()):
            with contextlib.suppress(ConflictError):
                await self._expire(command)
        for station_id in await self._storage.list_stations_with_queued_commands():
            if self._stations.is_connected(station_id):
                self._spawn(self.drain(station_id))

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                await self.sweep()
            except StorageError as exc:
                log.warning("command_sweep_failed", error=str(exc))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _label(command: Command) -> str:
    """The metric label of a command: its neutral name, else its (known) OCPP action."""
    return command.name or command.action or "(unknown)"
