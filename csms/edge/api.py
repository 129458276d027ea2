"""The REST API under /api/v1/ (JSON), described by csms/edge/openapi.py.

Requests need ``Authorization: Bearer <CSMS_API_TOKEN>`` (compared in constant
time); without a configured token the API answers only on loopback. Errors
are ``{"error": <kind>, "message": <text>, ...}``.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog
from aiohttp import web

from csms.core import catalog
from csms.core.domain import (
    MAX_STATION_ID_LENGTH,
    REGISTRABLE_TOKEN_STATUSES,
    AuthorizationStatus,
    ChargingProfile,
    Command,
    CommandStatus,
    ConfigurationKey,
    ConnectorStatus,
    DeviceModelEntry,
    IdToken,
    IdTokenType,
    Reservation,
    Station,
    Transaction,
)
from csms.core.errors import (
    CallErrorReceived,
    CallTimeoutError,
    StationDisconnectedError,
    StationNotConnectedError,
    StorageError,
)
from csms.core.events import iso
from csms.core.ports import UNCHANGED, CommandFilter, StationLink, Storage, TransactionFilter
from csms.core.security import hash_password
from csms.core.settlement import is_overridden
from csms.edge.openapi import OPENAPI
from csms.services import Services
from csms.services.commands import MASK, NEUTRAL_COMMANDS
from csms.services.dispatcher import CommandDispatcher, CommandRefused, Submission
from csms.services.passwords import PasswordDelivery

log = structlog.get_logger("csms.api")

PREFIX = "/api/v1"
MAX_PAGE = 1000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": kind, "message": message, **extra}


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def auth_middleware(api_token: str) -> Any:
    expected = f"Bearer {api_token}".encode()

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(PREFIX + "/"):
            return await handler(request)
        if api_token:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                response = _json(
                    {"error": "unauthorized", "message": "a valid bearer token is required"}, 401
                )
                response.headers["WWW-Authenticate"] = 'Bearer realm="csms"'
                return response
        elif not _is_loopback(request.remote):
            message = "without CSMS_API_TOKEN the API answers only on loopback"
            return _json({"error": "forbidden", "message": message}, 403)
        return await handler(request)

    return authenticate


class Api:
    """Route handlers; each one reads, calls a service or the station link, answers."""

    def __init__(
        self,
        storage: Storage,
        services: Services,
        stations: StationLink,
        commands: CommandDispatcher,
        passwords: PasswordDelivery,
    ) -> None:
        self._storage = storage
        self._services = services
        self._stations = stations
        self._commands = commands
        self._passwords = passwords

    def routes(self) -> list[web.RouteDef]:
        station = f"{PREFIX}/stations/{{station_id}}"
        return [
            web.get(f"{PREFIX}/openapi.json", self.openapi),
            web.get(f"{PREFIX}/stations", self._wrap(self.list_stations)),
            web.post(f"{PREFIX}/stations", self._wrap(self.create_station)),
            web.get(station, self._wrap(self.get_station)),
            web.put(station, self._wrap(self.put_station)),
            web.delete(station, self._wrap(self.delete_station)),
            web.post(f"{station}/password", self._wrap(self.rotate_password)),
            web.post(f"{station}/ocpp/{{action}}", self._wrap(self.raw_call)),
            web.post(f"{station}/commands/{{command}}", self._wrap(self.neutral_command)),
            web.get(f"{station}/commands", self._wrap(self.list_station_commands)),
            web.get(f"{PREFIX}/commands/{{command_id}}", self._wrap(self.get_command)),
            web.get(f"{PREFIX}/transactions", self._wrap(self.list_transactions)),
            web.get(f"{PREFIX}/transactions/{{transaction_id}}", self._wrap(self.get_transaction)),
            web.get(f"{PREFIX}/id-tokens", self._wrap(self.list_id_tokens)),
            web.get(f"{PREFIX}/id-tokens/{{id_token}}", self._wrap(self.get_id_token)),
            web.put(f"{PREFIX}/id-tokens/{{id_token}}", self._wrap(self.put_id_token)),
            web.delete(f"{PREFIX}/id-tokens/{{id_token}}", self._wrap(self.delete_id_token)),
        ]

    @staticmethod
    def _wrap(handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except ApiError as exc:
                return _json(exc.body, exc.status)
            except CommandRefused as exc:
                return _json(exc.body, exc.status)
            except StorageError as exc:
                log.error("api_storage_failed", path=request.path, error=str(exc))
                message = "the CSMS cannot reach its database; retry later"
                return _json({"error": "storage_unavailable", "message": message}, 503)

        return wrapped

    async def openapi(self, _: web.Request) -> web.Response:
        return _json(OPENAPI)

    # --- stations ---------------------------------------------------------

    async def list_stations(self, request: web.Request) -> web.Response:
        limit, offset = _page(request)
        connected = _optional_bool(request, "connected")
        version = request.query.get("ocpp_version")
        prefix = request.query.get("id_prefix", "")
        vendor = request.query.get("vendor")
        model = request.query.get("model")
        stations = [
            s
            for s in await self._storage.list_stations()
            if s.id.startswith(prefix)
            and (connected is None or self._is_connected(s.id) == connected)
            and (version is None or self._version(s) == version)
            and (vendor is None or s.vendor == vendor)
            and (model is None or s.model == model)
        ]
        page = stations[offset : offset + limit]
        items = [await self._station_json(s) for s in page]
        return _json({"items": items, "total": len(stations), "limit": limit, "offset": offset})

    async def get_station(self, request: web.Request) -> web.Response:
        station = await self._station(request.match_info["station_id"])
        return _json(await self._station_detail_json(station))

    async def create_station(self, request: web.Request) -> web.Response:
        body = await _body(request)
        station_id = body.get("id")
        if not isinstance(station_id, str) or not 1 <= len(station_id) <= MAX_STATION_ID_LENGTH:
            raise ApiError(
                422, "invalid_value", f"id is a string of 1-{MAX_STATION_ID_LENGTH} characters"
            )
        if await self._storage.find_station(station_id) is not None:
            raise ApiError(409, "station_exists", f"station {station_id!r} is already registered")
        station = await self._register(station_id, body, allowed={"id"})
        log.info("station_registered", station_id=station_id, via="api")
        return _json(await self._station_detail_json(station), 201)

    async def put_station(self, request: web.Request) -> web.Response:
        station_id = request.match_info["station_id"]
        if len(station_id) > MAX_STATION_ID_LENGTH:
            raise ApiError(
                422, "invalid_value", f"a station id has 1-{MAX_STATION_ID_LENGTH} characters"
            )
        body = await _body(request)
        existed = await self._storage.find_station(station_id) is not None
        station = await self._register(station_id, body, allowed=set())
        log.info("station_registered", station_id=station_id, via="api", created=not existed)
        return _json(await self._station_detail_json(station), 200 if existed else 201)

    async def _register(self, station_id: str, body: dict[str, Any], allowed: set[str]) -> Station:
        unknown = sorted(set(body) - allowed - {"password", "security_profile"})
        if unknown:
            raise ApiError(422, "invalid_value", f"unknown field(s): {', '.join(unknown)}")
        password_hash: Any = UNCHANGED
        if "password" in body:
            password = body["password"]
            if password is not None and (
                not isinstance(password, str) or not 16 <= len(password) <= 40
            ):
                raise ApiError(
                    422, "invalid_value", "password is null or a string of 16-40 characters"
                )
            password_hash = None
            if password is not None:  # scrypt takes a while: off the event loop
                loop = asyncio.get_running_loop()
                password_hash = await loop.run_in_executor(None, hash_password, password)
        profile: Any = UNCHANGED
        if "security_profile" in body:
            profile = body["security_profile"]
            if profile not in (1, 2, 3) or isinstance(profile, bool):
                raise ApiError(422, "invalid_value", "security_profile is 1, 2 or 3")
        return await self._storage.register_station(
            station_id, password_hash=password_hash, security_profile=profile, at=datetime.now(UTC)
        )

    async def delete_station(self, request: web.Request) -> web.Response:
        station_id = request.match_info["station_id"]
        await self._station(station_id)
        # Closed first: recording its disconnection must not outlive the deletion.
        closed = await self._stations.disconnect(station_id, "station deregistered")
        await self._commands.forget_station(station_id)
        if not await self._storage.delete_station(station_id):
            raise ApiError(404, "station_not_found", f"no station {station_id!r}")
        log.info("station_deleted", station_id=station_id, was_connected=closed)
        return web.Response(status=204)

    async def rotate_password(self, request: web.Request) -> web.Response:
        station_id = request.match_info["station_id"]
        body = await _body(request)
        password = body.get("password")
        if not isinstance(password, str) or not 16 <= len(password) <= 40:
            raise ApiError(422, "invalid_body", "password must be a string of 16-40 characters")
        await self._station(station_id)
        await self._services.stations.rotate_password(station_id, password)
        try:
            status = await self._passwords.change(station_id, password)
        except (StationNotConnectedError, StationDisconnectedError):
            status = None  # it waits for the station's next connection
        except CallErrorReceived as exc:
            raise ApiError(
                502,
                "station_call_error",
                "the station refused the new password",
                code=exc.code,
                description=exc.description,
                details=exc.details,
            ) from None
        except CallTimeoutError:
            raise ApiError(504, "station_timeout", "the station did not answer in time") from None
        log.info("password_rotated", station_id=station_id, delivered=status is not None)
        if status is None:
            return _json({"status": "Pending"}, 202)
        return _json({"status": status})

    async def raw_call(self, request: web.Request) -> web.Response:
        """The OCPP payload is the body; queueing is asked in the query string."""
        payload = await _body(request)
        queue, expires_at = _query_queue(request)
        outcome = await self._commands.submit(
            Submission(
                request.match_info["station_id"],
                payload,
                action=request.match_info["action"],
                queue=queue,
                expires_at=expires_at,
            )
        )
        if outcome.queued:
            return _command_response(outcome.command, 202)
        response = _json(outcome.response)
        response.headers["Location"] = f"{PREFIX}/commands/{outcome.command.id}"
        return response

    async def neutral_command(self, request: web.Request) -> web.Response:
        """The neutral fields are the body, with an optional "queue" (or the query string)."""
        name = request.match_info["command"]
        if name not in NEUTRAL_COMMANDS:
            raise ApiError(
                404, "unknown_command", f"no command {name!r}: one of {', '.join(NEUTRAL_COMMANDS)}"
            )
        body = await _body(request)
        queue, expires_at = _query_queue(request)
        if "queue" in body:
            queue, expires_at = body_queue(body.pop("queue"))
        outcome = await self._commands.submit(
            Submission(
                request.match_info["station_id"],
                body,
                name=name,
                queue=queue,
                expires_at=expires_at,
            )
        )
        return _command_response(outcome.command, 202 if outcome.queued else 200)

    async def get_command(self, request: web.Request) -> web.Response:
        command_id = request.match_info["command_id"]
        command = await self._storage.find_command(command_id)
        if command is None:
            raise ApiError(404, "not_found", f"no command {command_id!r}")
        return _json(command_json(command))

    async def list_station_commands(self, request: web.Request) -> web.Response:
        station_id = request.match_info["station_id"]
        limit, offset = _page(request)
        status = request.query.get("status")
        statuses = [s.value for s in CommandStatus]
        if status is not None and status not in statuses:
            raise ApiError(400, "invalid_query", f"status is one of {', '.join(statuses)}")
        await self._station(station_id)
        where = CommandFilter(
            station_id=station_id,
            status=None if status is None else CommandStatus(status),
            limit=limit,
            offset=offset,
        )
        items = [command_json(c) for c in await self._storage.list_commands(where)]
        return _json({"items": items, "limit": limit, "offset": offset})

    # --- transactions -----------------------------------------------------

    async def list_transactions(self, request: web.Request) -> web.Response:
        limit, offset = _page(request)
        where = TransactionFilter(
            station_id=request.query.get("station_id"),
            id_token=request.query.get("id_token"),
            active=_optional_bool(request, "active"),
            started_after=_optional_time(request, "started_after"),
            started_before=_optional_time(request, "started_before"),
            limit=limit,
            offset=offset,
        )
        items = [_transaction_json(t) for t in await self._storage.list_transactions(where)]
        return _json({"items": items, "limit": limit, "offset": offset})

    async def get_transaction(self, request: web.Request) -> web.Response:
        transaction_id = request.match_info["transaction_id"]
        where = TransactionFilter(
            station_id=request.query.get("station_id"), transaction_id=transaction_id, limit=2
        )
        found = await self._storage.list_transactions(where)
        if not found:
            raise ApiError(404, "not_found", f"no transaction {transaction_id!r}")
        if len(found) > 1:
            raise ApiError(
                409,
                "ambiguous",
                f"several stations have a transaction {transaction_id!r}; add ?station_id=",
            )
        tx = found[0]
        samples = await self._storage.list_meter_samples(tx.station_id, tx.transaction_id)
        meter_samples = [catalog.meter_sample(s) for s in samples]
        return _json({**_transaction_json(tx), "meter_samples": meter_samples})

    # --- id tokens --------------------------------------------------------

    async def list_id_tokens(self, request: web.Request) -> web.Response:
        return _json({"items": [_token_json(t) for t in await self._storage.list_id_tokens()]})

    async def get_id_token(self, request: web.Request) -> web.Response:
        token = await self._storage.find_id_token(request.match_info["id_token"])
        if token is None:
            raise ApiError(404, "not_found", "no such id token")
        return _json(_token_json(token))

    async def put_id_token(self, request: web.Request) -> web.Response:
        id_token = request.match_info["id_token"]
        if not 1 <= len(id_token) <= 36:
            raise ApiError(422, "invalid_id_token", "an id token has 1 to 36 characters")
        body = await _body(request)
        statuses = [s.value for s in REGISTRABLE_TOKEN_STATUSES]
        token_types = [t.value for t in IdTokenType]
        stored = await self._storage.put_id_token(
            IdToken(
                id_token=id_token,
                status=AuthorizationStatus(_choice(body, "status", statuses, None)),
                type=IdTokenType(_choice(body, "type", token_types, IdTokenType.ISO14443.value)),
                expires_at=_body_time(body, "expires_at"),
                group_id=_body_str(body, "group_id"),
                updated_at=datetime.now(UTC),
            )
        )
        return _json(_token_json(stored))

    async def delete_id_token(self, request: web.Request) -> web.Response:
        if not await self._storage.delete_id_token(request.match_info["id_token"]):
            raise ApiError(404, "not_found", "no such id token")
        return web.Response(status=204)

    # --- helpers ----------------------------------------------------------

    async def _station(self, station_id: str) -> Station:
        station = await self._storage.find_station(station_id)
        if station is None:
            raise ApiError(404, "station_not_found", f"no station {station_id!r}")
        return station

    def _is_connected(self, station_id: str) -> bool:
        return self._stations.is_connected(station_id)

    def _version(self, station: Station) -> str | None:
        return self._stations.ocpp_version(station.id) or station.ocpp_version

    async def _station_json(self, s: Station) -> dict[str, Any]:
        connectors = await self._storage.list_connectors(s.id)
        return {
            "id": s.id,
            "ocpp_version": self._version(s),
            "connected": self._is_connected(s.id),
            "security_profile": s.security_profile,
            "has_password": s.password_hash is not None,
            "vendor": s.vendor,
            "model": s.model,
            "serial_number": s.serial_number,
            "firmware_version": s.firmware_version,
            "boot_info": s.boot_info,
            "registered_at": _time(s.registered_at),
            "last_boot_at": _time(s.last_boot_at),
            "last_seen_at": _time(s.last_seen_at),
            "evses": _evses_json(connectors),
        }

    async def _station_detail_json(self, s: Station) -> dict[str, Any]:
        """A station with what commands and reports told about it."""
        return {
            **await self._station_json(s),
            "local_list_version": await self._storage.find_local_list_version(s.id),
            "configuration": [
                _configuration_json(k) for k in await self._storage.list_configuration(s.id)
            ],
            "device_model": [
                _device_model_json(e) for e in await self._storage.list_device_model(s.id)
            ],
            "reservations": [
                _reservation_json(r) for r in await self._storage.list_reservations(s.id)
            ],
            "charging_profiles": [
                _profile_json(p) for p in await self._storage.list_charging_profiles(s.id)
            ],
        }


def _evses_json(connectors: list[ConnectorStatus]) -> list[dict[str, Any]]:
    evses: dict[int, list[dict[str, Any]]] = {}
    for c in sorted(connectors, key=lambda c: (c.evse_id, c.connector_id)):
        evses.setdefault(c.evse_id, []).append(
            {
                "connector_id": c.connector_id,
                "status": c.status,
                "error_code": c.error_code,
                "info": c.info,
                "vendor_id": c.vendor_id,
                "vendor_error_code": c.vendor_error_code,
                "updated_at": iso(c.updated_at),
            }
        )
    return [{"evse_id": evse_id, "connectors": items} for evse_id, items in evses.items()]


def command_json(c: Command) -> dict[str, Any]:
    """A command record as the API and the RabbitMQ replies show it (secrets masked)."""
    return {
        "id": c.id,
        "station_id": c.station_id,
        "command": c.name,
        "action": c.action,
        "ocpp_version": c.ocpp_version,
        "status": c.status.value,
        "request": c.request,
        "payload": c.payload,
        "response": c.response,
        "error": c.error,
        "source": c.source,
        "created_at": iso(c.created_at),
        "expires_at": _time(c.expires_at),
        "sent_at": _time(c.sent_at),
        "completed_at": _time(c.completed_at),
    }


def _command_response(command: Command, status: int) -> web.Response:
    response = _json(command_json(command), status)
    response.headers["Location"] = f"{PREFIX}/commands/{command.id}"
    return response


def _configuration_json(k: ConfigurationKey) -> dict[str, Any]:
    return {
        "key": k.key,
        "value": k.value,
        "readonly": k.readonly,
        "updated_at": _time(k.updated_at),
    }


def _device_model_json(e: DeviceModelEntry) -> dict[str, Any]:
    secret = e.component == "SecurityCtrlr" and e.variable == "BasicAuthPassword"
    return {
        "component": e.component,
        "component_instance": e.component_instance,
        "evse_id": e.evse_id,
        "connector_id": e.connector_id,
        "variable": e.variable,
        "variable_instance": e.variable_instance,
        "attribute_type": e.attribute_type,
        "value": MASK if secret and e.value is not None else e.value,
        "mutability": e.mutability,
        "characteristics": e.characteristics,
    }


def _reservation_json(r: Reservation) -> dict[str, Any]:
    return {
        "reservation_id": r.reservation_id,
        "evse_id": r.evse_id,
        "id_token": r.id_token,
        "expires_at": iso(r.expires_at),
        "status": r.status,
        "updated_at": _time(r.updated_at),
    }


def _profile_json(p: ChargingProfile) -> dict[str, Any]:
    return {
        "profile_id": p.profile_id,
        "evse_id": p.evse_id,
        "stack_level": p.stack_level,
        "purpose": p.purpose,
        "profile": p.profile,
        "updated_at": _time(p.updated_at),
    }


def _transaction_json(t: Transaction) -> dict[str, Any]:
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
        "started_at": iso(t.started_at),
        "ended_at": _time(t.ended_at),
        "stop_reason": t.stop_reason,
        "charging_state": t.charging_state,
        "seq_no": t.seq_no,
        "anomalies": list(t.anomalies),
    }


def _token_json(t: IdToken) -> dict[str, Any]:
    return {
        "id_token": t.id_token,
        "status": t.status.value,
        "type": t.type.value,
        "expires_at": _time(t.expires_at),
        "group_id": t.group_id,
        "updated_at": _time(t.updated_at),
    }


def _time(moment: datetime | None) -> str | None:
    return iso(moment) if moment is not None else None


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the request body must be a JSON object")
    return body


def _query_queue(request: web.Request) -> tuple[bool, datetime | None]:
    """?queue=true with an optional expires_in (seconds) or expires_at (ISO 8601)."""
    queue = _optional_bool(request, "queue") or False
    expires_at = _optional_time(request, "expires_at")
    expires_in = request.query.get("expires_in")
    if expires_in is not None:
        try:
            seconds = float(expires_in)
        except ValueError:
            raise ApiError(400, "invalid_query", "expires_in is a number of seconds") from None
        expires_at = _in(seconds, "expires_in")
    if expires_at is not None and not queue:
        raise ApiError(400, "invalid_query", "expires_at and expires_in go with queue=true")
    return queue, expires_at


def body_queue(value: Any) -> tuple[bool, datetime | None]:
    """A body's "queue": true, false, null or {"expires_at": ISO 8601} / {"expires_in": s}."""
    if value is None or isinstance(value, bool):
        return bool(value), None
    if not isinstance(value, dict) or set(value) - {"expires_at", "expires_in"}:
        raise ApiError(
            422, "invalid_queue", 'queue is true or {"expires_at": ISO 8601} or {"expires_in": s}'
        )
    if value.get("expires_in") is not None:
        seconds = value["expires_in"]
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            raise ApiError(422, "invalid_queue", "queue.expires_in is a number of seconds")
        return True, _in(float(seconds), "queue.expires_in")
    return True, _body_time(value, "expires_at")


def _in(seconds: float, name: str) -> datetime:
    if not 0 < seconds <= 366 * 86400:
        raise ApiError(422, "invalid_queue", f"{name} is 1 s to a year")
    return datetime.now(UTC) + timedelta(seconds=seconds)


def _page(request: web.Request) -> tuple[int, int]:
    try:
        limit = int(request.query.get("limit", "100"))
        offset = int(request.query.get("offset", "0"))
    except ValueError:
        raise ApiError(400, "invalid_query", "limit and offset are integers") from None
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise ApiError(400, "invalid_query", f"limit is 1-{MAX_PAGE}, offset >= 0")
    return limit, offset


def _optional_bool(request: web.Request, name: str) -> bool | None:
    value = request.query.get(name)
    if value is None:
        return None
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise ApiError(400, "invalid_query", f"{name} is true or false")


def _parse_time(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(422, "invalid_value", f"{name} is not an ISO 8601 date-time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _optional_time(request: web.Request, name: str) -> datetime | None:
    value = request.query.get(name)
    return None if value is None else _parse_time(value, name)


def _body_time(body: dict[str, Any], name: str) -> datetime | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(422, "invalid_value", f"{name} is an ISO 8601 string or null")
    return _parse_time(value, name)


def _body_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, str) or len(value) > 36):
        raise ApiError(422, "invalid_value", f"{name} is a string of at most 36 characters")
    return value


def _choice(body: dict[str, Any], name: str, allowed: list[str], default: str | None) -> str:
    value = body.get(name, default)
    if value is None:
        raise ApiError(422, "invalid_value", f"{name} is required")
    if value not in allowed:
        raise ApiError(422, "invalid_value", f"{name} is one of {', '.join(allowed)}")
    return str(value)
