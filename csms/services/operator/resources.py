"""What the operator edge answers: one typed record per resource, built from
domain objects. The REST API, the AMQP replies and the OpenAPI document use
these; ``dump()`` gives the JSON body, every key present."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from csms.core import catalog
from csms.core.domain import (
    Command,
    CommandStatus,
    ConnectorStatus,
    DeviceModelEntry,
    IdToken,
    IdTokenType,
    MeterSample,
    Station,
    Transaction,
)
from csms.core.events import iso
from csms.core.settlement import is_overridden
from csms.services.commands import MASK

Timestamp = Annotated[
    datetime,
    PlainSerializer(iso, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""ISO 8601 in UTC with a Z and milliseconds, as events show times."""
JsonObject = dict[str, Any]


class Resource(BaseModel):
    """A record as the edge shows it."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    @classmethod
    def read(cls, record: object) -> Self:
        """The resource of a domain record whose attributes bear the fields' names."""
        return cls.model_validate(record)

    def dump(self) -> dict[str, Any]:
        """The JSON body (times as ISO 8601 strings)."""
        return self.model_dump(mode="json")


class ErrorBody(Resource):
    """Every refusal: ``error`` (a kind to branch on) and ``message`` (for people)."""

    model_config = ConfigDict(extra="allow")
    error: str
    message: str
    code: str | None = Field(None, description="the OCPP error code (station or schema)")
    description: str | None = Field(None, description="the station's CALLERROR description")
    details: JsonObject | None = Field(None, description="the OCPP error details")
    command_id: str | None = Field(None, description="the command's record")


# --- stations -------------------------------------------------------------------


class ConnectorResource(Resource):
    connector_id: int
    status: str
    error_code: str | None
    info: str | None
    vendor_id: str | None
    vendor_error_code: str | None
    updated_at: Timestamp


class EvseResource(Resource):
    evse_id: int
    connectors: list[ConnectorResource]

    @classmethod
    def all_of(cls, connectors: Iterable[ConnectorStatus]) -> list[EvseResource]:
        """Connectors grouped by EVSE, both in id order."""
        evses: dict[int, list[ConnectorResource]] = {}
        for c in sorted(connectors, key=lambda c: (c.evse_id, c.connector_id)):
            evses.setdefault(c.evse_id, []).append(ConnectorResource.read(c))
        return [cls(evse_id=evse_id, connectors=items) for evse_id, items in evses.items()]


class StationResource(Resource):
    """A station with its EVSEs, protocol and connection state."""

    id: str
    ocpp_version: str | None = Field(description="the protocol it speaks (or spoke last)")
    connected: bool
    node_id: str | None = Field(
        default=None,
        description="the CSMS process (CSMS_NODE_ID) holding its connection; null when offline",
    )
    security_profile: int
    boot_status: str = Field(description="what its next BootNotification is answered")
    has_password: bool
    vendor: str | None
    model: str | None
    serial_number: str | None
    firmware_version: str | None
    boot_info: JsonObject
    registered_at: Timestamp | None
    last_boot_at: Timestamp | None
    last_seen_at: Timestamp | None
    evses: list[EvseResource]

    @staticmethod
    def fields_of(
        s: Station,
        *,
        ocpp_version: str | None,
        connected: bool,
        connectors: list[ConnectorStatus],
        node_id: str | None = None,
    ) -> dict[str, Any]:
        return {
            "id": s.id,
            "ocpp_version": ocpp_version,
            "connected": connected,
            "node_id": node_id,
            "security_profile": s.security_profile,
            "boot_status": s.boot_status,
            "has_password": s.password_hash is not None,
            "vendor": s.vendor,
            "model": s.model,
            "serial_number": s.serial_number,
            "firmware_version": s.firmware_version,
            "boot_info": s.boot_info,
            "registered_at": s.registered_at,
            "last_boot_at": s.last_boot_at,
            "last_seen_at": s.last_seen_at,
            "evses": EvseResource.all_of(connectors),
        }


class ConfigurationEntry(Resource):
    """An OCPP 1.6 configuration key."""

    key: str
    value: str | None
    readonly: bool | None
    updated_at: Timestamp | None


class DeviceModelVariable(Resource):
    """An OCPP 2.0.1 variable (NotifyReport, Get/SetVariables); passwords masked."""

    component: str
    component_instance: str | None
    evse_id: int | None
    connector_id: int | None
    variable: str
    variable_instance: str | None
    attribute_type: str
    value: str | None
    mutability: str | None
    characteristics: JsonObject

    @classmethod
    def of(cls, e: DeviceModelEntry) -> DeviceModelVariable:
        secret = e.component == "SecurityCtrlr" and e.variable == "BasicAuthPassword"
        return cls(
            component=e.component,
            component_instance=e.component_instance,
            evse_id=e.evse_id,
            connector_id=e.connector_id,
            variable=e.variable,
            variable_instance=e.variable_instance,
            attribute_type=e.attribute_type,
            value=MASK if secret and e.value is not None else e.value,
            mutability=e.mutability,
            characteristics=e.characteristics,
        )


class ReservationResource(Resource):
    reservation_id: int
    evse_id: int
    id_token: str
    expires_at: Timestamp
    status: str
    updated_at: Timestamp | None


class ChargingProfileResource(Resource):
    profile_id: int
    evse_id: int
    stack_level: int
    purpose: str
    profile: JsonObject = Field(description="as sent, in the station's protocol")
    updated_at: Timestamp | None


class StationDetail(StationResource):
    """A station with what commands and reports told about it."""

    local_list_version: int | None
    configuration: list[ConfigurationEntry]
    device_model: list[DeviceModelVariable]
    reservations: list[ReservationResource]
    charging_profiles: list[ChargingProfileResource]


class StationPage(Resource):
    items: list[StationResource]
    total: int
    limit: int
    offset: int


class PasswordStatus(Resource):
    """The station's answer to a new password, or Pending until it connects."""

    status: str


# --- commands -------------------------------------------------------------------


class CommandResource(Resource):
    """A command record (secrets masked), as the REST API and AMQP replies show it."""

    id: str
    station_id: str
    command: str | None = Field(description="the neutral command; null for a raw OCPP call")
    action: str | None = Field(
        description="the OCPP action (null until a queued neutral command is translated)"
    )
    ocpp_version: str | None
    status: CommandStatus
    request: JsonObject = Field(description="what was asked")
    payload: JsonObject | None = Field(description="the CALL sent")
    response: JsonObject | None = Field(description="the station's CALLRESULT")
    error: JsonObject | None = Field(description="why it failed")
    source: str = Field(description="api or amqp")
    created_at: Timestamp
    expires_at: Timestamp | None
    sent_at: Timestamp | None
    completed_at: Timestamp | None

    @classmethod
    def of(cls, c: Command) -> CommandResource:
        return cls(
            id=c.id,
            station_id=c.station_id,
            command=c.name,
            action=c.action,
            ocpp_version=c.ocpp_version,
            status=c.status,
            request=c.request,
            payload=c.payload,
            response=c.response,
            error=c.error,
            source=c.source,
            created_at=c.created_at,
            expires_at=c.expires_at,
            sent_at=c.sent_at,
            completed_at=c.completed_at,
        )


class CommandPage(Resource):
    items: list[CommandResource]
    limit: int
    offset: int


# --- transactions ---------------------------------------------------------------


class MeterSampleResource(Resource):
    timestamp: Timestamp
    measurand: str
    value: float
    unit: str | None
    phase: str | None
    context: str | None
    location: str | None
    signed_data: str | dict[str, Any] | None = Field(
        description="the station's signature of the reading exactly as sent (2.0.1 "
        "signedMeterValue, 1.6 a SignedData value), else null"
    )


class TransactionResource(Resource):
    transaction_id: str
    station_id: str
    ocpp_version: str
    evse_id: int
    connector_id: int
    id_token: str | None
    active: bool
    meter_start_wh: float | None
    meter_stop_wh: float | None
    energy_wh: float | None = Field(description="what is billed (Wh)")
    station_energy_wh: float | None = Field(description="meter stop - start as the station sent")
    energy_overridden: bool
    started_at: Timestamp
    ended_at: Timestamp | None
    stop_reason: str | None
    charging_state: str | None
    seq_no: int | None
    anomalies: list[str]
    remote_start_id: int | None = Field(
        description="2.0.1: the remoteStartId of the RequestStartTransaction (a `start`"
        " command's `remote_start_id`) that led to the session, else null"
    )

    @staticmethod
    def fields_of(t: Transaction) -> dict[str, Any]:
        return {
            "transaction_id": t.transaction_id,
            "station_id": t.station_id,
            "ocpp_version": t.ocpp_version,
            "evse_id": t.evse_id,
            "connector_id": t.connector_id,
            "id_token": t.id_token,
            "active": t.is_active,
            "meter_start_wh": t.meter_start_wh,
            "meter_stop_wh": t.meter_stop_wh,
            "energy_wh": t.energy_wh,
            "station_energy_wh": catalog.station_energy_wh(t),
            "energy_overridden": is_overridden(t.anomalies),
            "started_at": t.started_at,
            "ended_at": t.ended_at,
            "stop_reason": t.stop_reason,
            "charging_state": t.charging_state,
            "seq_no": t.seq_no,
            "anomalies": list(t.anomalies),
            "remote_start_id": t.remote_start_id,
        }

    @classmethod
    def of(cls, t: Transaction) -> TransactionResource:
        return cls.model_validate(cls.fields_of(t))


class TransactionDetail(TransactionResource):
    """A transaction with its meter samples."""

    meter_samples: list[MeterSampleResource]

    @classmethod
    def with_samples(cls, t: Transaction, samples: Iterable[MeterSample]) -> TransactionDetail:
        meter_samples = [MeterSampleResource.read(s) for s in samples]
        return cls.model_validate({**cls.fields_of(t), "meter_samples": meter_samples})


class TransactionPage(Resource):
    items: list[TransactionResource]
    limit: int
    offset: int


# --- id tokens ------------------------------------------------------------------


class IdTokenResource(Resource):
    id_token: str
    status: str
    type: IdTokenType
    expires_at: Timestamp | None
    group_id: str | None
    updated_at: Timestamp | None

    @classmethod
    def of(cls, t: IdToken) -> IdTokenResource:
        return cls(
            id_token=t.id_token,
            status=t.status.value,
            type=t.type,
            expires_at=t.expires_at,
            group_id=t.group_id,
            updated_at=t.updated_at,
        )


class IdTokenList(Resource):
    items: list[IdTokenResource]
