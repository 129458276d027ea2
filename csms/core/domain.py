"""The version-neutral charging domain: pure data and rules, no I/O.

The words are OCPP 2.0.1's: a *station* has *EVSEs*, an EVSE has
*connectors*; an OCPP 1.6 connector N maps to EVSE N, connector 1, and 1.6
connector 0 (the charge point itself) is EVSE 0, connector 0.
"""

from __future__ import annotations

import enum
from dataclasses import field
from datetime import datetime
from typing import Any

from csms.core.records import record

MAX_STATION_ID_LENGTH = 48


class OcppVersion(enum.StrEnum):
    V16 = "1.6"
    V201 = "2.0.1"


class AuthorizationStatus(enum.StrEnum):
    """Outcome of looking an id token up; 1.6 and 2.0.1 share these words."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    # 2.0.1 only: the token is not known at all (1.6 says Invalid).
    UNKNOWN = "Unknown"
    CONCURRENT_TX = "ConcurrentTx"


REGISTRABLE_TOKEN_STATUSES = (
    AuthorizationStatus.ACCEPTED,
    AuthorizationStatus.BLOCKED,
    AuthorizationStatus.EXPIRED,
    AuthorizationStatus.INVALID,
)


class IdTokenType(enum.StrEnum):
    ISO14443 = "ISO14443"
    ISO15693 = "ISO15693"
    EMAID = "eMAID"
    CENTRAL = "Central"
    KEY_CODE = "KeyCode"
    LOCAL = "Local"
    MAC_ADDRESS = "MacAddress"
    NO_AUTHORIZATION = "NoAuthorization"


@record
class Station:
    """A registered station and what it told us about itself."""

    id: str
    password_hash: str | None = None
    security_profile: int = 1
    ocpp_version: str | None = None
    vendor: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware_version: str | None = None
    boot_info: dict[str, Any] = field(default_factory=dict)
    registered_at: datetime | None = None
    last_boot_at: datetime | None = None
    last_seen_at: datetime | None = None
    # Valid until the station reconnects with the new password (rotation).
    previous_password_hash: str | None = None
    # What its BootNotification is answered: Accepted, Pending or Rejected.
    boot_status: str = "Accepted"
    # The heartbeat interval it accepted through the CSMS; None: CSMS_HEARTBEAT_INTERVAL.
    heartbeat_interval: int | None = None


@record
class ConnectorStatus:
    station_id: str
    evse_id: int
    connector_id: int
    status: str
    error_code: str | None
    info: str | None
    vendor_id: str | None
    vendor_error_code: str | None
    updated_at: datetime


@record
class IdToken:
    """An entry of the token registry (an RFID card, an app token...)."""

    id_token: str
    status: AuthorizationStatus = AuthorizationStatus.ACCEPTED
    type: IdTokenType = IdTokenType.ISO14443
    expires_at: datetime | None = None
    group_id: str | None = None
    updated_at: datetime | None = None

    def status_at(self, now: datetime) -> AuthorizationStatus:
        """The status an Authorize gets now: a passed expiry wins over Accepted."""
        if self.expires_at is not None and self.expires_at <= now:
            return AuthorizationStatus.EXPIRED
        return self.status


@record
class IdTokenInfo:
    """What the CSMS answers about a token, before a protocol spells it."""

    status: AuthorizationStatus
    expires_at: datetime | None = None
    group_id: str | None = None


@record
class MeterSample:
    """One sampled value, normalised: energy in Wh, power in W, defaults applied."""

    timestamp: datetime
    measurand: str
    value: float
    unit: str | None
    phase: str | None
    context: str | None
    location: str | None
    # The station's signature of this reading, exactly as sent: 2.0.1's
    # signedMeterValue object, 1.6's SignedData value string. Billing under
    # calibration law (Eichrecht) needs it untouched.
    signed_data: str | dict[str, Any] | None = None

    def is_energy_register(self) -> bool:
        return self.measurand == ENERGY_IMPORT_REGISTER and self.unit == "Wh"


ENERGY_IMPORT_REGISTER = "Energy.Active.Import.Register"


@record
class Transaction:
    """A charging session. ``transaction_id`` is the OCPP id as a string:
    ``str(int)`` assigned by the CSMS on 1.6, the station's own id on 2.0.1."""

    station_id: str
    transaction_id: str
    evse_id: int
    connector_id: int
    id_token: str | None
    meter_start_wh: float | None
    started_at: datetime
    ocpp_version: str
    meter_stop_wh: float | None = None
    energy_wh: float | None = None
    ended_at: datetime | None = None
    stop_reason: str | None = None
    charging_state: str | None = None
    seq_no: int | None = None
    last_meter_wh: float | None = None
    anomalies: tuple[str, ...] = ()
    updated_at: datetime | None = None
    # What the CSMS last answered for the session's id token (Accepted,
    # Invalid...); None before any answer, or for a session stored before it
    # was kept. A reboot closes the open sessions it was not Accepted for.
    id_token_status: str | None = None
    # 2.0.1: the remoteStartId of the RequestStartTransaction that led to it.
    remote_start_id: int | None = None

    @property
    def is_active(self) -> bool:
        return self.ended_at is None


@record
class DeviceModelEntry:
    """One attribute of one variable of one component a station reported."""

    component: str
    component_instance: str | None
    evse_id: int | None
    connector_id: int | None
    variable: str
    variable_instance: str | None
    attribute_type: str
    value: str | None
    mutability: str | None
    characteristics: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Identity of the entry within its station."""
        parts = (
            self.component,
            self.component_instance or "",
            "" if self.evse_id is None else str(self.evse_id),
            "" if self.connector_id is None else str(self.connector_id),
            self.variable,
            self.variable_instance or "",
            self.attribute_type,
        )
        return "|".join(parts)


# --- what CSMS-initiated commands leave behind ----------------------------------


@record
class ConfigurationKey:
    """An OCPP 1.6 configuration key as the station last reported or accepted it."""

    key: str
    value: str | None
    readonly: bool | None  # None: never reported (a ChangeConfiguration it accepted)
    updated_at: datetime | None = None


@record
class Reservation:
    """A reservation the station accepted (ReserveNow); ``evse_id`` 0 is "any EVSE"."""

    station_id: str
    reservation_id: int
    evse_id: int
    id_token: str
    expires_at: datetime
    status: str  # "Reserved" until cancelled ("Cancelled")
    updated_at: datetime | None = None


@record
class ChargingProfile:
    """A charging profile the station accepted, kept as sent (in its protocol's words)."""

    station_id: str
    evse_id: int
    profile_id: int
    stack_level: int
    purpose: str
    profile: dict[str, Any]
    updated_at: datetime | None = None


@record
class ChargingProfileCriteria:
    """Which profiles a ClearChargingProfile the station accepted removed; None matches any."""

    profile_id: int | None = None
    evse_id: int | None = None
    purpose: str | None = None
    stack_level: int | None = None


class CommandStatus(enum.StrEnum):
    """Where a CSMS-initiated command stands; the last three are final."""

    QUEUED = "queued"  # waits for its station to connect
    SENT = "sent"  # on the wire, no answer yet
    COMPLETED = "completed"  # the station answered a CALLRESULT (whatever its status)
    FAILED = "failed"  # CALLERROR, no answer in time, connection lost, invalid
    EXPIRED = "expired"  # the station did not connect before the command's expiry

    @property
    def is_final(self) -> bool:
        return self in (CommandStatus.COMPLETED, CommandStatus.FAILED, CommandStatus.EXPIRED)


@record
class Command:
    """One CALL the CSMS sends (or will send) to a station, and its outcome.

    ``name`` is the version-neutral command (``reset``...), None for a raw
    OCPP call. ``request`` is what the caller asked for (neutral fields or the
    raw payload), ``payload`` the OCPP payload sent; secrets (passwords) are
    masked in both, and in ``response``.
    """

    id: str
    station_id: str
    name: str | None
    action: str | None  # None while a queued neutral command waits for its protocol
    ocpp_version: str | None
    request: dict[str, Any]
    status: CommandStatus
    source: str  # "api" or "amqp"
    created_at: datetime
    payload: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    expires_at: datetime | None = None
    sent_at: datetime | None = None
    completed_at: datetime | None = None
