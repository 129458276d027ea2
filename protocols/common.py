"""What both OCPP versions share: the route table type, dispatch with schema
validation, and the conversion of timestamps and sampled values."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog

from csms.core import interop
from csms.core.domain import ENERGY_IMPORT_REGISTER, MeterSample
from csms.core.errors import AlreadyAnsweredError
from csms.core.events import iso
from csms.core.interop import Tolerance
from csms.services import StationContext
from csms.services.replies import Reply
from csms.transport.rpc import Call, ErrorCodes, RpcError
from protocols import repair
from protocols.command_set import CommandSet
from protocols.schemas import SchemaSet

Handler = Callable[[StationContext, dict[str, Any]], Awaitable[dict[str, Any]]]
CallBuilder = Callable[[str], tuple[str, dict[str, Any]]]
AnswerReader = Callable[[dict[str, Any]], str]

PROPERTY_VIOLATION = "PropertyConstraintViolation"

log = structlog.get_logger("csms.session")
T = TypeVar("T")


def reply(ctx: StationContext, build: Callable[[T], dict[str, Any]]) -> Reply[T] | None:
    """The ``Reply`` a writing handler hands its service: the CALL in hand and
    how its answer follows from the outcome (csms.services.replies)."""
    return None if ctx.call is None else Reply(ctx.station_id, ctx.call, build)


def empty(_: object) -> dict[str, Any]:
    """The empty answer most notifications get, whatever the outcome."""
    return {}


def constant(answer: dict[str, Any]) -> Callable[[object], dict[str, Any]]:
    """A builder answering a copy of ``answer`` whatever the outcome."""
    return lambda _: dict(answer)


def stored(action: str, answer: dict[str, Any] | None = None) -> Handler:
    """A handler that keeps the station's message as received and answers
    ``answer`` (``{}`` by default): notifications both versions only record."""
    build = constant(answer or {})

    async def record(ctx: StationContext, req: dict[str, Any]) -> dict[str, Any]:
        await ctx.services.stations.notified(
            ctx.station_id, ctx.ocpp_version, action, req, reply=reply(ctx, build)
        )
        return build(None)

    record.__name__ = action
    return record


# Actions a station does send (1.6 security extension, 2.0.1) that have no
# handler yet: refused with NotSupported, saying so.
STATION_ACTIONS_NOT_HANDLED = frozenset({"Get15118EVCertificate", "GetCertificateStatus"})

# A sampled value beyond this (in Wh, W, A, V...) is not a measurement; it
# would also make energy arithmetic overflow to infinity, which JSON cannot carry.
MAX_SAMPLE_MAGNITUDE = 1e15

# A k-prefixed unit and its base unit: values are stored in the base unit.
_SCALED_UNITS = {"kWh": "Wh", "kvarh": "varh", "kW": "W", "kVA": "VA", "kvar": "var"}


@dataclass(slots=True)
class Adapter:
    """One OCPP version: its subprotocol, error spellings, schemas and the
    handlers of every action a station may send."""

    subprotocol: str
    ocpp_version: str
    codes: ErrorCodes
    schemas: SchemaSet
    routes: dict[str, Handler]
    # CSMS-initiated calls with a version-neutral meaning.
    set_password: CallBuilder
    password_status: AnswerReader
    # Every other CSMS-initiated call: neutral commands, answers' effects, secrets.
    commands: CommandSet
    _known: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        self._known = frozenset(self.schemas.actions())
        for action in self.routes:  # compile the hot validators up front
            self.schemas.request(action)
            self.schemas.response(action)

    def validate_request(self, action: str, payload: dict[str, Any]) -> None:
        """Check a CALL the CSMS is about to send; RpcError if it is not valid."""
        validator = self.schemas.request(action)
        if validator is None:
            raise RpcError("NotImplemented", f"{action} is not an OCPP {self.ocpp_version} action")
        self.schemas.check(validator, payload, "-")

    def validate_response(self, action: str, payload: dict[str, Any]) -> None:
        """Check a station's CALLRESULT to the CSMS's CALL."""
        validator = self.schemas.response(action)
        if validator is not None:
            self.schemas.check(validator, payload, "-")

    def action_label(self, action: str) -> str:
        """The action as a metric label: a station cannot invent new series."""
        return action if action in self._known else "(unknown)"

    async def handle(self, ctx: StationContext, call: Call) -> dict[str, Any]:
        """Validate, run the handler, check our own answer; raise RpcError."""
        handler = self.routes.get(call.action)
        if handler is None:
            if call.action in STATION_ACTIONS_NOT_HANDLED:
                raise RpcError(
                    "NotSupported",
                    f"the CSMS does not handle {call.action} yet",
                    unique_id=call.unique_id,
                )
            if call.action in self._known:
                raise RpcError(
                    "NotSupported",
                    f"{call.action} is not sent by a station; the CSMS does not accept it",
                    unique_id=call.unique_id,
                )
            raise RpcError(
                "NotImplemented", f"unknown action {call.action!r}", unique_id=call.unique_id
            )
        if call.action == "BootNotification":  # its vendor/model choose the tolerances
            ctx.tolerances = ctx.services.stations.interop.for_station(
                *repair.boot_identity(call.payload)
            )
        payload = self._repair(ctx, call) if ctx.tolerances else call.payload
        validator = self.schemas.request(call.action)
        if validator is not None:
            self.schemas.check(validator, payload, call.unique_id)
        ctx.call = call
        try:
            result = await handler(ctx, payload)
        except RpcError as exc:
            exc.unique_id = call.unique_id
            raise
        except AlreadyAnsweredError as exc:
            # A resend of a CALL answered before (maybe by another process): its
            # answer again, its effects not twice (docs/adr/0012-durable-answers.md).
            log.info("call_repeated", action=call.action, message_id=call.unique_id, durable=True)
            return exc.answer
        response_validator = self.schemas.response(call.action)
        if response_validator is not None:
            try:
                self.schemas.check(response_validator, result, call.unique_id)
            except RpcError as exc:
                raise RpcError(
                    "InternalError",
                    f"the CSMS built an invalid {call.action} answer",
                    unique_id=call.unique_id,
                ) from exc
        return result

    def _repair(self, ctx: StationContext, call: Call) -> dict[str, Any]:
        """The payload with the station's tolerances applied (docs/interoperability.md)."""
        schema = self.schemas.request_schema(call.action)
        if schema is None:
            return call.payload

        def note(tolerance: Tolerance, path: str, original: Any) -> None:
            interop.applied(
                tolerance,
                station_id=ctx.station_id,
                action=call.action,
                path=path,
                original=original,
            )

        return repair.repair(
            schema, call.action, call.payload, ctx.tolerances, ctx.services.clock(), note
        )


def parse_time(text: str, path: str) -> datetime:
    """An OCPP dateTime as an aware UTC datetime."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise RpcError(
            "TypeConstraintViolation", f"{path} is not an ISO 8601 date-time", {"path": path}
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is in the year 10000 in UTC
        raise RpcError(
            PROPERTY_VIOLATION, f"{path} is outside the years 1-9999 in UTC", {"path": path}
        ) from None


def format_time(moment: datetime) -> str:
    return iso(moment)


def parse_number(text: Any, path: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise RpcError(
            PROPERTY_VIOLATION, f"{path} is not a decimal number: {text!r}", {"path": path}
        ) from None
    if not math.isfinite(value):
        raise RpcError(PROPERTY_VIOLATION, f"{path} is not a finite number", {"path": path})
    return value


def scale(value: float, power_of_ten: int, path: str) -> float:
    """``value`` times 10**``power_of_ten``; PropertyConstraintViolation unless
    the result is a finite number of at most MAX_SAMPLE_MAGNITUDE."""
    try:
        scaled = value * 10.0**power_of_ten
    except OverflowError:
        scaled = math.inf
    if not abs(scaled) <= MAX_SAMPLE_MAGNITUDE:
        raise RpcError(
            PROPERTY_VIOLATION,
            f"{path} is out of range (at most {MAX_SAMPLE_MAGNITUDE:.0e} in base units)",
            {"path": path},
        )
    return scaled


def sample(
    timestamp: datetime,
    value: float,
    measurand: str | None,
    unit: str | None,
    phase: str | None,
    context: str | None,
    location: str | None,
    path: str = "sampledValue",
    signed_data: str | dict[str, Any] | None = None,
) -> MeterSample:
    """A sampled value with the defaults both versions' specs give, energy
    normalised to Wh and power to W."""
    measurand = measurand or ENERGY_IMPORT_REGISTER
    if unit is None and measurand.startswith("Energy.Active"):
        unit = "Wh"
    base = _SCALED_UNITS.get(unit or "")
    if base is not None:
        unit = base
    value = scale(value, 3 if base is not None else 0, path)
    return MeterSample(
        timestamp=timestamp,
        measurand=measurand,
        value=value,
        unit=unit,
        phase=phase,
        context=context or "Sample.Periodic",
        location=location or "Outlet",
        signed_data=signed_data,
    )
