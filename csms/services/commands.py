"""Commands the CSMS sends to stations: version-neutral requests, the command
record through its life (queued, sent, completed / failed / expired), and
what a station's answer changes in the CSMS's picture of it.

Each move of a command is one unit of work: the record, the state the answer
changes (configuration keys, device model values, local list version,
reservations, charging profiles) and, once it is final, the
``command.completed`` event. Moves are conditional on the status the command
had (``CommandRecorded.expected_status``), so two writers never both move it.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from csms.core import catalog
from csms.core.domain import (
    ChargingProfile,
    ChargingProfileCriteria,
    Command,
    CommandStatus,
    ConfigurationKey,
    DeviceModelEntry,
    Reservation,
)
from csms.core.errors import InvalidRequestError
from csms.core.events import EventType
from csms.core.ports import (
    ChargingProfilesCleared,
    ChargingProfileSet,
    Clock,
    CommandRecorded,
    ConfigurationChanged,
    DeviceModelValuesSet,
    HeartbeatIntervalSet,
    LocalListVersionSet,
    ReservationChanged,
    StationStateStore,
    UnitOfWork,
    WriteOp,
)
from csms.services.outbox import report

MASK = "********"
"""What a secret (a password) is replaced with in stored and returned records."""

NEUTRAL_COMMANDS = (
    "start",
    "stop",
    "reset",
    "unlock",
    "change-availability",
    "trigger-message",
)

_FIELDS: dict[str, tuple[str, ...]] = {
    "start": ("id_token", "id_token_type", "evse_id", "connector_id", "remote_start_id"),
    "stop": ("transaction_id",),
    "reset": ("type", "evse_id"),
    "unlock": ("evse_id", "connector_id"),
    "change-availability": ("operative", "evse_id", "connector_id"),
    "trigger-message": ("message", "evse_id", "connector_id"),
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "start": ("id_token",),
    "stop": ("transaction_id",),
    "reset": ("type",),
    "unlock": ("evse_id",),
    "change-availability": ("operative",),
    "trigger-message": ("message",),
}
_MAX_INT32 = 2**31 - 1


@dataclass(frozen=True, slots=True)
class NeutralCommand:
    """A command in the CSMS's own words; each protocol's ``commands.py``
    translates it into its CALL (``evse_id`` is the 1.6 connector id)."""

    name: str
    evse_id: int | None = None
    connector_id: int | None = None
    id_token: str | None = None
    id_token_type: str | None = None
    remote_start_id: int | None = None
    transaction_id: str | None = None
    type: str | None = None  # reset: "hard" or "soft"
    operative: bool | None = None
    message: str | None = None  # trigger-message: the OCPP message name

    @classmethod
    def parse(cls, name: str, body: dict[str, Any]) -> NeutralCommand:
        """Read a request body; InvalidRequestError names the field that is wrong.

        A ``start`` without ``remote_start_id`` gets a fresh one (2.0.1 needs it).
        """
        if name not in _FIELDS:
            raise InvalidRequestError(
                f"unknown command {name!r}: one of {', '.join(NEUTRAL_COMMANDS)}"
            )
        allowed = _FIELDS[name]
        unknown = sorted(set(body) - set(allowed))
        if unknown:
            raise InvalidRequestError(
                f"{name} takes {', '.join(allowed)}; not {', '.join(unknown)}"
            )
        values: dict[str, Any] = {}
        for key in allowed:
            value = body.get(key)
            if value is None:
                if key in _REQUIRED[name]:
                    raise InvalidRequestError(f"{name} needs {key}")
                continue
            values[key] = _checked(key, value)
        if name == "start" and "remote_start_id" not in values:
            values["remote_start_id"] = secrets.randbelow(_MAX_INT32) + 1
        return cls(name=name, **values)

    def fields(self) -> dict[str, Any]:
        """The fields given (what is stored as the command's request)."""
        return {k: v for k, v in asdict(self).items() if v is not None and k != "name"}


def _checked(key: str, value: Any) -> Any:
    if key in ("evse_id", "connector_id", "remote_start_id"):
        if type(value) is not int or not 0 <= value <= _MAX_INT32:
            raise InvalidRequestError(f"{key} is a non-negative integer")
        return value
    if key == "operative":
        if not isinstance(value, bool):
            raise InvalidRequestError("operative is true or false")
        return value
    if key == "type":
        if value not in ("hard", "soft"):
            raise InvalidRequestError("type is 'hard' or 'soft'")
        return value
    if key == "transaction_id" and type(value) is int:
        return str(value)
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(f"{key} is a non-empty string")
    return value


@dataclass(frozen=True, slots=True)
class Effects:
    """What a station's CALLRESULT changes, in the CSMS's words (built by the
    protocol adapters, written by CommandService with the command)."""

    configuration: tuple[ConfigurationKey, ...] = ()
    device_model: tuple[DeviceModelEntry, ...] = ()
    local_list_version: int | None = None
    reservation: Reservation | None = None
    reservation_cancelled: int | None = None
    charging_profile: ChargingProfile | None = None
    profiles_cleared: ChargingProfileCriteria | None = None
    heartbeat_interval: int | None = None


NO_EFFECTS = Effects()

# A heartbeat interval a station accepted is believed up to a week.
MAX_HEARTBEAT_INTERVAL = 7 * 24 * 3600


def heartbeat_seconds(value: str | None) -> int | None:
    """A configuration value as a heartbeat interval: whole seconds, 1 s to a
    week; None for anything else (it is then not kept)."""
    try:
        seconds = int(value or "")
    except ValueError:
        return None
    return seconds if 0 < seconds <= MAX_HEARTBEAT_INTERVAL else None


@dataclass(frozen=True, slots=True)
class CommandError:
    """Why a command failed: ``kind`` as the REST API names it, and the
    station's CALLERROR (code, description, details) where there was one."""

    kind: str
    message: str
    code: str | None = None
    description: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.kind, "message": self.message}
        if self.code is not None:
            out.update(code=self.code, description=self.description, details=self.details)
        return out


class CommandService:
    """Records commands through their life; each move reports itself when final.

    Writes through a ``UnitOfWork``; reads a ``StationStateStore`` (reservations)."""

    def __init__(self, writes: UnitOfWork, state: StationStateStore, clock: Clock) -> None:
        self._writes = writes
        self._state = state
        self._clock = clock

    def new(
        self,
        station_id: str,
        *,
        name: str | None,
        action: str | None,
        ocpp_version: str,
        request: dict[str, Any],
        source: str,
        expires_at: datetime | None = None,
    ) -> Command:
        """A command not yet recorded (status queued until ``queue`` or ``sending``).

        ``ocpp_version`` is the station's protocol: the one it speaks now, or
        for a queued command the one it spoke last (updated when it is sent).
        """
        return Command(
            id=str(uuid.uuid4()),
            station_id=station_id,
            name=name,
            action=action,
            ocpp_version=ocpp_version,
            request=request,
            status=CommandStatus.QUEUED,
            source=source,
            created_at=self._clock(),
            expires_at=expires_at,
        )

    async def queue(self, command: Command) -> Command:
        await self._writes.commit([CommandRecorded(command)])
        return command

    async def sending(
        self,
        command: Command,
        *,
        action: str,
        ocpp_version: str,
        payload: dict[str, Any],
        recorded: bool,
    ) -> Command:
        """Record that the CALL goes out now (a queued command: only if still queued,
        else ConflictError). ``payload`` is stored as given: mask secrets first."""
        sent = replace(
            command,
            action=action,
            ocpp_version=ocpp_version,
            payload=payload,
            status=CommandStatus.SENT,
            sent_at=self._clock(),
        )
        expected = CommandStatus.QUEUED if recorded else None
        await self._writes.commit([CommandRecorded(sent, expected)])
        return sent

    async def completed(
        self, command: Command, response: dict[str, Any], effects: Effects = NO_EFFECTS
    ) -> Command:
        """The station answered: record it with what the answer changes."""
        done = replace(
            command,
            status=CommandStatus.COMPLETED,
            response=response,
            completed_at=self._clock(),
        )
        unit: list[WriteOp] = [CommandRecorded(done, command.status)]
        unit.extend(await self._effect_ops(command.station_id, effects))
        unit.append(self._report(done))
        await self._writes.commit(unit)
        return done

    async def failed(self, command: Command, error: CommandError) -> Command:
        """The command cannot complete (a CALLERROR, no answer, invalid, lost)."""
        done = replace(
            command,
            status=CommandStatus.FAILED,
            error=error.as_dict(),
            completed_at=self._clock(),
        )
        await self._writes.commit([CommandRecorded(done, command.status), self._report(done)])
        return done

    async def expired(self, command: Command) -> Command:
        """A queued command's station did not come in time (ConflictError if it moved on)."""
        done = replace(command, status=CommandStatus.EXPIRED, completed_at=self._clock())
        await self._writes.commit([CommandRecorded(done, CommandStatus.QUEUED), self._report(done)])
        return done

    def _report(self, command: Command) -> WriteOp:
        return report(
            self._clock,
            EventType.COMMAND_COMPLETED,
            command.station_id,
            command.ocpp_version or "",  # always set: see new()
            command.completed_at,
            catalog.command_completed(command),
        )

    async def _effect_ops(self, station_id: str, effects: Effects) -> list[WriteOp]:
        now = self._clock()
        ops: list[WriteOp] = []
        if effects.configuration:
            ops.append(ConfigurationChanged(station_id, effects.configuration, now))
        if effects.device_model:
            ops.append(DeviceModelValuesSet(station_id, effects.device_model, now))
        if effects.local_list_version is not None:
            ops.append(LocalListVersionSet(station_id, effects.local_list_version, now))
        if effects.reservation is not None:
            ops.append(ReservationChanged(replace(effects.reservation, updated_at=now)))
        if effects.reservation_cancelled is not None:
            for reservation in await self._state.list_reservations(station_id):
                if reservation.reservation_id == effects.reservation_cancelled:
                    cancelled = replace(reservation, status="Cancelled", updated_at=now)
                    ops.append(ReservationChanged(cancelled))
        if effects.charging_profile is not None:
            ops.append(ChargingProfileSet(replace(effects.charging_profile, updated_at=now)))
        if effects.profiles_cleared is not None:
            ops.append(ChargingProfilesCleared(station_id, effects.profiles_cleared))
        if effects.heartbeat_interval is not None:
            ops.append(HeartbeatIntervalSet(station_id, effects.heartbeat_interval))
        return ops
