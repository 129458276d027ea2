"""The REST API under /api/v1/ (JSON), described by csms/openapi.py.

Requests need ``Authorization: Bearer <CSMS_API_TOKEN>`` (compared in constant
time); without a configured token the API answers only on loopback. Errors
are ``{"error": <kind>, "message": <text>, ...}``.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from aiohttp import web

from csms import rpc
from csms.domain import (
    REGISTRABLE_TOKEN_STATUSES,
    AuthorizationStatus,
    ConnectorStatus,
    IdToken,
    IdTokenType,
    MeterSample,
    Station,
    Transaction,
)
from csms.events.model import iso
from csms.openapi import OPENAPI
from csms.ports import Storage, TransactionFilter
from csms.server import StationNotConnectedError, StationServer
from csms.services import Services

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
    """Route handlers; each one reads, calls a service or the station server, answers."""

    def __init__(self, storage: Storage, services: Services, stations: StationServer) -> None:
        self._storage = storage
        self._services = services
        self._stations = stations

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"{PREFIX}/openapi.json", self.openapi),
            web.get(f"{PREFIX}/stations", self._wrap(self.list_stations)),
            web.get(f"{PREFIX}/stations/{{station_id}}", self._wrap(self.get_station)),
            web.post(
                f"{PREFIX}/stations/{{station_id}}/password", self._wrap(self.rotate_password)
            ),
            web.post(
                f"{PREFIX}/stations/{{station_id}}/ocpp/{{action}}", self._wrap(self.raw_call)
            ),
            web.get(f"{PREFIX}/transactions", self._wrap(self.list_transactions)),
            web.get(f"{PREFIX}/transactions/{{transaction_id}}", self._wrap(self.get_transaction)),
            web.get(f"{PREFIX}/id-tokens", self._wrap(self.list_id_tokens)),
            web.get(f"{PREFIX}/id-tokens/{{id_token}}", self._wrap(self.get_id_token)),
            web.put(f"{PREFIX}/id-tokens/{{id_token}}", self._wrap(self.put_id_token)),
        ]

    @staticmethod
    def _wrap(handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except ApiError as exc:
                return _json(exc.body, exc.status)

        return wrapped

    async def openapi(self, _: web.Request) -> web.Response:
        return _json(OPENAPI)

    # --- stations ---------------------------------------------------------

    async def list_stations(self, request: web.Request) -> web.Response:
        limit, offset = _page(request)
        connected = _optional_bool(request, "connected")
        version = request.query.get("ocpp_version")
        stations = [
            s
            for s in await self._storage.list_stations()
            if (connected is None or self._is_connected(s.id) == connected)
            and (version is None or self._version(s) == version)
        ]
        page = stations[offset : offset + limit]
        items = [await self._station_json(s) for s in page]
        return _json({"items": items, "total": len(stations), "limit": limit, "offset": offset})

    async def get_station(self, request: web.Request) -> web.Response:
        station = await self._station(request.match_info["station_id"])
        return _json(await self._station_json(station))

    async def rotate_password(self, request: web.Request) -> web.Response:
        station_id = request.match_info["station_id"]
        body = await _body(request)
        password = body.get("password")
        if not isinstance(password, str) or not 16 <= len(password) <= 40:
            raise ApiError(422, "invalid_body", "password must be a string of 16-40 characters")
        await self._station(station_id)
        await self._services.stations.rotate_password(station_id, password)
        try:
            status = await self._stations.change_password(station_id, password)
        except StationNotConnectedError:
            status = None
        except rpc.CallErrorReceived as exc:
            raise ApiError(
                502,
                "station_call_error",
                "the station refused the new password",
                code=exc.error.code,
                description=exc.error.description,
                details=exc.error.details,
            ) from None
        except rpc.CallTimeoutError:
            raise ApiError(504, "station_timeout", "the station did not answer in time") from None
        log.info("password_rotated", station_id=station_id, delivered=status is not None)
        if status is None:
            return _json({"status": "Pending"}, 202)
        return _json({"status": status})

    async def raw_call(self, request: web.Request) -> web.Response:
        station_id = request.match_info["station_id"]
        action = request.match_info["action"]
        await self._station(station_id)
        link = self._stations.find_link(station_id)
        if link is None:
            raise ApiError(409, "station_not_connected", f"station {station_id!r} is not connected")
        payload = await _body(request)
        try:
            link.adapter.validate_request(action, payload)
        except rpc.RpcError as exc:
            raise ApiError(
                422, "invalid_payload", exc.description, code=exc.code, details=exc.details
            ) from None
        try:
            result = await self._stations.call(station_id, action, payload)
        except StationNotConnectedError:
            raise ApiError(
                409, "station_not_connected", f"station {station_id!r} is not connected"
            ) from None
        except rpc.CallErrorReceived as exc:
            raise ApiError(
                502,
                "station_call_error",
                "the station answered with a CALLERROR",
                code=exc.error.code,
                description=exc.error.description,
                details=exc.error.details,
            ) from None
        except rpc.CallTimeoutError:
            raise ApiError(504, "station_timeout", "the station did not answer in time") from None
        try:
            link.adapter.validate_response(action, result)
        except rpc.RpcError as exc:
            raise ApiError(502, "invalid_station_answer", exc.description, answer=result) from None
        return _json(result)

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
        return _json({**_transaction_json(tx), "meter_samples": [_sample_json(s) for s in samples]})

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

    # --- helpers ----------------------------------------------------------

    async def _station(self, station_id: str) -> Station:
        station = await self._storage.find_station(station_id)
        if station is None:
            raise ApiError(404, "station_not_found", f"no station {station_id!r}")
        return station

    def _is_connected(self, station_id: str) -> bool:
        return self._stations.find_link(station_id) is not None

    def _version(self, station: Station) -> str | None:
        link = self._stations.find_link(station.id)
        return link.ocpp_version if link is not None else station.ocpp_version

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
        "started_at": iso(t.started_at),
        "ended_at": _time(t.ended_at),
        "stop_reason": t.stop_reason,
        "charging_state": t.charging_state,
        "seq_no": t.seq_no,
        "anomalies": list(t.anomalies),
    }


def _sample_json(s: MeterSample) -> dict[str, Any]:
    return {
        "timestamp": iso(s.timestamp),
        "measurand": s.measurand,
        "value": s.value,
        "unit": s.unit,
        "phase": s.phase,
        "context": s.context,
        "location": s.location,
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
