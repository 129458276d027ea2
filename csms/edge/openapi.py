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
_STATION_ID = _path("station_id", "the station id")
_COMMAND_ERRORS = {
    "400": _error("body is not a JSON object, or a bad query parameter"),
    "404": _error("unknown station (station_not_found)"),
    "409": _error(
        "station not connected and no queue asked (station_not_connected), or a queue asked "
        "for a station that never connected, whose protocol is unknown (station_protocol_unknown)"
    ),
    "422": _error(
        "the request is invalid: invalid_payload (the OCPP schema's code, message and "
        "details), invalid_command (a neutral field), invalid_queue, invalid_password, "
        "cannot_queue_secret"
    ),
    "502": _error(
        "the station answered a CALLERROR (station_call_error: code, description, details) "
        "or an invalid CALLRESULT (invalid_station_answer); command_id names the record"
    ),
    "503": _error("the database is unavailable"),
    "504": _error("no answer within CSMS_CALL_TIMEOUT (station_timeout); command_id names it"),
}
_QUEUE_QUERY = [
    _query(
        "queue",
        {"type": "boolean", "default": False},
        "when the station is offline, store the command and send it when it connects "
        "(202) instead of answering 409",
    ),
    _query(
        "expires_in",
        {"type": "number", "exclusiveMinimum": 0},
        "with queue: seconds the command may wait (default 86400, at most 30 days)",
    ),
    _query(
        "expires_at",
        {"type": "string", "format": "date-time"},
        "with queue: until when the command may wait",
    ),
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
                    _query("id_prefix", {"type": "string"}, "only ids starting with this"),
                    _query("vendor", {"type": "string"}, "only this vendor (BootNotification)"),
                    _query("model", {"type": "string"}, "only this model (BootNotification)"),
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
            },
            "post": {
                "summary": "Register a station",
                "description": "Like `csms stations add`; the station may connect at once.",
                "operationId": "createStation",
                "requestBody": {
                    "required": True,
                    **_json_body(
                        {
                            "allOf": [
                                _ref("Registration"),
                                {
                                    "type": "object",
                                    "required": ["id"],
                                    "properties": {
                                        "id": {"type": "string", "minLength": 1, "maxLength": 48}
                                    },
                                },
                            ]
                        }
                    ),
                },
                "responses": {
                    "201": _answer("the registered station", _ref("StationDetail")),
                    "400": _error("body is not a JSON object"),
                    "409": _error("a station with this id is registered already"),
                    "422": _error("a field is invalid"),
                    **_AUTH_ERRORS,
                },
            },
        },
        "/api/v1/stations/{station_id}": {
            "get": {
                "summary": "One station, with its configuration and what commands left",
                "operationId": "getStation",
                "parameters": [_STATION_ID],
                "responses": {
                    "200": _answer("the station", _ref("StationDetail")),
                    "404": _error("unknown station"),
                    **_AUTH_ERRORS,
                },
            },
            "put": {
                "summary": "Register or update a station",
                "description": "Fields left out keep their value; a null password removes it. "
                "Takes effect at the station's next handshake.",
                "operationId": "putStation",
                "parameters": [_STATION_ID],
                "requestBody": {"required": True, **_json_body(_ref("Registration"))},
                "responses": {
                    "200": _answer("updated", _ref("StationDetail")),
                    "201": _answer("registered", _ref("StationDetail")),
                    "400": _error("body is not a JSON object"),
                    "422": _error("a field is invalid"),
                    **_AUTH_ERRORS,
                },
            },
            "delete": {
                "summary": "Deregister a station",
                "description": "Removes the registration and the station's current state "
                "(connectors, configuration, device model, reservations, charging profiles); "
                "its transactions, commands and events stay. Its connection, if any, is "
                "closed and its queued commands fail (station_deleted).",
                "operationId": "deleteStation",
                "parameters": [_STATION_ID],
                "responses": {
                    "204": {"description": "deleted"},
                    "404": _error("unknown station"),
                    **_AUTH_ERRORS,
                },
            },
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
                    _STATION_ID,
                    _path("action", "the OCPP action, e.g. Reset"),
                    *_QUEUE_QUERY,
                ],
                "requestBody": {"required": True, **_json_body({"type": "object"})},
                "responses": {
                    "200": {
                        **_answer(
                            "the station's CALLRESULT payload (passwords masked); the "
                            "Location header names the command's record",
                            {"type": "object"},
                        ),
                        "headers": {"Location": {"schema": {"type": "string"}}},
                    },
                    "202": _answer("queued: sent when the station connects", _ref("Command")),
                    **_COMMAND_ERRORS,
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/v1/stations/{station_id}/commands/{command}": {
            "post": {
                "summary": "Send a version-neutral command",
                "description": "Translated into the station's protocol: start "
                "(RemoteStartTransaction / RequestStartTransaction), stop (RemoteStop / "
                "RequestStopTransaction), reset (hard: Hard / Immediate, soft: Soft / OnIdle), "
                "unlock (UnlockConnector), change-availability (ChangeAvailability), "
                "trigger-message (TriggerMessage; 1.6 ExtendedTriggerMessage for the "
                "messages only it knows). On 1.6, EVSE N is connector N. Answers the "
                "command's record with the station's response.",
                "operationId": "sendCommand",
                "parameters": [
                    _STATION_ID,
                    {
                        "name": "command",
                        "in": "path",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "enum": [
                                "start",
                                "stop",
                                "reset",
                                "unlock",
                                "change-availability",
                                "trigger-message",
                            ],
                        },
                        "description": "the neutral command",
                    },
                    *_QUEUE_QUERY,
                ],
                "requestBody": {"required": True, **_json_body(_ref("NeutralCommand"))},
                "responses": {
                    "200": _answer("sent and answered (status completed)", _ref("Command")),
                    "202": _answer("queued: sent when the station connects", _ref("Command")),
                    **_COMMAND_ERRORS,
                    "404": _error("unknown station or command"),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/v1/stations/{station_id}/commands": {
            "get": {
                "summary": "A station's commands, newest first",
                "operationId": "listStationCommands",
                "parameters": [
                    _STATION_ID,
                    _query(
                        "status",
                        {
                            "type": "string",
                            "enum": ["queued", "sent", "completed", "failed", "expired"],
                        },
                        "only commands in this status",
                    ),
                    *_PAGE,
                ],
                "responses": {
                    "200": _answer(
                        "a page of commands",
                        {
                            "type": "object",
                            "required": ["items", "limit", "offset"],
                            "properties": {
                                "items": {"type": "array", "items": _ref("Command")},
                                "limit": {"type": "integer"},
                                "offset": {"type": "integer"},
                            },
                        },
                    ),
                    "400": _error("bad query parameter"),
                    "404": _error("unknown station"),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/v1/commands/{command_id}": {
            "get": {
                "summary": "One command and its outcome",
                "operationId": "getCommand",
                "parameters": [_path("command_id", "the command id")],
                "responses": {
                    "200": _answer("the command", _ref("Command")),
                    "404": _error("no such command"),
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
            "delete": {
                "summary": "Remove an id token from the registry",
                "description": "It is answered as unknown from the next Authorize on.",
                "operationId": "deleteIdToken",
                "parameters": [_path("id_token", "the token")],
                "responses": {
                    "204": {"description": "deleted"},
                    "404": _error("not registered"),
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
                    "command_id": {"type": "string", "description": "the command's record"},
                },
            },
            "Registration": {
                "type": "object",
                "properties": {
                    "password": {
                        "type": ["string", "null"],
                        "minLength": 16,
                        "maxLength": 40,
                        "description": "Basic-auth password (stored hashed); null: none",
                    },
                    "security_profile": {"type": "integer", "enum": [1, 2, 3]},
                },
                "additionalProperties": False,
            },
            "Queue": {
                "description": "Store the command if the station is offline and send it "
                "when it connects; true waits the default 24 h.",
                "oneOf": [
                    {"type": "boolean"},
                    {
                        "type": "object",
                        "properties": {
                            "expires_at": {"type": "string", "format": "date-time"},
                            "expires_in": {"type": "number", "exclusiveMinimum": 0},
                        },
                        "additionalProperties": False,
                    },
                ],
            },
            "NeutralCommand": {
                "type": "object",
                "description": "The fields a command takes: start (id_token, id_token_type, "
                "evse_id, connector_id, remote_start_id), stop (transaction_id), reset (type, "
                "evse_id), unlock (evse_id, connector_id), change-availability (operative, "
                "evse_id, connector_id), trigger-message (message, evse_id, connector_id).",
                "properties": {
                    "evse_id": {"type": "integer", "minimum": 0},
                    "connector_id": {"type": "integer", "minimum": 0},
                    "id_token": {"type": "string"},
                    "id_token_type": {"type": "string", "description": "2.0.1; default Central"},
                    "remote_start_id": {"type": "integer", "minimum": 1},
                    "transaction_id": {"type": ["string", "integer"]},
                    "type": {"type": "string", "enum": ["hard", "soft"]},
                    "operative": {"type": "boolean"},
                    "message": {
                        "type": "string",
                        "description": "the OCPP message to trigger, e.g. StatusNotification",
                    },
                    "queue": _ref("Queue"),
                },
                "additionalProperties": False,
            },
            "Command": {
                "type": "object",
                "required": ["id", "station_id", "command", "action", "status", "request"],
                "properties": {
                    "id": {"type": "string"},
                    "station_id": {"type": "string"},
                    "command": {
                        "type": ["string", "null"],
                        "description": "the neutral command; null for a raw OCPP call",
                    },
                    "action": {
                        "type": ["string", "null"],
                        "description": "the OCPP action (null until a queued neutral command "
                        "is translated for its station)",
                    },
                    "ocpp_version": _NULLABLE_STRING,
                    "status": {
                        "type": "string",
                        "enum": ["queued", "sent", "completed", "failed", "expired"],
                    },
                    "request": {"type": "object", "description": "what was asked"},
                    "payload": {"type": ["object", "null"], "description": "the CALL sent"},
                    "response": {
                        "type": ["object", "null"],
                        "description": "the station's CALLRESULT",
                    },
                    "error": {"type": ["object", "null"], "description": "why it failed"},
                    "source": {"type": "string", "enum": ["api", "amqp"]},
                    "created_at": {"type": "string", "format": "date-time"},
                    "expires_at": _NULLABLE_TIME,
                    "sent_at": _NULLABLE_TIME,
                    "completed_at": _NULLABLE_TIME,
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
            "StationDetail": {
                "allOf": [
                    _ref("Station"),
                    {
                        "type": "object",
                        "properties": {
                            "local_list_version": {"type": ["integer", "null"]},
                            "configuration": {
                                "type": "array",
                                "description": "OCPP 1.6 configuration keys",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "key": {"type": "string"},
                                        "value": _NULLABLE_STRING,
                                        "readonly": {"type": ["boolean", "null"]},
                                        "updated_at": _NULLABLE_TIME,
                                    },
                                },
                            },
                            "device_model": {
                                "type": "array",
                                "description": "OCPP 2.0.1 variables (NotifyReport, "
                                "Get/SetVariables)",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "component": {"type": "string"},
                                        "component_instance": _NULLABLE_STRING,
                                        "evse_id": {"type": ["integer", "null"]},
                                        "connector_id": {"type": ["integer", "null"]},
                                        "variable": {"type": "string"},
                                        "variable_instance": _NULLABLE_STRING,
                                        "attribute_type": {"type": "string"},
                                        "value": _NULLABLE_STRING,
                                        "mutability": _NULLABLE_STRING,
                                        "characteristics": {"type": "object"},
                                    },
                                },
                            },
                            "reservations": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "reservation_id": {"type": "integer"},
                                        "evse_id": {"type": "integer"},
                                        "id_token": {"type": "string"},
                                        "expires_at": {"type": "string", "format": "date-time"},
                                        "status": {"type": "string"},
                                        "updated_at": _NULLABLE_TIME,
                                    },
                                },
                            },
                            "charging_profiles": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "profile_id": {"type": "integer"},
                                        "evse_id": {"type": "integer"},
                                        "stack_level": {"type": "integer"},
                                        "purpose": {"type": "string"},
                                        "profile": {
                                            "type": "object",
                                            "description": "as sent, in the station's protocol",
                                        },
                                        "updated_at": _NULLABLE_TIME,
                                    },
                                },
                            },
                        },
                    },
                ]
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
                    "station_energy_wh": _NULLABLE_NUMBER,
                    "energy_overridden": {"type": "boolean"},
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
