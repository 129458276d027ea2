"""The REST API under /api/v1/ (JSON): the handlers of its route table
(csms/edge/routes.py, from which the OpenAPI document is generated).

Requests need ``Authorization: Bearer <CSMS_API_TOKEN>`` (compared in constant
time); without a configured token the API answers only on loopback. Bodies,
query strings and answers are the typed models of csms.services.operator;
errors are ``{"error": <kind>, "message": <text>, ...}``.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
import structlog
from aiohttp import web
from pydantic import BaseModel

from csms.core.domain import Command, Station
from csms.core.errors import (
    CallErrorReceived,
    CallTimeoutError,
    ClusterUnavailableError,
    StationDisconnectedError,
    StationNotConnectedError,
    StorageError,
)
from csms.core.ports import (
    UNCHANGED,
    CommandFilter,
    Presence,
    StationLink,
    Storage,
    TransactionFilter,
)
from csms.core.security import hash_password
from csms.edge import docs_page
from csms.edge.routes import OPENAPI, PREFIX, ROUTES
from csms.services import Services
from csms.services.commands import NEUTRAL_COMMANDS
from csms.services.dispatcher import CommandDispatcher, Submission
from csms.services.operator import requests as rq
from csms.services.operator import resources as rs
from csms.services.operator.errors import OperatorError
from csms.services.operator.rules import (
    BODY_STATUS,
    ID_TOKEN,
    QUERY_KIND,
    QUERY_STATUS,
    STATION_ID,
    check,
    read,
)
from csms.services.passwords import PasswordDelivery

log = structlog.get_logger("csms.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)


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

    def routes(self) -> list[web.AbstractRouteDef]:
        """The route table's operations, and the API page's assets."""
        defs: list[web.AbstractRouteDef] = [
            web.route(r.method.upper(), r.path, self._wrap(getattr(self, r.handler)))
            for r in ROUTES
        ]
        defs.append(docs_page.assets())
        return defs

    @staticmethod
    def _wrap(handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except OperatorError as exc:  # CommandRefused included
                return _json(exc.body, exc.status)
            except StorageError as exc:
                log.error("api_storage_failed", path=request.path, error=str(exc))
                message = "the CSMS cannot reach its database; retry later"
                return _json({"error": "storage_unavailable", "message": message}, 503)
            except ClusterUnavailableError:
                message = (
                    "the station is connected to another CSMS process and the broker "
                    "linking the processes is unreachable; retry later"
                )
                return _json({"error": "cluster_unavailable", "message": message}, 503)

        return wrapped

    async def get_open_api(self, _: web.Request) -> web.Response:
        return _json(OPENAPI)

    async def get_docs(self, _: web.Request) -> web.Response:
        return docs_page.page(f"{PREFIX}/openapi.json")

    # --- stations ---------------------------------------------------------

    async def list_stations(self, request: web.Request) -> web.Response:
        q = _query(request, rq.StationQuery)
        # Cluster-wide: which process holds which station, in one query.
        held = await self._services.connections.presences()
        stations = [
            s
            for s in await self._storage.list_stations()
            if s.id.startswith(q.id_prefix)
            and (q.connected is None or (s.id in held) == q.connected)
            and (q.ocpp_version is None or _version(s, held.get(s.id)) == q.ocpp_version)
            and (q.vendor is None or s.vendor == q.vendor)
            and (q.model is None or s.model == q.model)
        ]
        page = stations[q.offset : q.offset + q.limit]
        items = [await self._station_resource(s, held.get(s.id)) for s in page]
        return _answer(
            rs.StationPage(items=items, total=len(stations), limit=q.limit, offset=q.offset)
        )

    async def get_station(self, request: web.Request) -> web.Response:
        station = await self._station(request.match_info["station_id"])
        return _answer(await self._station_detail(station))

    async def create_station(self, request: web.Request) -> web.Response:
        body = _read_body(await _body(request), rq.StationCreation)
        if await self._storage.find_station(body.id) is not None:
            raise OperatorError(409, "station_exists", f"station {body.id!r} is already registered")
        station = await self._register(body.id, body)
        log.info("station_registered", station_id=body.id, via="api")
        return _answer(await self._station_detail(station), 201)

    async def put_station(self, request: web.Request) -> web.Response:
        station_id = check(
            STATION_ID,
            request.match_info["station_id"],
            name="station_id",
            status=BODY_STATUS,
            kind="invalid_value",
        )
        body = _read_body(await _body(request), rq.StationRegistration)
        existed = await self._storage.find_station(station_id) is not None
        station = await self._register(station_id, body)
        log.info("station_registered", station_id=station_id, via="api", created=not existed)
        return _answer(await self._station_detail(station), 200 if existed else 201)

    async def _register(self, station_id: str, body: rq.StationRegistration) -> Station:
        given = body.model_fields_set
        password_hash: Any = UNCHANGED
        if "password" in given:
            password_hash = None
            if body.password is not None:  # scrypt takes a while: off the event loop
                loop = asyncio.get_running_loop()
                password_hash = await loop.run_in_executor(None, hash_password, body.password)
        profile: Any = body.security_profile if "security_profile" in given else UNCHANGED
        station = await self._storage.register_station(
            station_id, password_hash=password_hash, security_profile=profile, at=datetime.now(UTC)
        )
        if "boot_status" in given and body.boot_status != station.boot_status:
            await self._storage.set_boot_status(station_id, body.boot_status)
            station = replace(station, boot_status=body.boot_status)
        return station

    async def delete_station(self, request: web.Request) -> web.Response:
        station_id = request.match_info["station_id"]
        await self._station(station_id)
        # Closed (on whichever process holds it), deleted, and closed again if
        # it came back in between: its writes never create the row again.
        closed = await self._stations.disconnect(station_id, "station deregistered")
        await self._commands.forget_station(station_id)
        if not await self._storage.delete_station(station_id):
            raise OperatorError(404, "station_not_found", f"no station {station_id!r}")
        closed = await self._stations.disconnect(station_id, "station deregistered") or closed
        log.info("station_deleted", station_id=station_id, was_connected=closed)
        return web.Response(status=204)

    async def rotate_password(self, request: web.Request) -> web.Response:
        station_id = request.match_info["station_id"]
        password = _read_body(await _body(request), rq.PasswordRotation).password
        await self._station(station_id)
        await self._services.stations.rotate_password(station_id, password)
        try:
            status = await self._passwords.change(station_id, password)
        except (StationNotConnectedError, StationDisconnectedError, ClusterUnavailableError):
            status = None  # it waits (stored) for the station's next connection
        except CallErrorReceived as exc:
            raise OperatorError(
                502,
                "station_call_error",
                "the station refused the new password",
                code=exc.code,
                description=exc.description,
                details=exc.details,
            ) from None
        except CallTimeoutError:
            raise OperatorError(
                504, "station_timeout", "the station did not answer in time"
            ) from None
        log.info("password_rotated", station_id=station_id, delivered=status is not None)
        if status is None:
            return _answer(rs.PasswordStatus(status="Pending"), 202)
        return _answer(rs.PasswordStatus(status=status))

    async def raw_call(self, request: web.Request) -> web.Response:
        """The OCPP payload is the body; queueing is asked in the query string."""
        payload = await _body(request)
        queue = _query(request, rq.QueueQuery)
        outcome = await self._commands.submit(
            Submission(
                request.match_info["station_id"],
                payload,
                action=request.match_info["action"],
                queue=queue.queue,
                expires_at=queue.deadline(self._services.clock()),
            )
        )
        if outcome.queued:
            return _command_answer(outcome.command, 202)
        response = _json(outcome.response)
        response.headers["Location"] = f"{PREFIX}/commands/{outcome.command.id}"
        return response

    async def neutral_command(self, request: web.Request) -> web.Response:
        """The neutral fields are the body, with an optional "queue" (or the query string)."""
        name = request.match_info["command"]
        if name not in NEUTRAL_COMMANDS:
            raise OperatorError(
                404, "unknown_command", f"no command {name!r}: one of {', '.join(NEUTRAL_COMMANDS)}"
            )
        body = await _body(request)
        now = self._services.clock()
        query = _query(request, rq.QueueQuery)
        queue, expires_at = query.queue, query.deadline(now)
        if "queue" in body:
            spec = check(
                rq.QUEUE,
                body.pop("queue"),
                name="queue",
                status=BODY_STATUS,
                kind=rq.QueueWindow.kind,
            )
            queue, expires_at = rq.queue_of(spec, now)
        outcome = await self._commands.submit(
            Submission(
                request.match_info["station_id"],
                body,
                name=name,
                queue=queue,
                expires_at=expires_at,
            )
        )
        return _command_answer(outcome.command, 202 if outcome.queued else 200)

    async def get_command(self, request: web.Request) -> web.Response:
        command_id = request.match_info["command_id"]
        command = await self._storage.find_command(command_id)
        if command is None:
            raise OperatorError(404, "not_found", f"no command {command_id!r}")
        return _answer(rs.CommandResource.of(command))

    async def list_station_commands(self, request: web.Request) -> web.Response:
        station_id = request.match_info["station_id"]
        q = _query(request, rq.CommandQuery)
        await self._station(station_id)
        where = CommandFilter(
            station_id=station_id, status=q.status, limit=q.limit, offset=q.offset
        )
        items = [rs.CommandResource.of(c) for c in await self._storage.list_commands(where)]
        return _answer(rs.CommandPage(items=items, limit=q.limit, offset=q.offset))

    # --- transactions -----------------------------------------------------

    async def list_transactions(self, request: web.Request) -> web.Response:
        q = _query(request, rq.TransactionQuery)
        where = TransactionFilter(
            station_id=q.station_id,
            id_token=q.id_token,
            active=q.active,
            started_after=q.started_after,
            started_before=q.started_before,
            limit=q.limit,
            offset=q.offset,
        )
        found = await self._storage.list_transactions(where)
        items = [rs.TransactionResource.of(t) for t in found]
        return _answer(rs.TransactionPage(items=items, limit=q.limit, offset=q.offset))

    async def get_transaction(self, request: web.Request) -> web.Response:
        transaction_id = request.match_info["transaction_id"]
        q = _query(request, rq.TransactionLookup)
        where = TransactionFilter(station_id=q.station_id, transaction_id=transaction_id, limit=2)
        found = await self._storage.list_transactions(where)
        if not found:
            raise OperatorError(404, "not_found", f"no transaction {transaction_id!r}")
        if len(found) > 1:
            raise OperatorError(
                409,
                "ambiguous",
                f"several stations have a transaction {transaction_id!r}; add ?station_id=",
            )
        tx = found[0]
        samples = await self._storage.list_meter_samples(tx.station_id, tx.transaction_id)
        return _answer(rs.TransactionDetail.with_samples(tx, samples))

    # --- id tokens --------------------------------------------------------

    async def list_id_tokens(self, request: web.Request) -> web.Response:
        tokens = await self._storage.list_id_tokens()
        return _answer(rs.IdTokenList(items=[rs.IdTokenResource.of(t) for t in tokens]))

    async def get_id_token(self, request: web.Request) -> web.Response:
        token = await self._storage.find_id_token(request.match_info["id_token"])
        if token is None:
            raise OperatorError(404, "not_found", "no such id token")
        return _answer(rs.IdTokenResource.of(token))

    async def put_id_token(self, request: web.Request) -> web.Response:
        id_token = check(
            ID_TOKEN,
            request.match_info["id_token"],
            name="id_token",
            status=BODY_STATUS,
            kind="invalid_id_token",
        )
        body = _read_body(await _body(request), rq.IdTokenRegistration)
        stored = await self._storage.put_id_token(body.entry(id_token, datetime.now(UTC)))
        return _answer(rs.IdTokenResource.of(stored))

    async def delete_id_token(self, request: web.Request) -> web.Response:
        if not await self._storage.delete_id_token(request.match_info["id_token"]):
            raise OperatorError(404, "not_found", "no such id token")
        return web.Response(status=204)

    # --- helpers ----------------------------------------------------------

    async def _station(self, station_id: str) -> Station:
        station = await self._storage.find_station(station_id)
        if station is None:
            raise OperatorError(404, "station_not_found", f"no station {station_id!r}")
        return station

    async def _station_fields(self, s: Station, held: Presence | None) -> dict[str, Any]:
        return rs.StationResource.fields_of(
            s,
            ocpp_version=_version(s, held),
            connected=held is not None,
            node_id=held.node_id if held is not None else None,
            connectors=await self._storage.list_connectors(s.id),
        )

    async def _station_resource(self, s: Station, held: Presence | None) -> rs.StationResource:
        return rs.StationResource.model_validate(await self._station_fields(s, held))

    async def _station_detail(self, s: Station) -> rs.StationDetail:
        """A station with what commands and reports told about it."""
        held = await self._stations.locate(s.id)
        return rs.StationDetail.model_validate(
            {
                **await self._station_fields(s, held),
                "local_list_version": await self._storage.find_local_list_version(s.id),
                "configuration": [
                    rs.ConfigurationEntry.read(k)
                    for k in await self._storage.list_configuration(s.id)
                ],
                "device_model": [
                    rs.DeviceModelVariable.of(e)
                    for e in await self._storage.list_device_model(s.id)
                ],
                "reservations": [
                    rs.ReservationResource.read(r)
                    for r in await self._storage.list_reservations(s.id)
                ],
                "charging_profiles": [
                    rs.ChargingProfileResource.read(p)
                    for p in await self._storage.list_charging_profiles(s.id)
                ],
            }
        )


def _version(station: Station, held: Presence | None) -> str | None:
    """The version of its open connection, else the last one it spoke."""
    return held.ocpp_version if held is not None else station.ocpp_version


def _answer(resource: rs.Resource, status: int = 200) -> web.Response:
    return web.Response(
        body=resource.model_dump_json().encode(), status=status, content_type="application/json"
    )


def _command_answer(command: Command, status: int) -> web.Response:
    response = _answer(rs.CommandResource.of(command), status)
    response.headers["Location"] = f"{PREFIX}/commands/{command.id}"
    return response


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise OperatorError(400, "invalid_json", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise OperatorError(400, "invalid_json", "the request body must be a JSON object")
    return body


def _read_body(body: dict[str, Any], model: type[M]) -> M:
    kind = str(getattr(model, "kind", "invalid_value"))
    return read(model, body, status=BODY_STATUS, kind=kind)


def _query(request: web.Request, model: type[M]) -> M:
    return read(model, dict(request.query), status=QUERY_STATUS, kind=QUERY_KIND)
