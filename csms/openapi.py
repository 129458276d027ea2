"""The OpenAPI 3.1 description of the REST API, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out.update(_json_body(schema))
    return out


def _error(description: str) -> dict[str, Any]:
    return _answer(description, _ref("Error"))


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": description,
    }


_NULLABLE_STRING = {"type": ["string", "null"]}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_NULLABLE_NUMBER = {"type": ["number", "null"]}
_PAGE = [
    _query(
        "limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "page size"
    ),
    _query("offset", {"type": "integer", "minimum": 0, "default": 0}, "rows to skip"),
]
_AUTH_ERRORS = {
    "401": _error("missing or wrong bearer token"),
    "403": _error("no CSMS_API_TOKEN configured and the client is not on loopback"),
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "csms operations API",
        "version": "1.0.0",
        "description": "Stations, transactions, id tokens and calls to stations. Requests "
        "carry 'Authorization: Bearer <CSMS_API_TOKEN>'; without a configured token the "
        "API answers only on loopback.",
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "paths": {
        "/api/v1/openapi.json": {
            "get": {
                "summary": "This document",
                "operationId": "getOpenApi",
                "responses": {
                    "200": _answer("the OpenAPI document", {"type": "object"}),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/v1/stations": {
            "get": {
                "summary": "List stations with EVSEs, protocol and connection state",
                "operationId": "listStations",
                "parameters": [
                    _query("connected", {"type": "boolean"}, "only (dis)connected stations"),
                    _query(
                        "ocpp_version",
                        {"type": "string", "enum": ["1.6", "2.0.1"]},
                        "only stations of this protocol",
                    ),
                    *_PAGE,
                ],
                "responses": {
                    "200": _answer(
                        "a page of stations",
                        {
                            "type": "object",
                            "required": ["items", "total", "limit", "offset"],
                            "properties": {
                                "items": {"type": "array", "items": _ref("Station")},
                                "total": {"type": "integer"},
                                "limit": {"type": "integer"},
                                "offset": {"type": "integer"},
                            },
                        },
                    ),
                    "400": _error("bad query parameter"),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/v1/stations/{station_id}": {
            "get": {
                "summary": "One station",
                "operationId": "getStation",
                "parameters": [_path("station_id", "the station id")],
                "responses": {
                    "200": _answer("the station", _ref("Station")),
                    "404": _error("unknown station"),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/v1/stations/{station_id}/password": {
            "post": {
                "summary": "Rotate the station's Basic-auth password",
                "description": "Stores the new password (the old one stays valid until the "
                "station reconnects with the new one) and sends it to the station if it is "
                "connected (1.6 ChangeConfiguration AuthorizationKey, 2.0.1 SetVariables "
                "SecurityCtrlr.BasicAuthPassword).",
                "operationId": "rotateStationPassword",
                "parameters": [_path("station_id", "the station id")],
                "requestBody": {
                    "required": True,
                    **_json_body(
                        {
                            "type": "object",
                            "required": ["password"],
                            "properties": {
                                "password": {"type": "string", "minLength": 16, "maxLength": 40}
                            },
                        }
                    ),
                },
                "responses": {
                    "200": _answer("the station's answer", _ref("CommandStatus")),
                    "202": _answer("stored; sent when the station connects", _ref("CommandStatus")),
                    "400": _error("body is not a JSON object"),
                    "404": _error("unknown station"),
                    "422": _error("password missing or of the wrong length"),
                    "502": _error("the station answered with a CALLERROR"),
                    "504": _error("the station did not answer in time"),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/v1/stations/{station_id}/ocpp/{action}": {
            "post": {
                "summary": "Send any CALL of the station's protocol",
                "description": "The body is the OCPP payload of the station's protocol; it is "
                "validated against the official schema, sent, and the station's CALLRESULT "
                "payload returned.",
                "operationId": "callStation",
                "parameters": [
                    _path("station_id", "the station id"),
                    _path("action", "the OCPP action, e.g. Reset"),
                ],
                "requestBody": {"required": True, **_json_body({"type": "object"})},
                "responses": {
                    "200": _answer("the station's CALLRESULT payload", {"type": "object"}),
                    "400": _error("body is not a JSON object"),
                    "404": _error("unknown station"),
                    "409": _error("station not connected"),
                    "422": _error("payload invalid for the schema (code, message, details)"),
                    "502": _error(
                        "the station answered a CALLERROR (code, description, "
                        "details) or an invalid CALLRESULT"
                    ),
                    "504": _error("no answer within CSMS_CALL_TIMEOUT"),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/v1/transactions": {
            "get": {
                "summary": "List transactions, newest first",
                "operationId": "listTransactions",
                "parameters": [
                    _query("station_id", {"type": "string"}, "only this station's"),
                    _query("id_token", {"type": "string"}, "only this token's"),
                    _query("active", {"type": "boolean"}, "only open (true) or ended (false)"),
                    _query(
                        "started_after",
                        {"type": "string", "format": "date-time"},
                        "started at or after",
                    ),
                    _query(
                        "started_before",
                        {"type": "string", "format": "date-time"},
                        "started before",
                    ),
                    *_PAGE,
                ],
                "responses": {
                    "200": _answer(
                        "a page of transactions",
                        {
                            "type": "object",
                            "required": ["items", "limit", "offset"],
                            "properties": {
                                "items": {"type": "array", "items": _ref("Transaction")},
                                "limit": {"type": "integer"},
                                "offset": {"type": "integer"},
                            },
                        },
                    ),
                    "400": _error("bad query parameter"),
                    "422": _error("bad date-time"),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/v1/transactions/{transaction_id}": {
            "get": {
                "summary": "One transaction with its meter samples",
                "description": "1.6 ids are unique; 2.0.1 ids are the station's own, so add "
                "station_id when two stations used the same id.",
                "operationId": "getTransaction",
                "parameters": [
                    _path("transaction_id", "the OCPP transaction id"),
                    _query("station_id", {"type": "string"}, "the station"),
                ],
                "responses": {
                    "200": _answer(
                        "the transaction",
                        {
                            "allOf": [
                                _ref("Transaction"),
                                {
                                    "type": "object",
                                    "properties": {
                                        "meter_samples": {
                                            "type": "array",
                                            "items": _ref("MeterSample"),
                                        }
                                    },
                                },
                            ]
                        },
                    ),
                    "404": _error("no such transaction"),
                    "409": _error("ambiguous id: add station_id"),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/v1/id-tokens": {
            "get": {
                "summary": "List the id token registry",
                "operationId": "listIdTokens",
                "responses": {
                    "200": _answer(
                        "all tokens",
                        {
                            "type": "object",
                            "required": ["items"],
                            "properties": {"items": {"type": "array", "items": _ref("IdToken")}},
                        },
                    ),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/v1/id-tokens/{id_token}": {
            "get": {
                "summary": "One id token",
                "operationId": "getIdToken",
                "parameters": [_path("id_token", "the token (RFID UID, app token...)")],
                "responses": {
                    "200": _answer("the token", _ref("IdToken")),
                    "404": _error("not registered"),
                    **_AUTH_ERRORS,
                },
            },
            "put": {
                "summary": "Create or update an id token",
                "operationId": "putIdToken",
                "parameters": [_path("id_token", "the token (RFID UID, app token...)")],
                "requestBody": {
                    "required": True,
                    **_json_body(
                        {
                            "type": "object",
                            "required": ["status"],
                            "properties": {
                                "status": {
                                    "type": "string",
                                    "enum": ["Accepted", "Blocked", "Expired", "Invalid"],
                                },
                                "expires_at": _NULLABLE_TIME,
                                "group_id": {"type": ["string", "null"], "maxLength": 36},
                                "type": _ref("IdTokenType"),
                            },
                        }
                    ),
                },
                "responses": {
                    "200": _answer("the stored token", _ref("IdToken")),
                    "400": _error("body is not a JSON object"),
                    "422": _error("a field is invalid"),
                    **_AUTH_ERRORS,
                },
            },
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {
                    "error": {"type": "string"},
                    "message": {"type": "string"},
                    "code": {"type": "string"},
                    "description": {"type": "string"},
                    "details": {"type": "object"},
                },
            },
            "CommandStatus": {
                "type": "object",
                "required": ["status"],
                "properties": {"status": {"type": "string"}},
            },
            "IdTokenType": {
                "type": "string",
                "enum": [
                    "ISO14443",
                    "ISO15693",
                    "eMAID",
                    "Central",
                    "KeyCode",
                    "Local",
                    "MacAddress",
                    "NoAuthorization",
                ],
            },
            "IdToken": {
                "type": "object",
                "required": ["id_token", "status", "type", "expires_at", "group_id"],
                "properties": {
                    "id_token": {"type": "string"},
                    "status": {"type": "string"},
                    "type": _ref("IdTokenType"),
                    "expires_at": _NULLABLE_TIME,
                    "group_id": _NULLABLE_STRING,
                    "updated_at": _NULLABLE_TIME,
                },
            },
            "Connector": {
                "type": "object",
                "required": ["connector_id", "status"],
                "properties": {
                    "connector_id": {"type": "integer"},
                    "status": {"type": "string"},
                    "error_code": _NULLABLE_STRING,
                    "info": _NULLABLE_STRING,
                    "vendor_id": _NULLABLE_STRING,
                    "vendor_error_code": _NULLABLE_STRING,
                    "updated_at": {"type": "string", "format": "date-time"},
                },
            },
            "Evse": {
                "type": "object",
                "required": ["evse_id", "connectors"],
                "properties": {
                    "evse_id": {"type": "integer"},
                    "connectors": {"type": "array", "items": _ref("Connector")},
                },
            },
            "Station": {
                "type": "object",
                "required": ["id", "ocpp_version", "connected", "evses"],
                "properties": {
                    "id": {"type": "string"},
                    "ocpp_version": _NULLABLE_STRING,
                    "connected": {"type": "boolean"},
                    "security_profile": {"type": "integer"},
                    "has_password": {"type": "boolean"},
                    "vendor": _NULLABLE_STRING,
                    "model": _NULLABLE_STRING,
                    "serial_number": _NULLABLE_STRING,
                    "firmware_version": _NULLABLE_STRING,
                    "boot_info": {"type": "object"},
                    "registered_at": _NULLABLE_TIME,
                    "last_boot_at": _NULLABLE_TIME,
                    "last_seen_at": _NULLABLE_TIME,
                    "evses": {"type": "array", "items": _ref("Evse")},
                },
            },
            "Transaction": {
                "type": "object",
                "required": ["transaction_id", "station_id", "active", "started_at"],
                "properties": {
                    "transaction_id": {"type": "string"},
                    "station_id": {"type": "string"},
                    "ocpp_version": {"type": "string"},
                    "evse_id": {"type": "integer"},
                    "connector_id": {"type": "integer"},
                    "id_token": _NULLABLE_STRING,
                    "active": {"type": "boolean"},
                    "meter_start_wh": _NULLABLE_NUMBER,
                    "meter_stop_wh": _NULLABLE_NUMBER,
                    "energy_wh": _NULLABLE_NUMBER,
                    "started_at": {"type": "string", "format": "date-time"},
                    "ended_at": _NULLABLE_TIME,
                    "stop_reason": _NULLABLE_STRING,
                    "charging_state": _NULLABLE_STRING,
                    "seq_no": {"type": ["integer", "null"]},
                    "anomalies": {"type": "array", "items": {"type": "string"}},
                },
            },
            "MeterSample": {
                "type": "object",
                "required": [
                    "timestamp",
                    "measurand",
                    "value",
                    "unit",
                    "phase",
                    "context",
                    "location",
                ],
                "properties": {
                    "timestamp": {"type": "string", "format": "date-time"},
                    "measurand": {"type": "string"},
                    "value": {"type": "number"},
                    "unit": _NULLABLE_STRING,
                    "phase": _NULLABLE_STRING,
                    "context": _NULLABLE_STRING,
                    "location": _NULLABLE_STRING,
                },
            },
        },
    },
}
