"""OCPP 1.6 CALLs the CSMS sends, built from version-neutral requests, and
what the charge point's answers change.

A 1.6 connector N is EVSE N: the neutral ``evse_id`` is the 1.6 ``connectorId``
(a ``connector_id`` alone is taken as that too; on 1.6 an EVSE has one connector).
"""

from __future__ import annotations

from typing import Any

from csms.core.domain import (
    ChargingProfile,
    ChargingProfileCriteria,
    ConfigurationKey,
    Reservation,
)
from csms.core.errors import InvalidRequestError
from csms.services.commands import MASK, NO_EFFECTS, Effects, NeutralCommand, heartbeat_seconds
from protocols.command_set import CommandSet, Payload, integer, masked_items
from protocols.common import parse_time
from protocols.ocpp16.convert import evse_of

PASSWORD_KEY = "AuthorizationKey"  # noqa: S105 - the name of a configuration key
ACCEPTED = ("Accepted", "RebootRequired")
# Messages only the security extension's ExtendedTriggerMessage can request.
_EXTENDED_TRIGGERS = frozenset({"LogStatusNotification", "SignChargePointCertificate"})


def set_password(password: str) -> tuple[str, dict[str, Any]]:
    """The 1.6 security extension keeps the Basic-auth password in AuthorizationKey."""
    return "ChangeConfiguration", {"key": PASSWORD_KEY, "value": password}


def password_status(response: dict[str, Any]) -> str:
    return str(response.get("status", "Rejected"))


# --- neutral commands -> CALLs ----------------------------------------------------


def build(command: NeutralCommand) -> tuple[str, Payload]:
    connector = _connector(command)
    match command.name:
        case "start":
            payload: Payload = {"idTag": command.id_token}
            if connector:
                payload["connectorId"] = connector
            return "RemoteStartTransaction", payload
        case "stop":
            assert command.transaction_id is not None  # required by NeutralCommand.parse
            try:
                transaction_id = int(command.transaction_id)
            except ValueError:
                raise InvalidRequestError(
                    "transaction_id: OCPP 1.6 transaction ids are integers"
                ) from None
            return "RemoteStopTransaction", {"transactionId": transaction_id}
        case "reset":
            if command.evse_id:
                raise InvalidRequestError("evse_id: OCPP 1.6 resets the whole charge point")
            return "Reset", {"type": "Hard" if command.type == "hard" else "Soft"}
        case "unlock":
            return "UnlockConnector", {"connectorId": connector}
        case "change-availability":
            kind = "Operative" if command.operative else "Inoperative"
            return "ChangeAvailability", {"connectorId": connector, "type": kind}
        case "trigger-message":
            message = command.message
            action = "ExtendedTriggerMessage" if message in _EXTENDED_TRIGGERS else "TriggerMessage"
            payload = {"requestedMessage": message}
            if connector:
                payload["connectorId"] = connector
            return action, payload
    raise InvalidRequestError(f"OCPP 1.6 has no {command.name!r} command")


def _connector(command: NeutralCommand) -> int:
    """The 1.6 connectorId of a neutral command (0: the whole charge point)."""
    if command.evse_id is not None:
        if command.connector_id not in (None, 0, 1):
            raise InvalidRequestError(
                "connector_id: on OCPP 1.6 an EVSE has one connector (EVSE N is connector N)"
            )
        return command.evse_id
    return command.connector_id or 0


# --- answers -> what they change --------------------------------------------------


def effects(station_id: str, action: str, request: Payload, response: Payload) -> Effects:
    status = response.get("status")
    match action:
        case "GetConfiguration":
            keys = tuple(
                ConfigurationKey(item["key"], item.get("value"), bool(item.get("readonly")))
                for item in response.get("configurationKey") or []
                if item.get("key") != PASSWORD_KEY
            )
            return Effects(configuration=keys)
        case "ChangeConfiguration" if status in ACCEPTED and request["key"] != PASSWORD_KEY:
            return Effects(
                configuration=(ConfigurationKey(request["key"], request["value"], None),),
                heartbeat_interval=(
                    heartbeat_seconds(request["value"])
                    if request["key"].lower() == "heartbeatinterval"
                    else None
                ),
            )
        case "GetLocalListVersion":
            return Effects(local_list_version=integer(response.get("listVersion")))
        case "SendLocalList" if status == "Accepted":
            return Effects(local_list_version=integer(request.get("listVersion")))
        case "ReserveNow" if status == "Accepted":
            reservation = Reservation(
                station_id=station_id,
                reservation_id=request["reservationId"],
                evse_id=evse_of(request["connectorId"])[0],
                id_token=request["idTag"],
                expires_at=parse_time(request["expiryDate"], "expiryDate"),
                status="Reserved",
            )
            return Effects(reservation=reservation)
        case "CancelReservation" if status == "Accepted":
            return Effects(reservation_cancelled=request["reservationId"])
        case "SetChargingProfile" if status == "Accepted":
            profile = request["csChargingProfiles"]
            return Effects(
                charging_profile=ChargingProfile(
                    station_id=station_id,
                    evse_id=request["connectorId"],
                    profile_id=profile["chargingProfileId"],
                    stack_level=profile["stackLevel"],
                    purpose=profile["chargingProfilePurpose"],
                    profile=profile,
                )
            )
        case "ClearChargingProfile" if status == "Accepted":
            criteria = ChargingProfileCriteria(
                profile_id=request.get("id"),
                evse_id=request.get("connectorId"),
                purpose=request.get("chargingProfilePurpose"),
                stack_level=request.get("stackLevel"),
            )
            return Effects(profiles_cleared=criteria)
    return NO_EFFECTS


# --- secrets ----------------------------------------------------------------------


def password(action: str, request: Payload) -> str | None:
    if action == "ChangeConfiguration" and request.get("key") == PASSWORD_KEY:
        return str(request.get("value", ""))
    return None


def mask(action: str, payload: Payload, response: bool) -> Payload:
    if action == "ChangeConfiguration" and not response and password(action, payload) is not None:
        return {**payload, "value": MASK}
    if action == "GetConfiguration" and response:
        return masked_items(
            payload, "configurationKey", lambda item: item.get("key") == PASSWORD_KEY, "value"
        )
    return payload


COMMANDS = CommandSet(build=build, effects=effects, mask=mask, password=password)
