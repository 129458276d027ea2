"""A valid request of every CALL the CSMS sends, per protocol, and a reference
check of payloads against the official schemas (``jsonschema``, with
``multipleOf`` in decimal: 21.4 is a multiple of 0.1, which float division
says it is not)."""

from __future__ import annotations

import importlib
import importlib.resources
from collections.abc import Iterator
from decimal import Decimal
from functools import cache
from typing import Any

import orjson

# jsonschema is a dev dependency and ships no type hints: import it as Any.
jsonschema: Any = importlib.import_module("jsonschema")

LATER = "2030-01-01T00:00:00Z"
TOKEN16 = "TAG-1"
TOKEN201 = {"idToken": "TAG-1", "type": "ISO14443"}

# Every CSMS-to-station CALL of OCPP 1.6 (with the security extension's ones the
# issue lists), with a valid request. Floats with one decimal exercise multipleOf.
REQUESTS_16: dict[str, dict[str, Any]] = {
    "RemoteStartTransaction": {
        "idTag": TOKEN16,
        "connectorId": 1,
        "chargingProfile": {
            "chargingProfileId": 7,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 21.4}],
                "minChargingRate": 6.1,
            },
        },
    },
    "RemoteStopTransaction": {"transactionId": 42},
    "Reset": {"type": "Soft"},
    "UnlockConnector": {"connectorId": 1},
    "ChangeAvailability": {"connectorId": 0, "type": "Inoperative"},
    "ChangeConfiguration": {"key": "HeartbeatInterval", "value": "60"},
    "GetConfiguration": {"key": ["HeartbeatInterval", "MeterValueSampleInterval", "NoSuchKey"]},
    "ClearCache": {},
    "TriggerMessage": {"requestedMessage": "StatusNotification", "connectorId": 1},
    "DataTransfer": {"vendorId": "com.example", "messageId": "ping", "data": "hello"},
    "GetLocalListVersion": {},
    "SendLocalList": {
        "listVersion": 3,
        "updateType": "Full",
        "localAuthorizationList": [{"idTag": TOKEN16, "idTagInfo": {"status": "Accepted"}}],
    },
    "ReserveNow": {
        "connectorId": 1,
        "expiryDate": LATER,
        "idTag": TOKEN16,
        "reservationId": 11,
    },
    "CancelReservation": {"reservationId": 11},
    "SetChargingProfile": {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": 8,
            "stackLevel": 1,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Recurring",
            "recurrencyKind": "Daily",
            "chargingSchedule": {
                "duration": 86400,
                "startSchedule": LATER,
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 21.4, "numberPhases": 3},
                    {"startPeriod": 3600, "limit": 0.3},
                ],
            },
        },
    },
    "ClearChargingProfile": {"id": 8},
    "GetCompositeSchedule": {"connectorId": 1, "duration": 3600, "chargingRateUnit": "A"},
    "UpdateFirmware": {
        "location": "https://fw.example.com/fw-2.0.bin",
        "retrieveDate": LATER,
        "retries": 2,
    },
    "GetDiagnostics": {"location": "ftp://diag.example.com/upload/"},
    "ExtendedTriggerMessage": {"requestedMessage": "LogStatusNotification"},
    "GetLog": {
        "logType": "DiagnosticsLog",
        "requestId": 5,
        "log": {"remoteLocation": "https://logs.example.com/upload"},
    },
    "SignedUpdateFirmware": {
        "requestId": 6,
        "firmware": {
            "location": "https://fw.example.com/fw-2.0.bin",
            "retrieveDateTime": LATER,
            "signingCertificate": "-----BEGIN CERTIFICATE-----MIIB-----END CERTIFICATE-----",
            "signature": "c2lnbmF0dXJl",
        },
    },
}

REQUESTS_201: dict[str, dict[str, Any]] = {
    "RequestStartTransaction": {"idToken": TOKEN201, "remoteStartId": 1, "evseId": 1},
    "RequestStopTransaction": {"transactionId": "TX-1"},
    "Reset": {"type": "OnIdle"},
    "UnlockConnector": {"evseId": 1, "connectorId": 1},
    "ChangeAvailability": {"operationalStatus": "Inoperative", "evse": {"id": 1}},
    "GetVariables": {
        "getVariableData": [
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
            {"component": {"name": "Nope"}, "variable": {"name": "Nope"}},
        ]
    },
    "SetVariables": {
        "setVariableData": [
            {
                "attributeValue": "60",
                "component": {"name": "SampledDataCtrlr"},
                "variable": {"name": "TxUpdatedInterval"},
            }
        ]
    },
    "GetBaseReport": {"requestId": 1, "reportBase": "FullInventory"},
    "GetReport": {"requestId": 2, "componentVariable": [{"component": {"name": "EVSE"}}]},
    "TriggerMessage": {
        "requestedMessage": "StatusNotification",
        "evse": {"id": 1, "connectorId": 1},
    },
    "ClearCache": {},
    "DataTransfer": {"vendorId": "com.example", "messageId": "ping", "data": {"x": 1}},
    "GetLocalListVersion": {},
    "SendLocalList": {
        "versionNumber": 4,
        "updateType": "Full",
        "localAuthorizationList": [{"idToken": TOKEN201, "idTokenInfo": {"status": "Accepted"}}],
    },
    "ReserveNow": {"id": 12, "expiryDateTime": LATER, "idToken": TOKEN201, "evseId": 1},
    "CancelReservation": {"reservationId": 12},
    "SetChargingProfile": {
        "evseId": 1,
        "chargingProfile": {
            "id": 9,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [
                {
                    "id": 1,
                    "startSchedule": LATER,
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 21.4}],
                }
            ],
        },
    },
    "ClearChargingProfile": {"chargingProfileId": 9},
    "GetChargingProfiles": {
        "requestId": 3,
        "chargingProfile": {"chargingProfilePurpose": "TxDefaultProfile"},
    },
    "GetCompositeSchedule": {"duration": 3600, "evseId": 1, "chargingRateUnit": "A"},
    "UpdateFirmware": {
        "requestId": 4,
        "firmware": {"location": "https://fw.example.com/fw-2.0.bin", "retrieveDateTime": LATER},
    },
    "GetLog": {
        "logType": "DiagnosticsLog",
        "requestId": 5,
        "log": {"remoteLocation": "https://logs.example.com/upload"},
    },
    "GetTransactionStatus": {"transactionId": "TX-1"},
    "SetNetworkProfile": {
        "configurationSlot": 1,
        "connectionData": {
            "ocppVersion": "OCPP20",
            "ocppTransport": "JSON",
            "ocppCsmsUrl": "wss://csms.example.com/ocpp",
            "messageTimeout": 30,
            "securityProfile": 1,
            "ocppInterface": "Wired0",
        },
    },
    "CustomerInformation": {"requestId": 6, "report": True, "clear": False, "idToken": TOKEN201},
}

REQUESTS = {"1.6": REQUESTS_16, "2.0.1": REQUESTS_201}


def decimal_multiple_of(validator: Any, step: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "number") or isinstance(instance, bool):
        return
    quotient = Decimal(repr(instance)) / Decimal(repr(step))
    if quotient != quotient.to_integral_value():
        yield jsonschema.ValidationError(f"{instance!r} is not a multiple of {step!r}")


@cache
def _validator(version: str, name: str) -> Any:
    folder = "v16" if version == "1.6" else "v201"
    resource = importlib.resources.files("ocpp") / folder / "schemas" / f"{name}.json"
    schema = orjson.loads(resource.read_bytes())
    base = jsonschema.validators.validator_for(schema)
    decimal = jsonschema.validators.extend(base, {"multipleOf": decimal_multiple_of})
    return decimal(schema, format_checker=base.FORMAT_CHECKER)


def schema_errors(version: str, action: str, payload: Any, *, response: bool = False) -> list[str]:
    """What the official schema finds wrong with a request (or response) payload."""
    suffix = "Response" if response else ("" if version == "1.6" else "Request")
    validator = _validator(version, action + suffix)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(payload)]
