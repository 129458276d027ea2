"""OCPP 2.0.1 CALLs the CSMS sends, built from version-neutral requests, and
what the charging station's answers change."""

from __future__ import annotations

import copy
from typing import Any

from csms.core.domain import ChargingProfile, ChargingProfileCriteria, DeviceModelEntry, Reservation
from csms.core.errors import InvalidRequestError
from csms.services.commands import MASK, NO_EFFECTS, Effects, NeutralCommand, heartbeat_seconds
from protocols.command_set import CommandSet, Payload, integer, masked_items
from protocols.common import parse_time

PASSWORD_COMPONENT = "SecurityCtrlr"  # noqa: S105 - the name of a component
PASSWORD_VARIABLE = "BasicAuthPassword"  # noqa: S105 - the name of a variable
ACCEPTED = ("Accepted", "RebootRequired")
# A token the CSMS vouches for (an app, a remote start).
DEFAULT_ID_TOKEN_TYPE = "Central"  # noqa: S105 - an id token type, not a secret


def set_password(password: str) -> tuple[str, dict[str, Any]]:
    return "SetVariables", {
        "setVariableData": [
            {
                "attributeValue": password,
                "component": {"name": PASSWORD_COMPONENT},
                "variable": {"name": PASSWORD_VARIABLE},
            }
        ]
    }


def password_status(response: dict[str, Any]) -> str:
    results = response.get("setVariableResult") or [{}]
    return str(results[0].get("attributeStatus", "Rejected"))


# --- neutral commands -> CALLs ----------------------------------------------------


def build(command: NeutralCommand) -> tuple[str, Payload]:
    match command.name:
        case "start":
            payload: Payload = {
                "idToken": {
                    "idToken": command.id_token,
                    "type": command.id_token_type or DEFAULT_ID_TOKEN_TYPE,
                },
                "remoteStartId": command.remote_start_id,
            }
            if command.evse_id:
                payload["evseId"] = command.evse_id
            return "RequestStartTransaction", payload
        case "stop":
            return "RequestStopTransaction", {"transactionId": command.transaction_id}
        case "reset":
            payload = {"type": "Immediate" if command.type == "hard" else "OnIdle"}
            if command.evse_id:
                payload["evseId"] = command.evse_id
            return "Reset", payload
        case "unlock":
            return "UnlockConnector", {
                "evseId": command.evse_id,
                "connectorId": command.connector_id or 1,
            }
        case "change-availability":
            payload = {"operationalStatus": "Operative" if command.operative else "Inoperative"}
            evse = _evse(command)
            if evse is not None:
                payload["evse"] = evse
            return "ChangeAvailability", payload
        case "trigger-message":
            payload = {"requestedMessage": command.message}
            evse = _evse(command)
            if evse is not None:
                payload["evse"] = evse
            return "TriggerMessage", payload
    raise InvalidRequestError(f"OCPP 2.0.1 has no {command.name!r} command")


def _evse(command: NeutralCommand) -> Payload | None:
    """The EVSE a command is about (None: the whole station)."""
    if not command.evse_id:
        if command.connector_id:
            raise InvalidRequestError("connector_id needs evse_id on OCPP 2.0.1")
        return None
    evse: Payload = {"id": command.evse_id}
    if command.connector_id:
        evse["connectorId"] = command.connector_id
    return evse


# --- answers -> what they change --------------------------------------------------


def effects(station_id: str, action: str, request: Payload, response: Payload) -> Effects:
    status = response.get("status")
    match action:
        case "GetVariables":
            entries = tuple(
                _entry(result, result.get("attributeValue"))
                for result in response.get("getVariableResult") or []
                if result.get("attributeStatus") == "Accepted" and not _is_password(result)
            )
            return Effects(device_model=entries)
        case "SetVariables":
            asked = {
                _identity(item): item.get("attributeValue")
                for item in request.get("setVariableData") or []
            }
            entries = tuple(
                _entry(result, asked[_identity(result)])
                for result in response.get("setVariableResult") or []
                if result.get("attributeStatus") in ACCEPTED
                and not _is_password(result)
                and _identity(result) in asked
            )
            interval = next(
                (
                    heartbeat_seconds(entry.value)
                    for entry in entries
                    if entry.component == "OCPPCommCtrlr"
                    and entry.variable == "HeartbeatInterval"
                    and entry.attribute_type == "Actual"
                ),
                None,
            )
            return Effects(device_model=entries, heartbeat_interval=interval)
        case "GetLocalListVersion":
            return Effects(local_list_version=integer(response.get("versionNumber")))
        case "SendLocalList" if status == "Accepted":
            return Effects(local_list_version=integer(request.get("versionNumber")))
        case "ReserveNow" if status == "Accepted":
            reservation = Reservation(
                station_id=station_id,
                reservation_id=request["id"],
                evse_id=request.get("evseId") or 0,
                id_token=request["idToken"]["idToken"],
                expires_at=parse_time(request["expiryDateTime"], "expiryDateTime"),
                status="Reserved",
            )
            return Effects(reservation=reservation)
        case "CancelReservation" if status == "Accepted":
            return Effects(reservation_cancelled=request["reservationId"])
        case "SetChargingProfile" if status == "Accepted":
            profile = request["chargingProfile"]
            return Effects(
                charging_profile=ChargingProfile(
                    station_id=station_id,
                    evse_id=request["evseId"],
                    profile_id=profile["id"],
                    stack_level=profile["stackLevel"],
                    purpose=profile["chargingProfilePurpose"],
                    profile=profile,
                )
            )
        case "ClearChargingProfile" if status == "Accepted":
            criteria = request.get("chargingProfileCriteria") or {}
            return Effects(
                profiles_cleared=ChargingProfileCriteria(
                    profile_id=request.get("chargingProfileId"),
                    evse_id=criteria.get("evseId"),
                    purpose=criteria.get("chargingProfilePurpose"),
                    stack_level=criteria.get("stackLevel"),
                )
            )
    return NO_EFFECTS


def _identity(item: Payload) -> tuple[Any, ...]:
    component, variable = item.get("component") or {}, item.get("variable") or {}
    evse = component.get("evse") or {}
    return (
        component.get("name"),
        component.get("instance"),
        evse.get("id"),
        evse.get("connectorId"),
        variable.get("name"),
        variable.get("instance"),
        item.get("attributeType", "Actual"),
    )


def _entry(result: Payload, value: str | None) -> DeviceModelEntry:
    name, instance, evse_id, connector_id, variable, variable_instance, kind = _identity(result)
    return DeviceModelEntry(
        component=name,
        component_instance=instance,
        evse_id=evse_id,
        connector_id=connector_id,
        variable=variable,
        variable_instance=variable_instance,
        attribute_type=kind,
        value=value,
        mutability=None,
    )


# --- secrets ----------------------------------------------------------------------


def _is_password(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and (item.get("component") or {}).get("name") == PASSWORD_COMPONENT
        and (item.get("variable") or {}).get("name") == PASSWORD_VARIABLE
    )


def password(action: str, request: Payload) -> str | None:
    if action == "SetVariables":
        for item in request.get("setVariableData") or []:
            if _is_password(item):
                return str(item.get("attributeValue", ""))
    return None


def mask(action: str, payload: Payload, response: bool) -> Payload:
    if action == "SetVariables" and not response:
        return masked_items(payload, "setVariableData", _is_password, "attributeValue")
    if action == "GetVariables" and response:
        return masked_items(payload, "getVariableResult", _is_password, "attributeValue")
    if action == "SetNetworkProfile" and not response:
        apn = (payload.get("connectionData") or {}).get("apn") or {}
        if "apnPassword" in apn:
            out = copy.deepcopy(payload)
            out["connectionData"]["apn"]["apnPassword"] = MASK
            return out
    return payload


COMMANDS = CommandSet(build=build, effects=effects, mask=mask, password=password)
