"""The REST API's route table: each operation's path, method, handler (a method
of csms.edge.api.Api), summary, body and query models, and answers per
status. The router and the OpenAPI document are both built from it."""

from __future__ import annotations

from csms.edge import docs_page
from csms.edge.document import Answer, Route, Schema, openapi
from csms.services.commands import NEUTRAL_COMMANDS
from csms.services.operator import requests as rq
from csms.services.operator import resources as rs
from csms.services.operator.rules import ID_TOKEN, STATION_ID

PREFIX = "/api/v1"
_STATION = f"{PREFIX}/stations/{{station_id}}"
_OBJECT: Schema = {"type": "object"}
_BAD_BODY = "the body is not a JSON object"

_E = rs.ErrorBody
_COMMAND_ERRORS: dict[int, Answer] = {
    400: ("the body is not a JSON object, or a bad query parameter", _E),
    404: ("unknown station (station_not_found)", _E),
    409: (
        "station not connected and no queue asked (station_not_connected), its connection "
        "closed after the CALL went out, before its answer (station_not_connected, "
        "'disconnected before answering'), or a queue asked "
        "for a station that never connected, whose protocol is unknown (station_protocol_unknown)",
        _E,
    ),
    422: (
        "the request is invalid: invalid_payload (the OCPP schema's code, message and "
        "details), invalid_command (a neutral field), invalid_queue, invalid_password, "
        "cannot_queue_secret",
        _E,
    ),
    502: (
        "the station answered a CALLERROR (station_call_error: code, description, details) "
        "or an invalid CALLRESULT (invalid_station_answer); command_id names the record",
        _E,
    ),
    504: ("no answer within CSMS_CALL_TIMEOUT (station_timeout); command_id names it", _E),
}

ROUTES: list[Route] = [
    Route(
        "get",
        f"{PREFIX}/openapi.json",
        "get_open_api",
        "This document",
        answers={200: ("the OpenAPI document", _OBJECT)},
    ),
    Route(
        "get",
        docs_page.PATH,
        "get_docs",
        "This document as an interactive page (Swagger UI)",
        answers={200: ("the page", {"type": "string"})},
        content_type="text/html",
    ),
    Route(
        "get",
        f"{PREFIX}/stations",
        "list_stations",
        "List stations with EVSEs, protocol and connection state",
        query=rq.StationQuery,
        answers={200: ("a page of stations", rs.StationPage), 400: ("bad query parameter", _E)},
    ),
    Route(
        "post",
        f"{PREFIX}/stations",
        "create_station",
        "Register a station",
        "Like `csms stations add`; the station may connect at once.",
        body=rq.StationCreation,
        answers={
            201: ("the registered station", rs.StationDetail),
            400: (_BAD_BODY, _E),
            409: ("a station with this id is registered already", _E),
            422: ("a field is invalid (invalid_value)", _E),
        },
    ),
    Route(
        "get",
        _STATION,
        "get_station",
        "One station, with its configuration and what commands left",
        answers={200: ("the station", rs.StationDetail), 404: ("unknown station", _E)},
    ),
    Route(
        "put",
        _STATION,
        "put_station",
        "Register or update a station",
        "Fields left out keep their value; a null password removes it. Takes effect at "
        "the station's next handshake.",
        body=rq.StationRegistration,
        answers={
            200: ("updated", rs.StationDetail),
            201: ("registered", rs.StationDetail),
            400: (_BAD_BODY, _E),
            422: ("a field is invalid (invalid_value)", _E),
        },
    ),
    Route(
        "delete",
        _STATION,
        "delete_station",
        "Deregister a station",
        "Removes the registration and the station's current state (connectors, "
        "configuration, device model, reservations, charging profiles); its transactions, "
        "commands and events stay. Its connection, if any, is closed and its queued "
        "commands fail (station_deleted).",
        answers={204: ("deleted", None), 404: ("unknown station", _E)},
    ),
    Route(
        "post",
        f"{_STATION}/password",
        "rotate_password",
        "Rotate the station's Basic-auth password",
        "Stores the new password (the old one stays valid until the station reconnects "
        "with the new one) and sends it to the station if it is connected (1.6 "
        "ChangeConfiguration AuthorizationKey, 2.0.1 SetVariables "
        "SecurityCtrlr.BasicAuthPassword).",
        body=rq.PasswordRotation,
        answers={
            200: ("the station's answer", rs.PasswordStatus),
            202: ("stored; sent when the station connects", rs.PasswordStatus),
            400: (_BAD_BODY, _E),
            404: ("unknown station", _E),
            422: ("password missing or of the wrong length (invalid_body)", _E),
            502: ("the station answered with a CALLERROR", _E),
            504: ("the station did not answer in time", _E),
        },
    ),
    Route(
        "post",
        f"{_STATION}/ocpp/{{action}}",
        "raw_call",
        "Send any CALL of the station's protocol",
        "The body is the OCPP payload of the station's protocol; it is validated against "
        "the official schema, sent, and the station's CALLRESULT payload returned.",
        body=rq.OcppPayload,
        query=rq.QueueQuery,
        answers={
            200: ("the station's CALLRESULT payload (passwords masked)", _OBJECT),
            202: ("queued: sent when the station connects", rs.CommandResource),
            **_COMMAND_ERRORS,
        },
        location=True,
    ),
    Route(
        "post",
        f"{_STATION}/commands/{{command}}",
        "neutral_command",
        "Send a version-neutral command",
        "Translated into the station's protocol: start (RemoteStartTransaction / "
        "RequestStartTransaction), stop (RemoteStop / RequestStopTransaction), reset (hard: "
        "Hard / Immediate, soft: Soft / OnIdle), unlock (UnlockConnector), "
        "change-availability (ChangeAvailability), trigger-message (TriggerMessage; 1.6 "
        "ExtendedTriggerMessage for the messages only it knows). On 1.6, EVSE N is "
        "connector N. Answers the command's record with the station's response.",
        body=rq.NeutralFields,
        query=rq.QueueQuery,
        answers={
            200: ("sent and answered (status completed)", rs.CommandResource),
            202: ("queued: sent when the station connects", rs.CommandResource),
            **_COMMAND_ERRORS,
            404: ("unknown station or command", _E),
        },
        location=True,
    ),
    Route(
        "get",
        f"{_STATION}/commands",
        "list_station_commands",
        "A station's commands, newest first",
        query=rq.CommandQuery,
        answers={
            200: ("a page of commands", rs.CommandPage),
            400: ("bad query parameter", _E),
            404: ("unknown station", _E),
        },
    ),
    Route(
        "get",
        f"{PREFIX}/commands/{{command_id}}",
        "get_command",
        "One command and its outcome",
        answers={200: ("the command", rs.CommandResource), 404: ("no such command", _E)},
    ),
    Route(
        "get",
        f"{PREFIX}/transactions",
        "list_transactions",
        "List transactions, newest first",
        query=rq.TransactionQuery,
        answers={
            200: ("a page of transactions", rs.TransactionPage),
            400: ("bad query parameter (a bad boolean, number or date-time)", _E),
        },
    ),
    Route(
        "get",
        f"{PREFIX}/transactions/{{transaction_id}}",
        "get_transaction",
        "One transaction with its meter samples",
        "1.6 ids are unique; 2.0.1 ids are the station's own, so add station_id when two "
        "stations used the same id.",
        query=rq.TransactionLookup,
        answers={
            200: ("the transaction", rs.TransactionDetail),
            404: ("no such transaction", _E),
            409: ("ambiguous id: add station_id", _E),
        },
    ),
    Route(
        "get",
        f"{PREFIX}/id-tokens",
        "list_id_tokens",
        "List the id token registry",
        answers={200: ("all tokens", rs.IdTokenList)},
    ),
    Route(
        "get",
        f"{PREFIX}/id-tokens/{{id_token}}",
        "get_id_token",
        "One id token",
        answers={200: ("the token", rs.IdTokenResource), 404: ("not registered", _E)},
    ),
    Route(
        "put",
        f"{PREFIX}/id-tokens/{{id_token}}",
        "put_id_token",
        "Create or update an id token",
        body=rq.IdTokenRegistration,
        answers={
            200: ("the stored token", rs.IdTokenResource),
            400: (_BAD_BODY, _E),
            422: ("a field is invalid (invalid_value; invalid_id_token for the path)", _E),
        },
    ),
    Route(
        "delete",
        f"{PREFIX}/id-tokens/{{id_token}}",
        "delete_id_token",
        "Remove an id token from the registry",
        "It is answered as unknown from the next Authorize on.",
        answers={204: ("deleted", None), 404: ("not registered", _E)},
    ),
]

PATH_PARAMETERS: dict[str, tuple[str, Schema]] = {
    "station_id": ("the station id", STATION_ID.json_schema()),
    "action": ("the OCPP action, e.g. Reset", {"type": "string"}),
    "command": ("the neutral command", {"type": "string", "enum": list(NEUTRAL_COMMANDS)}),
    "command_id": ("the command id", {"type": "string"}),
    "transaction_id": ("the OCPP transaction id", {"type": "string"}),
    "id_token": ("the token (RFID UID, app token...)", ID_TOKEN.json_schema()),
}

OPENAPI = openapi(
    ROUTES,
    path_parameters=PATH_PARAMETERS,
    info={
        "title": "csms operations API",
        "version": "1.0.0",
        "description": "Stations, transactions, id tokens and calls to stations. Requests "
        "carry 'Authorization: Bearer <CSMS_API_TOKEN>'; without a configured token the API "
        f"answers only on loopback. An interactive page: {docs_page.PATH}.",
    },
)
"""The document served at /api/v1/openapi.json (built once, at import)."""
