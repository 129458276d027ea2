"""What an operator sends: request bodies and query strings, typed.

Each body model names the error ``kind`` its 422 carries; every query model
answers 400 ``invalid_query`` (csms.services.operator.rules). The REST API
validates with these, the CLI and the AMQP consumer with the same types,
and the OpenAPI document is generated from them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
    model_validator,
)

from csms.core.domain import (
    REGISTRABLE_TOKEN_STATUSES,
    AuthorizationStatus,
    CommandStatus,
    IdToken,
    IdTokenType,
    OcppVersion,
)
from csms.services.operator.limits import (
    DEFAULT_PAGE,
    MAX_ID_TOKEN_LENGTH,
    MAX_PAGE,
    MAX_QUEUE_EXPIRY,
)
from csms.services.operator.rules import Password, StationId, UtcDateTime


class Body(BaseModel):
    """A JSON object body; a field it does not know is refused."""

    model_config = ConfigDict(extra="forbid")
    kind: ClassVar[str] = "invalid_value"


class Query(BaseModel):
    """A query string; parameters it does not know are ignored."""

    model_config = ConfigDict(extra="ignore")


# --- stations -------------------------------------------------------------------

SecurityProfile = Annotated[int, Strict(), Field(ge=1, le=3)]
"""1, 2 or 3 (docs/security.md); a boolean or 2.0 is not a profile."""


BootStatus = Literal["Accepted", "Pending", "Rejected"]
"""A Pending station can be configured before it is let in (docs/security.md)."""


class StationRegistration(Body):
    """Fields left out keep their value; a null password removes it."""

    password: Password | None = Field(
        None, description="Basic-auth password (stored hashed); null: none"
    )
    security_profile: SecurityProfile = Field(
        1, description="the profile it must connect with from its next handshake on"
    )
    boot_status: BootStatus = Field(
        "Accepted", description="what its next BootNotification is answered"
    )


class StationCreation(StationRegistration):
    """A station registered by POST: its id, and what a registration takes."""

    id: StationId


class PasswordRotation(Body):
    """A station's new Basic-auth password."""

    kind: ClassVar[str] = "invalid_body"
    password: Password


# --- id tokens ------------------------------------------------------------------


def _registrable(status: AuthorizationStatus) -> AuthorizationStatus:
    if status not in REGISTRABLE_TOKEN_STATUSES:
        raise ValueError(f"one of {', '.join(REGISTRABLE_TOKEN_STATUSES)}")
    return status


RegistrableStatus = Annotated[
    AuthorizationStatus,
    AfterValidator(_registrable),
    WithJsonSchema({"type": "string", "enum": [s.value for s in REGISTRABLE_TOKEN_STATUSES]}),
]


class IdTokenRegistration(BaseModel):
    """An id token's registry entry (unknown fields are ignored, as they always were)."""

    kind: ClassVar[str] = "invalid_value"
    status: RegistrableStatus
    type: IdTokenType = IdTokenType.ISO14443
    expires_at: UtcDateTime | None = None
    group_id: Annotated[str, StringConstraints(max_length=MAX_ID_TOKEN_LENGTH)] | None = None

    def entry(self, id_token: str, now: datetime) -> IdToken:
        """The registry entry for ``id_token``, updated ``now``."""
        return IdToken(
            id_token=id_token,
            status=self.status,
            type=self.type,
            expires_at=self.expires_at,
            group_id=self.group_id,
            updated_at=now,
        )


# --- commands -------------------------------------------------------------------

ExpiresIn = Annotated[
    float,
    Strict(),
    Field(gt=0, le=MAX_QUEUE_EXPIRY.total_seconds(), description="seconds it may wait"),
]


EXPIRES_IN: TypeAdapter[float] = TypeAdapter(ExpiresIn)


class QueueWindow(Body):
    """How long a queued command may wait (the default is 24 h)."""

    kind: ClassVar[str] = "invalid_queue"
    expires_at: UtcDateTime | None = None
    expires_in: ExpiresIn | None = None

    def deadline(self, now: datetime) -> datetime | None:
        if self.expires_in is not None:
            return now + timedelta(seconds=self.expires_in)
        return self.expires_at


QueueSpec = Annotated[bool, Strict()] | QueueWindow | None
"""A body's ``queue``: true / false / null, or a window (which means true)."""
QUEUE: TypeAdapter[bool | QueueWindow | None] = TypeAdapter(QueueSpec)


def queue_of(spec: bool | QueueWindow | None, now: datetime) -> tuple[bool, datetime | None]:
    """(queue it?, until when) from a body's ``queue``."""
    if isinstance(spec, QueueWindow):
        return True, spec.deadline(now)
    return bool(spec), None


Int32 = Annotated[int, Strict(), Field(ge=0, le=2**31 - 1)]
Word = Annotated[str, Strict(), StringConstraints(min_length=1)]


class NeutralFields(Body):
    """The fields a neutral command takes: start (id_token, id_token_type, evse_id,
    connector_id, remote_start_id), stop (transaction_id), reset (type, evse_id),
    unlock (evse_id, connector_id), change-availability (operative, evse_id,
    connector_id), trigger-message (message, evse_id, connector_id).

    csms.services.commands.NeutralCommand checks them per command (the
    dispatcher does, for REST and AMQP alike); this model describes them for
    the document and a test holds it to that parser, field by field."""

    kind: ClassVar[str] = "invalid_command"
    evse_id: Int32 | None = None
    connector_id: Int32 | None = None
    id_token: Word | None = None
    id_token_type: Word | None = Field(None, description="2.0.1; default Central")
    remote_start_id: Int32 | None = None
    transaction_id: Word | Annotated[int, Strict()] | None = None
    type: Literal["hard", "soft"] | None = None
    operative: Annotated[bool, Strict()] | None = None
    message: Word | None = Field(
        None, description="the OCPP message to trigger, e.g. StatusNotification"
    )
    queue: QueueSpec = Field(None, description="queue it while the station is offline")


class OcppPayload(BaseModel):
    """The OCPP payload of the station's protocol, checked against its official schema."""

    model_config = ConfigDict(extra="allow")


# --- query strings --------------------------------------------------------------


class PageQuery(Query):
    limit: int = Field(DEFAULT_PAGE, ge=1, le=MAX_PAGE, description="page size")
    offset: int = Field(0, ge=0, description="rows to skip")


class StationQuery(PageQuery):
    connected: bool | None = Field(None, description="only (dis)connected stations")
    ocpp_version: OcppVersion | None = Field(None, description="only stations of this protocol")
    id_prefix: str = Field("", description="only ids starting with this")
    vendor: str | None = Field(None, description="only this vendor (BootNotification)")
    model: str | None = Field(None, description="only this model (BootNotification)")


class CommandQuery(PageQuery):
    status: CommandStatus | None = Field(None, description="only commands in this status")


class TransactionQuery(PageQuery):
    station_id: str | None = Field(None, description="only this station's")
    id_token: str | None = Field(None, description="only this token's")
    active: bool | None = Field(None, description="only open (true) or ended (false)")
    started_after: UtcDateTime | None = Field(None, description="started at or after")
    started_before: UtcDateTime | None = Field(None, description="started before")


class TransactionLookup(Query):
    station_id: str | None = Field(
        None, description="the station (2.0.1 ids are the station's own: two may share one)"
    )


class QueueQuery(Query):
    queue: bool = Field(
        False,
        description="when the station is offline, store the command and send it when it "
        "connects (202) instead of answering 409",
    )
    expires_in: Annotated[float, Field(gt=0, le=MAX_QUEUE_EXPIRY.total_seconds())] | None = Field(
        None, description="with queue: seconds the command may wait (default 86400)"
    )
    expires_at: UtcDateTime | None = Field(None, description="with queue: until when it may wait")

    @model_validator(mode="after")
    def _expiry_needs_queue(self) -> QueueQuery:
        if not self.queue and (self.expires_in is not None or self.expires_at is not None):
            raise ValueError("expires_at and expires_in go with queue=true")
        return self

    def deadline(self, now: datetime) -> datetime | None:
        if self.expires_in is not None:
            return now + timedelta(seconds=self.expires_in)
        return self.expires_at


def fields_given(model: BaseModel) -> dict[str, Any]:
    """The fields a request set, by name (what it left out is not there)."""
    return {name: getattr(model, name) for name in model.model_fields_set}
