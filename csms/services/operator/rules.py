"""The operator edge's rules, each defined once: what a station password, a
queued command's expiry, a page and a date-time may be (the bounds are in
csms.services.operator.limits), and the error an edge answers when a request
breaks one.

Where a rule is broken decides the answer: a value the *query string*
cannot hold (a bad boolean, number or date-time, a page out of range) is
400 ``invalid_query``; a bad value in a *body* or an AMQP message is 422
with that body's kind (``invalid_value``, ``invalid_queue``...). So an
expiry beyond MAX_QUEUE_EXPIRY is 400 ``invalid_query`` in a query string
and 422 ``invalid_queue`` in a body or an AMQP message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from csms.core.domain import MAX_STATION_ID_LENGTH
from csms.services.operator.errors import OperatorError
from csms.services.operator.limits import MAX_ID_TOKEN_LENGTH, MAX_PASSWORD, MIN_PASSWORD

QUERY_STATUS, QUERY_KIND = 400, "invalid_query"
BODY_STATUS = 422


def as_utc(moment: datetime) -> datetime:
    """A naive date-time is taken as UTC; an aware one is converted to UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso_8601(value: Any) -> Any:
    # Text is read as ISO 8601 only: pydantic alone would take "2" as a Unix time.
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("not an ISO 8601 date-time") from None
    if not isinstance(value, datetime):
        raise ValueError("an ISO 8601 date-time string")  # noqa: TRY004 - pydantic wants ValueError
    return value


UtcDateTime = Annotated[datetime, BeforeValidator(_iso_8601), AfterValidator(as_utc)]
"""An ISO 8601 date-time as an operator writes it (without an offset: UTC)."""
Password = Annotated[str, StringConstraints(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)]
StationId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_STATION_ID_LENGTH)]
IdTokenValue = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_TOKEN_LENGTH)]

PASSWORD: TypeAdapter[str] = TypeAdapter(Password)
STATION_ID: TypeAdapter[str] = TypeAdapter(StationId)
ID_TOKEN: TypeAdapter[str] = TypeAdapter(IdTokenValue)
TIME: TypeAdapter[datetime] = TypeAdapter(UtcDateTime)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


def explain(error: ValidationError, name: str = "") -> str:
    """One line naming each wrong field and why (``password: String should have...``)."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in (name, *item["loc"]) if p != "")
        message = "unknown field" if item["type"] == "extra_forbidden" else item["msg"]
        parts.append(f"{where or 'value'}: {message}")
    return "; ".join(parts)


def check(adapter: TypeAdapter[T], value: Any, *, name: str, status: int, kind: str) -> T:
    """``value`` as ``adapter`` reads it, or OperatorError(status, kind) naming ``name``."""
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise OperatorError(status, kind, explain(exc, name)) from None


def read(model: type[M], value: Any, *, status: int, kind: str) -> M:
    """A request body or query string as ``model``, or OperatorError(status, kind)."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise OperatorError(status, kind, explain(exc)) from None
