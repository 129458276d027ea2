"""The ``csms`` command: serve, migrate, the operator's registry commands, the event outbox."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from csms import log
from csms.domain import REGISTRABLE_TOKEN_STATUSES, AuthorizationStatus, IdToken, IdTokenType
from csms.errors import ConfigurationError, CsmsError
from csms.events.model import iso
from csms.ports import UNCHANGED, Storage
from csms.security import hash_password
from csms.settings import Settings, env_name, flag_name
from csms.storage import migrate, open_storage

EXIT_CONFIG = 2
EXIT_FAILURE = 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        settings = Settings.load(overrides={"database_url": args.database_url})
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
    log.configure(settings.log_level)
    runner: Callable[[], Coroutine[Any, Any, None]] = lambda: app.run(settings)  # noqa: E731
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up ([fast] extra)
    except ImportError:
        asyncio.run(runner())
    else:
        uvloop.run(runner())
    return 0


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
    if password is not None and not password:
        raise ConfigurationError("--password must not be empty")
    storage = await _with_storage(settings)
    try:
        station = await storage.register_station(
            args.station_id,
            password_hash=hash_password(password) if password is not None else UNCHANGED,
            security_profile=args.security_profile or UNCHANGED,
            at=datetime.now(UTC),
        )
    finally:
        await storage.close()
    auth = "password" if station.password_hash else "no password"
    print(f"station {station.id} registered (security profile {station.security_profile}, {auth})")
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


async def _tokens_add(settings: Settings, args: argparse.Namespace) -> int:
    storage = await _with_storage(settings)
    try:
        token = await storage.put_id_token(
            IdToken(
                id_token=args.token,
                status=AuthorizationStatus(args.status),
                type=IdTokenType(args.type),
                expires_at=args.expires,
                group_id=args.group_id,
                updated_at=datetime.now(UTC),
            )
        )
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


def _expiry(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _station_id(text: str) -> str:
    if not 1 <= len(text) <= 48:
        raise argparse.ArgumentTypeError("a station id has 1 to 48 characters")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="csms", description="OCPP 1.6J / 2.0.1 Central System")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the CSMS in the foreground")
    defaults = Settings()
    for f in fields(Settings):
        kind: Any = {"int": int, "float": float}.get(str(f.type), str)
        serve.add_argument(
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
    db_command(stations, "list", _stations_list, "list registered stations")

    tokens = commands.add_parser("tokens", help="the id token registry").add_subparsers(
        dest="tokens_command", required=True, metavar="ACTION"
    )
    add = db_command(tokens, "add", _tokens_add, "register or update an id token")
    add.add_argument("token", metavar="TOKEN")
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
    return parser


if __name__ == "__main__":
    sys.exit(main())
