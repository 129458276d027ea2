"""The ``csms`` command: serve, migrate, the operator's registry commands, the event
outbox, and ``call`` (a CALL to a station through the running server's REST API)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import TypeAdapter

from csms.adapters.storage import migrate, open_storage
from csms.core.domain import REGISTRABLE_TOKEN_STATUSES, AuthorizationStatus, IdTokenType
from csms.core.errors import ConfigurationError, CsmsError
from csms.core.events import iso
from csms.core.ports import UNCHANGED, CommandFilter, Storage, TransactionFilter
from csms.core.security import hash_password
from csms.core.settings import Settings, env_name, flag_name
from csms.services.operator.errors import OperatorError
from csms.services.operator.requests import EXPIRES_IN, IdTokenRegistration
from csms.services.operator.rules import (
    BODY_STATUS,
    ID_TOKEN,
    PASSWORD,
    STATION_ID,
    TIME,
    check,
    read,
)
from csms.telemetry import log

EXIT_CONFIG = 2
EXIT_FAILURE = 1
CALL_TIMEOUT_MARGIN = 10.0  # seconds beyond the server's CSMS_CALL_TIMEOUT
T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command in ("serve", "relay"):
            return _serve(args)
        settings = Settings.load(overrides={"database_url": getattr(args, "database_url", None)})
        code: int = asyncio.run(args.run(settings, args))
    except ConfigurationError as exc:
        print(f"csms: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except CsmsError as exc:
        print(f"csms: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    return code


def _serve(args: argparse.Namespace) -> int:
    from csms import app  # noqa: PLC0415 - only `serve` needs the listeners

    overrides = {f.name: getattr(args, f.name, None) for f in fields(Settings)}
    settings = Settings.load(overrides=overrides)
    log.configure(settings.log_level, mask_tokens=settings.log_mask_tokens)
    main = app.run_relay if args.command == "relay" else app.run
    run_event_loop(lambda: main(settings))
    return 0


def run_event_loop(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``main()`` to completion on uvloop where it is installed, else on asyncio's loop.

    The loop is chosen before ``main`` starts: running it inside the
    ``except ImportError`` would chain "No module named 'uvloop'" onto every
    exception it raises, and so onto every traceback the server logs.
    """
    run: Callable[[Coroutine[Any, Any, None]], None]
    try:
        import uvloop  # noqa: PLC0415 - a dependency wherever it installs (not on Windows)
    except ImportError:
        run = asyncio.run
    else:
        run = uvloop.run
    run(main())


# --- registry commands -------------------------------------------------------


async def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    applied = await migrate(settings.database_url)
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


async def _with_storage(settings: Settings) -> Storage:
    return await open_storage(settings.database_url, migrate=True)


async def _stations_add(settings: Settings, args: argparse.Namespace) -> int:
    password: str | None = args.password
    if password == "-":  # noqa: S105 - "-" means "read it from stdin"
        password = sys.stdin.readline().rstrip("\n")
    if password is not None:
        password = _checked(PASSWORD, password, "password")
    storage = await _with_storage(settings)
    try:
        station = await storage.register_station(
            args.station_id,
            password_hash=hash_password(password) if password is not None else UNCHANGED,
            security_profile=args.security_profile or UNCHANGED,
            at=datetime.now(UTC),
        )
        if args.boot_status is not None:
            await storage.set_boot_status(station.id, args.boot_status)
    finally:
        await storage.close()
    auth = "password" if station.password_hash else "no password"
    boot = args.boot_status or station.boot_status
    print(
        f"station {station.id} registered (security profile {station.security_profile},"
        f" {auth}, boot {boot})"
    )
    return 0


async def _stations_list(settings: Settings, args: argparse.Namespace) -> int:
    storage = await _with_storage(settings)
    try:
        stations = await storage.list_stations()
    finally:
        await storage.close()
    _table(
        ["id", "profile", "password", "ocpp", "vendor", "model", "firmware", "last_seen"],
        [
            [
                s.id,
                str(s.security_profile),
                "yes" if s.password_hash else "no",
                s.ocpp_version or "-",
                s.vendor or "-",
                s.model or "-",
                s.firmware_version or "-",
                iso(s.last_seen_at) if s.last_seen_at else "-",
            ]
            for s in stations
        ],
    )
    return 0


async def _stations_show(settings: Settings, args: argparse.Namespace) -> int:
    storage = await _with_storage(settings)
    try:
        station = await storage.find_station(args.station_id)
        if station is None:
            print(f"csms: no station {args.station_id!r}", file=sys.stderr)
            return EXIT_FAILURE
        connectors = await storage.list_connectors(station.id)
        configuration = await storage.list_configuration(station.id)
        device_model = await storage.list_device_model(station.id)
        local_list = await storage.find_local_list_version(station.id)
        reservations = await storage.list_reservations(station.id)
        profiles = await storage.list_charging_profiles(station.id)
        active = await storage.list_transactions(
            TransactionFilter(station_id=station.id, active=True, limit=20)
        )
        commands = await storage.list_commands(CommandFilter(station_id=station.id, limit=10))
    finally:
        await storage.close()
    fields = [
        ("id", station.id),
        ("security profile", str(station.security_profile)),
        ("password", "yes" if station.password_hash else "no"),
        ("ocpp", station.ocpp_version or "-"),
        ("vendor", station.vendor or "-"),
        ("model", station.model or "-"),
        ("serial", station.serial_number or "-"),
        ("firmware", station.firmware_version or "-"),
        ("registered", _when(station.registered_at)),
        ("last boot", _when(station.last_boot_at)),
        ("last seen", _when(station.last_seen_at)),
        ("local list", "-" if local_list is None else str(local_list)),
    ]
    for name, value in fields:
        print(f"{name:<17} {value}")
    sections: list[tuple[str, list[str], list[list[str]]]] = [
        (
            "connectors",
            ["evse", "connector", "status", "error", "updated"],
            [
                [
                    str(c.evse_id),
                    str(c.connector_id),
                    c.status,
                    c.error_code or "-",
                    iso(c.updated_at),
                ]
                for c in connectors
            ],
        ),
        (
            "active transactions",
            ["transaction", "evse", "id_token", "meter_start_wh", "started"],
            [
                [
                    t.transaction_id,
                    str(t.evse_id),
                    t.id_token or "-",
                    _number(t.meter_start_wh),
                    iso(t.started_at),
                ]
                for t in active
            ],
        ),
        (
            "configuration",
            ["key", "value", "readonly"],
            [
                [k.key, k.value or "-", "-" if k.readonly is None else str(k.readonly).lower()]
                for k in configuration
            ],
        ),
        (
            "device model",
            ["component", "evse", "variable", "type", "value"],
            [
                [
                    e.component + (f"[{e.component_instance}]" if e.component_instance else ""),
                    "-" if e.evse_id is None else str(e.evse_id),
                    e.variable + (f"[{e.variable_instance}]" if e.variable_instance else ""),
                    e.attribute_type,
                    "********" if e.variable == "BasicAuthPassword" else (e.value or "-"),
                ]
                for e in device_model
            ],
        ),
        (
            "reservations",
            ["id", "evse", "id_token", "expires", "status"],
            [
                [str(r.reservation_id), str(r.evse_id), r.id_token, iso(r.expires_at), r.status]
                for r in reservations
            ],
        ),
        (
            "charging profiles",
            ["id", "evse", "stack", "purpose"],
            [[str(p.profile_id), str(p.evse_id), str(p.stack_level), p.purpose] for p in profiles],
        ),
        (
            "recent commands",
            ["created", "command", "status", "id"],
            [
                [iso(c.created_at), c.name or c.action or "-", c.status.value, c.id]
                for c in commands
            ],
        ),
    ]
    for title, header, rows in sections:
        if rows:
            print(f"\n{title}:")
            _table(header, rows)
    return 0


def _when(moment: datetime | None) -> str:
    return iso(moment) if moment is not None else "-"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


# --- calls through the running server ------------------------------------------


async def _call(settings: Settings, args: argparse.Namespace) -> int:
    """POST /api/v1/stations/{id}/ocpp/{action}; print the answer (exit 1 unless 2xx)."""
    text = sys.stdin.read() if args.payload == "-" else args.payload
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        print(f"csms: the payload is not JSON: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if not isinstance(payload, dict):
        print("csms: the payload must be a JSON object", file=sys.stderr)
        return EXIT_CONFIG
    base = (args.url or f"http://127.0.0.1:{settings.http_port}").rstrip("/")
    station = urllib.parse.quote(args.station_id, safe="")
    action = urllib.parse.quote(args.action, safe="")
    query = ""
    if args.queue:
        query = "?" + urllib.parse.urlencode(
            {"queue": "true", **({"expires_in": args.expires_in} if args.expires_in else {})}
        )
    url = f"{base}/api/v1/stations/{station}/ocpp/{action}{query}"
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        print(f"csms: --url must be http(s)://...: {base!r}", file=sys.stderr)
        return EXIT_CONFIG
    headers = {"Content-Type": "application/json"}
    if settings.api_token:
        headers["Authorization"] = f"Bearer {settings.api_token}"
    request = urllib.request.Request(  # noqa: S310 - the operator's own URL, http(s) checked
        url, data=json.dumps(payload).encode(), headers=headers, method="POST"
    )
    timeout = settings.call_timeout + CALL_TIMEOUT_MARGIN
    status, body = await asyncio.to_thread(_post, request, timeout)
    if status is None:
        print(f"csms: cannot reach the CSMS at {base}: {body}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        shown = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except json.JSONDecodeError:
        shown = body
    if 200 <= status < 300:
        print(shown)
        return 0
    print(f"csms: HTTP {status}", file=sys.stderr)
    print(shown, file=sys.stderr)
    return EXIT_FAILURE


def _post(request: urllib.request.Request, timeout: float) -> tuple[int | None, str]:
    """(HTTP status, body); (None, reason) when the server cannot be reached."""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, str(reason)


async def _tokens_add(settings: Settings, args: argparse.Namespace) -> int:
    fields = {"status": args.status, "type": args.type, "expires_at": args.expires}
    try:  # the REST API's PUT /api/v1/id-tokens/{id_token} reads the same model
        entry = read(
            IdTokenRegistration,
            {**fields, "group_id": args.group_id},
            status=BODY_STATUS,
            kind=IdTokenRegistration.kind,
        )
    except OperatorError as exc:
        raise ConfigurationError(str(exc)) from None
    storage = await _with_storage(settings)
    try:
        token = await storage.put_id_token(entry.entry(args.token, datetime.now(UTC)))
    finally:
        await storage.close()
    expiry = f", expires {iso(token.expires_at)}" if token.expires_at else ""
    print(f"token {token.id_token} stored ({token.status.value}, {token.type.value}{expiry})")
    return 0


async def _tokens_list(settings: Settings, args: argparse.Namespace) -> int:
    storage = await _with_storage(settings)
    try:
        tokens = await storage.list_id_tokens()
    finally:
        await storage.close()
    _table(
        ["token", "status", "type", "expires", "group_id"],
        [
            [
                t.id_token,
                t.status.value,
                t.type.value,
                iso(t.expires_at) if t.expires_at else "-",
                t.group_id or "-",
            ]
            for t in tokens
        ],
    )
    return 0


# --- the event outbox --------------------------------------------------------


async def _events_list(settings: Settings, args: argparse.Namespace) -> int:
    storage = await _with_storage(settings)
    try:
        rows = await storage.outbox_list(args.limit, pending_only=args.pending)
    finally:
        await storage.close()
    _table(
        ["seq", "type", "station", "recorded_at", "delivered"],
        [
            [
                str(row.seq),
                row.event.type,
                row.event.station_id,
                iso(row.event.recorded_at),
                iso(row.delivered_at) if row.delivered_at else "pending",
            ]
            for row in rows
        ],
    )
    return 0


async def _events_stats(settings: Settings, args: argparse.Namespace) -> int:
    storage = await _with_storage(settings)
    try:
        stats = await storage.outbox_stats()
    finally:
        await storage.close()
    oldest = "-"
    if stats.oldest_pending_at is not None:
        age = (datetime.now(UTC) - stats.oldest_pending_at).total_seconds()
        oldest = f"{iso(stats.oldest_pending_at)} ({max(age, 0.0):.0f} s ago)"
    print(f"pending         {stats.pending}")
    print(f"delivered       {stats.delivered}")
    print(f"oldest pending  {oldest}")
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


def _checked(adapter: TypeAdapter[T], value: Any, name: str) -> T:
    """``value`` under the operator edge's rule (the REST API's), or a configuration error."""
    try:
        return check(adapter, value, name=name, status=BODY_STATUS, kind="invalid_value")
    except OperatorError as exc:
        raise ConfigurationError(str(exc)) from None


def _argument(adapter: TypeAdapter[T], name: str) -> Callable[[str], T]:
    """An argparse type that applies the operator edge's rule for ``name``."""

    def parse(text: str) -> T:
        try:
            return check(adapter, text, name=name, status=BODY_STATUS, kind="invalid_value")
        except OperatorError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _expires_in(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    try:
        return check(
            EXPIRES_IN, seconds, name="expires_in", status=BODY_STATUS, kind="invalid_queue"
        )
    except OperatorError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_expiry = _argument(TIME, "expires")
_station_id = _argument(STATION_ID, "station_id")
_id_token = _argument(ID_TOKEN, "token")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="csms", description="OCPP 1.6J / 2.0.1 Central System")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the CSMS in the foreground")
    relay = commands.add_parser(
        "relay",
        help="only publish the event outbox to the broker (for CSMS_RELAY=external)",
        description="Publish the outbox to CSMS_AMQP_URL until SIGTERM; health and metrics on "
        "CSMS_HTTP_PORT. Pair with `csms serve` under CSMS_RELAY=external.",
    )
    defaults = Settings()
    for command in (serve, relay):
        for f in fields(Settings):
            kind: Any = {"int": int, "float": float}.get(str(f.type), str)
            command.add_argument(
                flag_name(f.name),
                dest=f.name,
                type=kind,
                default=None,
                metavar=f.name.upper(),
                help=f"overrides {env_name(f.name)} (default: {getattr(defaults, f.name)!r})",
            )

    def db_command(sub: Any, name: str, run: Any, help_text: str) -> argparse.ArgumentParser:
        command: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
        command.add_argument("--database-url", default=None, help="overrides CSMS_DATABASE_URL")
        command.set_defaults(run=run)
        return command

    db_command(commands, "migrate", _migrate, "apply pending database migrations")

    stations = commands.add_parser("stations", help="the station registry").add_subparsers(
        dest="stations_command", required=True, metavar="ACTION"
    )
    add = db_command(stations, "add", _stations_add, "register or update a station")
    add.add_argument("station_id", type=_station_id, metavar="ID")
    add.add_argument("--password", help="Basic-auth password ('-' reads it from stdin)")
    add.add_argument("--security-profile", type=int, choices=(1, 2, 3))
    add.add_argument(
        "--boot-status",
        choices=("Accepted", "Pending", "Rejected"),
        help="what its BootNotification is answered (default: Accepted)",
    )
    db_command(stations, "list", _stations_list, "list registered stations")
    show = db_command(stations, "show", _stations_show, "what the database knows of a station")
    show.add_argument("station_id", type=_station_id, metavar="ID")

    tokens = commands.add_parser("tokens", help="the id token registry").add_subparsers(
        dest="tokens_command", required=True, metavar="ACTION"
    )
    add = db_command(tokens, "add", _tokens_add, "register or update an id token")
    add.add_argument("token", type=_id_token, metavar="TOKEN")
    add.add_argument(
        "--status",
        default=AuthorizationStatus.ACCEPTED.value,
        choices=[s.value for s in REGISTRABLE_TOKEN_STATUSES],
    )
    add.add_argument("--expires", type=_expiry, help="ISO 8601 expiry")
    add.add_argument("--group-id")
    add.add_argument(
        "--type", default=IdTokenType.ISO14443.value, choices=[t.value for t in IdTokenType]
    )
    db_command(tokens, "list", _tokens_list, "list registered id tokens")

    events = commands.add_parser("events", help="the event outbox").add_subparsers(
        dest="events_command", required=True, metavar="ACTION"
    )
    listing = db_command(events, "list", _events_list, "list the newest outbox events")
    listing.add_argument("--pending", action="store_true", help="only events not yet published")
    listing.add_argument("--limit", type=_positive, default=50, help="at most N rows (50)")
    db_command(events, "stats", _events_stats, "count pending and delivered events")

    call = commands.add_parser(
        "call",
        help="send an OCPP CALL to a station through the running server's REST API",
        description="POSTs to /api/v1/stations/STATION/ocpp/ACTION and prints the station's "
        "answer. The bearer token is CSMS_API_TOKEN.",
    )
    call.add_argument("station_id", type=_station_id, metavar="STATION")
    call.add_argument("action", metavar="ACTION", help="the OCPP action, e.g. Reset")
    call.add_argument("payload", metavar="JSON", help="the OCPP payload ('-' reads stdin)")
    call.add_argument(
        "--url", help="the server's operations HTTP (default: http://127.0.0.1:$CSMS_HTTP_PORT)"
    )
    call.add_argument("--queue", action="store_true", help="queue it if the station is offline")
    call.add_argument(
        "--expires-in", type=_expires_in, help="with --queue: seconds it may wait (<= 30 days)"
    )
    call.set_defaults(run=_call)
    return parser


if __name__ == "__main__":
    sys.exit(main())
