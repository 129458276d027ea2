"""Payload repairs for known firmware deviations, applied before schema
validation and only for the tolerances a station's profile switches on.

The repairs are driven by the official schema of the action, not by field
names: a timestamp is any string the schema formats as ``date-time``, an
enum any string the schema enumerates. So one rule covers every message
of both versions, and a repair can never produce something the schema
would not have accepted from a compliant station. Each repair is reported
through ``note(tolerance, path, original)`` (logged and counted by the
caller). A strict station (no tolerances) never reaches this module.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from csms.core.interop import Tolerance

Note = Callable[[Tolerance, str, Any], None]
JsonSchema = dict[str, Any]

_NAIVE = re.compile(r"^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(?:\.\d+)?$")
_HOUR_OFFSET = re.compile(r"^(\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(?:\.\d+)?[+-]\d\d)$")
# Before this, a station's clock has not been set (RTCs start at 1970 or 2000).
CLOCK_SET_AFTER = datetime(2010, 1, 1, tzinfo=UTC)
# Misspellings seen in the field that case and spaces do not explain.
_ALIASES = {"celcius": "celsius", "farenheit": "fahrenheit"}


def repair(
    schema: JsonSchema,
    action: str,
    payload: dict[str, Any],
    tolerances: frozenset[Tolerance],
    received_at: datetime,
    note: Note,
) -> dict[str, Any]:
    """``payload`` with the enabled repairs applied (changed in place)."""
    walker = _Walker(schema, action, tolerances, received_at, note)
    fixed = walker.value(schema, payload, "")
    return fixed if isinstance(fixed, dict) else payload


class _Walker:
    def __init__(
        self,
        root: JsonSchema,
        action: str,
        tolerances: frozenset[Tolerance],
        received_at: datetime,
        note: Note,
    ) -> None:
        self.root = root
        self.action = action
        self.on = tolerances
        self.received_at = received_at
        self.note = note

    def resolve(self, schema: Any) -> JsonSchema:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < 16:
            name = str(schema["$ref"]).rsplit("/", 1)[-1]
            schema = self.root.get("definitions", {}).get(name, {})
            seen += 1
        return schema if isinstance(schema, dict) else {}

    def value(self, schema: Any, value: Any, path: str) -> Any:
        schema = self.resolve(schema)
        if isinstance(value, dict):
            return self.object(schema, value, path)
        if isinstance(value, list):
            items = schema.get("items")
            if isinstance(items, dict):
                for i, item in enumerate(value):
                    value[i] = self.value(items, item, f"{path}[{i}]")
            return value
        if isinstance(value, str):
            return self.string(schema, value, path)
        return value

    def object(self, schema: JsonSchema, value: dict[str, Any], path: str) -> Any:
        if schema.get("type") == "string":
            return self.structured_string(value, path)
        properties = schema.get("properties")
        if isinstance(properties, dict):
            for key, child in value.items():
                if key in properties:
                    value[key] = self.value(properties[key], child, f"{path}.{key}".lstrip("."))
        return value

    def structured_string(self, value: Any, path: str) -> Any:
        """A JSON object where the schema wants a string: DataTransfer.data."""
        if (
            Tolerance.DATA_TRANSFER_OBJECT_DATA in self.on
            and self.action == "DataTransfer"
            and path == "data"
        ):
            try:
                text = orjson.dumps(value).decode()
            except TypeError:  # nested deeper than orjson goes: left for validation to refuse
                return value
            self.note(Tolerance.DATA_TRANSFER_OBJECT_DATA, path, type(value).__name__)
            return text
        return value

    def string(self, schema: JsonSchema, value: str, path: str) -> str:
        if schema.get("format") == "date-time":
            return self.timestamp(value, path)
        limit = schema.get("maxLength")
        if (
            isinstance(limit, int)
            and len(value) > limit
            and self.action == "BootNotification"
            and Tolerance.BOOT_IDENTITY_TOO_LONG in self.on
        ):
            # Identity strings only (serial numbers, model names): nothing billed.
            self.note(Tolerance.BOOT_IDENTITY_TOO_LONG, path, value)
            return value[:limit]
        enum = schema.get("enum")
        if isinstance(enum, list) and value not in enum and Tolerance.ENUM_SPELLING in self.on:
            return self.spelling(enum, value, path)
        return value

    def spelling(self, enum: list[Any], value: str, path: str) -> str:
        wanted = value.strip().casefold()
        wanted = _ALIASES.get(wanted, wanted)
        matches = [e for e in enum if isinstance(e, str) and e.casefold() == wanted]
        if len(matches) != 1:
            return value
        self.note(Tolerance.ENUM_SPELLING, path, value)
        return str(matches[0])

    def timestamp(self, value: str, path: str) -> str:
        original = value
        if Tolerance.TIMESTAMP_WITHOUT_TIMEZONE in self.on and _NAIVE.match(value):
            value += "Z"
            self.note(Tolerance.TIMESTAMP_WITHOUT_TIMEZONE, path, original)
        elif Tolerance.TIMESTAMP_HOUR_OFFSET in self.on and _HOUR_OFFSET.match(value):
            value += ":00"
            self.note(Tolerance.TIMESTAMP_HOUR_OFFSET, path, original)
        if Tolerance.TIMESTAMP_CLOCK_NOT_SET in self.on:
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                return value
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            try:
                unset = moment < CLOCK_SET_AFTER
            except OverflowError:  # 0001-01-01T00:00:00+01:00: not a clock left at zero
                return value
            if unset:
                self.note(Tolerance.TIMESTAMP_CLOCK_NOT_SET, path, original)
                stamp = self.received_at.astimezone(UTC).isoformat(timespec="milliseconds")
                return stamp.replace("+00:00", "Z")
        return value


def boot_identity(payload: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(vendor, model, firmware) of a BootNotification of either version, read
    before validation: anything that is not a string is None."""
    station = payload.get("chargingStation")
    if isinstance(station, dict):
        found = (station.get("vendorName"), station.get("model"), station.get("firmwareVersion"))
    else:
        found = (
            payload.get("chargePointVendor"),
            payload.get("chargePointModel"),
            payload.get("firmwareVersion"),
        )
    vendor, model, firmware = (v if isinstance(v, str) else None for v in found)
    return vendor, model, firmware
