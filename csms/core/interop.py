"""Real-world firmware tolerances, switched on per vendor/model as data.

Strict is the default. An operator lists, in a TOML or JSON file named by
``CSMS_INTEROP_PROFILES``, which tolerances apply to everyone (``tolerances``)
and which to stations whose BootNotification matches a profile
(``[[profiles]]`` with shell-style, case-insensitive ``vendor``, ``model``
and ``firmware`` patterns; every matching profile adds its tolerances)::

    tolerances = ["station_id_case"]            # everyone

    [[profiles]]
    name = "ACME AC22 before 2.4"               # shows in the logs
    vendor = "ACME*"
    model = "AC22*"
    firmware = "2.[0-3].*"
    tolerances = ["timestamp_without_timezone", "enum_spelling"]

Which profile a station gets is decided by the vendor/model of its
BootNotification; before its first one in a connection (the handshake, a
message sent before booting) by what it sent last time, as stored.
Tolerances that act before the station is identified at all
(``HANDSHAKE_TOLERANCES`` but ``basic_auth_user``) can only be global.
Each use is logged (``tolerance_applied``) and counted
(``csms_tolerances_applied_total{tolerance}``). docs/interoperability.md
says what each one does and why it exists.
"""

from __future__ import annotations

import enum
import fnmatch
import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from csms.core.errors import ConfigurationError
from csms.telemetry import metrics

log = structlog.get_logger("csms.interop")


class Tolerance(enum.StrEnum):
    # Handshake: the station is not identified yet (global only)...
    MISSING_SUBPROTOCOL = "missing_subprotocol"
    MISSING_CONNECTION_UPGRADE = "missing_connection_upgrade"
    STATION_ID_CASE = "station_id_case"
    # ...or identified by its URL (global, or by its stored vendor/model).
    BASIC_AUTH_USER = "basic_auth_user"
    # Messages: fixed before schema validation.
    TIMESTAMP_WITHOUT_TIMEZONE = "timestamp_without_timezone"
    TIMESTAMP_HOUR_OFFSET = "timestamp_hour_offset"
    TIMESTAMP_CLOCK_NOT_SET = "timestamp_clock_not_set"
    ENUM_SPELLING = "enum_spelling"
    DATA_TRANSFER_OBJECT_DATA = "data_transfer_object_data"
    BOOT_IDENTITY_TOO_LONG = "boot_identity_too_long"
    # Frames: OCPP-J is text frames; some firmware sends its JSON in binary ones.
    BINARY_FRAMES = "binary_frames"


GLOBAL_ONLY = frozenset(
    {
        Tolerance.MISSING_SUBPROTOCOL,
        Tolerance.MISSING_CONNECTION_UPGRADE,
        Tolerance.STATION_ID_CASE,
    }
)
NONE: frozenset[Tolerance] = frozenset()


@dataclass(frozen=True, slots=True)
class Profile:
    """Tolerances for the stations whose boot data match the patterns."""

    name: str
    tolerances: frozenset[Tolerance]
    vendor: str = "*"
    model: str = "*"
    firmware: str = "*"

    def matches(self, vendor: str | None, model: str | None, firmware: str | None) -> bool:
        return all(
            fnmatch.fnmatchcase((value or "").casefold(), pattern.casefold())
            for value, pattern in (
                (vendor, self.vendor),
                (model, self.model),
                (firmware, self.firmware),
            )
        )


@dataclass(frozen=True, slots=True)
class InteropProfiles:
    """The operator's tolerance table. ``InteropProfiles()`` is strict."""

    tolerances: frozenset[Tolerance] = NONE
    profiles: tuple[Profile, ...] = ()
    _cache: dict[tuple[str | None, ...], frozenset[Tolerance]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def is_global(self, tolerance: Tolerance) -> bool:
        return tolerance in self.tolerances

    def for_station(
        self, vendor: str | None, model: str | None, firmware: str | None
    ) -> frozenset[Tolerance]:
        """The global tolerances plus those of every profile the station matches."""
        key = (vendor, model, firmware)
        found = self._cache.get(key)
        if found is None:
            found = self.tolerances.union(
                *(p.tolerances for p in self.profiles if p.matches(vendor, model, firmware))
            )
            if len(self._cache) > 10_000:  # vendors and models are few; a liar is not
                self._cache.clear()
            self._cache[key] = found
        return found


def applied(tolerance: Tolerance, **context: Any) -> None:
    """Log and count one use of a tolerance (context: station_id, action, path...)."""
    metrics.TOLERANCES_APPLIED.labels(tolerance.value).inc()
    log.info("tolerance_applied", tolerance=tolerance.value, **context)


def load(path: str) -> InteropProfiles:
    """Read the table from a .toml or .json file; ConfigurationError if it is wrong."""
    if not path:
        return InteropProfiles()
    where = f"CSMS_INTEROP_PROFILES={path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"{where}: cannot read it: {exc.strerror}") from None
    try:
        raw: Any = json.loads(text) if path.endswith(".json") else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"{where}: not valid {_format(path)}: {exc}") from None
    return parse(raw, where)


def parse(raw: Any, where: str = "interop profiles") -> InteropProfiles:
    """Build the table from its decoded form; ConfigurationError if it is wrong."""
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{where}: the top level must be a table/object")
    unknown = set(raw) - {"tolerances", "profiles"}
    if unknown:
        raise ConfigurationError(f"{where}: unknown keys {sorted(unknown)}")
    global_ = _tolerances(raw.get("tolerances", []), f"{where}: tolerances")
    profiles = []
    entries = raw.get("profiles", [])
    if not isinstance(entries, list):
        raise ConfigurationError(f"{where}: profiles must be a list of tables")
    for i, entry in enumerate(entries):
        label = f"{where}: profiles[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigurationError(f"{label} must be a table/object")
        extra = set(entry) - {"name", "vendor", "model", "firmware", "tolerances"}
        if extra:
            raise ConfigurationError(f"{label}: unknown keys {sorted(extra)}")
        patterns = {k: entry.get(k, "*") for k in ("vendor", "model", "firmware")}
        if not all(isinstance(v, str) and v for v in patterns.values()):
            raise ConfigurationError(f"{label}: vendor, model and firmware must be patterns")
        tolerances = _tolerances(entry.get("tolerances", []), f"{label}.tolerances")
        global_only = tolerances & GLOBAL_ONLY
        if global_only:
            raise ConfigurationError(
                f"{label}: {', '.join(sorted(global_only))} act before a station is "
                "identified; list them under the top-level tolerances"
            )
        name = entry.get("name", f"profiles[{i}]")
        profiles.append(Profile(str(name), tolerances, **patterns))
    return InteropProfiles(global_, tuple(profiles))


def _tolerances(values: Any, where: str) -> frozenset[Tolerance]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ConfigurationError(f"{where} must be a list of tolerance names")
    if Tolerance.MISSING_SUBPROTOCOL in values:
        raise ConfigurationError(
            f"{where}: missing_subprotocol is switched on by CSMS_DEFAULT_SUBPROTOCOL"
        )
    known = {t.value for t in Tolerance} - {Tolerance.MISSING_SUBPROTOCOL}
    wrong = [v for v in values if v not in known]
    if wrong:
        raise ConfigurationError(
            f"{where}: unknown {', '.join(wrong)}; known: {', '.join(sorted(known))}"
        )
    return frozenset(Tolerance(v) for v in values)


def describe(profiles: InteropProfiles) -> dict[str, Any]:
    """A log-friendly summary of the table."""
    return {
        "global_tolerances": sorted(profiles.tolerances),
        "profiles": [p.name for p in profiles.profiles],
    }


def names(tolerances: Iterable[Tolerance]) -> list[str]:
    return sorted(t.value for t in tolerances)


def _format(path: str) -> str:
    return "JSON" if path.endswith(".json") else "TOML"
