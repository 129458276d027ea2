"""docs/events: one valid JSON Schema per event type, fitting what the catalog builds."""

from __future__ import annotations

import importlib
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest

from csms.core import catalog
from csms.core.domain import Command, CommandStatus, ConnectorStatus, MeterSample, Transaction
from csms.core.events import Event, EventType

SCHEMAS = Path(__file__).parents[2] / "docs" / "events"
TYPES = sorted(v for k, v in vars(EventType).items() if k.isupper())
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ENVELOPE_KEYS = [
    "event_id",
    "type",
    "schema_version",
    "station_id",
    "ocpp_version",
    "occurred_at",
    "recorded_at",
    "data",
]

# jsonschema is a dev dependency and ships no type hints: import it as Any.
jsonschema: Any = importlib.import_module("jsonschema")


@cache
def schema(kind: str) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads((SCHEMAS / f"{kind}.schema.json").read_bytes())
    return loaded


def errors(kind: str, body: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(
        schema(kind), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return [error.message for error in validator.iter_errors(body)]


def body(kind: str, data: dict[str, Any], ocpp_version: str = "1.6") -> dict[str, Any]:
    return Event.new(kind, "CP-1", ocpp_version, T0, T0, data).body()


TRANSACTION = Transaction(
    station_id="CP-1",
    transaction_id="42",
    evse_id=1,
    connector_id=1,
    id_token="04A1B2C3",
    meter_start_wh=1000.0,
    started_at=T0,
    ocpp_version="1.6",
)
ENDED = replace(
    TRANSACTION,
    meter_stop_wh=4500.0,
    energy_wh=3500.0,
    ended_at=T0,
    stop_reason="Local",
    anomalies=("meter_went_backwards",),
)
COMMAND = Command(
    id="0b9a6f4e-1d2c-4e5f-8a7b-6c5d4e3f2a10",
    station_id="CP-1",
    name="reset",
    action="Reset",
    ocpp_version="1.6",
    request={"type": "hard"},
    status=CommandStatus.FAILED,
    source="api",
    created_at=T0,
    payload={"type": "Hard"},
    error={"error": "station_call_error", "message": "the station answered with a CALLERROR",
           "code": "NotSupported", "description": "no", "details": {}},
    sent_at=T0,
    completed_at=T0,
)  # fmt: skip
SAMPLE = MeterSample(T0, "Energy.Active.Import.Register", 1234.5, "Wh", None, None, "Outlet")

# What the catalog and the services build for each type.
BUILT: dict[str, dict[str, Any]] = {
    EventType.STATION_CONNECTED: catalog.station_connected("10.0.0.7", 7, "csms-1"),
    EventType.STATION_DISCONNECTED: catalog.station_disconnected(1001, "", 7, "csms-1"),
    EventType.STATION_BOOTED: catalog.station_booted("ACME", "X1", None, "1.0", None),
    EventType.STATION_STATUS_CHANGED: catalog.status_changed(
        ConnectorStatus("CP-1", 0, 0, "Available", None, None, None, None, T0)
    ),
    EventType.TRANSACTION_STARTED: catalog.transaction_started(TRANSACTION),
    EventType.TRANSACTION_UPDATED: catalog.transaction_updated(TRANSACTION, "MeterValuePeriodic"),
    EventType.TRANSACTION_ENDED: catalog.transaction_ended(ENDED),
    EventType.METER_VALUES: catalog.meter_values(None, 1, [SAMPLE]),
    EventType.SECURITY_EVENT: {"type": "SettingSystemTime", "tech_info": None},
    EventType.COMMAND_COMPLETED: catalog.command_completed(COMMAND),
}


class TestSchemaFiles:
    def test_every_event_type_has_a_valid_schema_and_nothing_else_does(self) -> None:
        """One draft 2020-12 schema per type, named <type>.schema.json."""
        assert sorted(p.name for p in SCHEMAS.glob("*.json")) == [
            f"{kind}.schema.json" for kind in TYPES
        ]
        for kind in TYPES:
            assert schema(kind)["$schema"] == "https://json-schema.org/draft/2020-12/schema"
            jsonschema.Draft202012Validator.check_schema(schema(kind))

    def test_every_schema_shares_the_envelope(self) -> None:
        """The envelope is the same in every file but for the type's constant."""

        def envelope(kind: str) -> dict[str, Any]:
            properties = dict(schema(kind)["properties"])
            assert properties.pop("type")["const"] == kind
            return {"required": schema(kind)["required"], "properties": properties}

        first = envelope(TYPES[0])
        assert first["required"] == ENVELOPE_KEYS
        for kind in TYPES[1:]:
            assert envelope(kind) == first, kind


class TestBuiltEvents:
    @pytest.mark.parametrize("kind", TYPES)
    def test_what_the_catalog_builds_fits_the_schema(self, kind: str) -> None:
        """The data each type is built with validates, with every key the schema requires."""
        data = BUILT[kind]
        assert errors(kind, body(kind, data)) == []
        assert sorted(schema(kind)["$defs"]["data"]["required"]) == sorted(data)

    def test_additive_fields_keep_validating(self) -> None:
        """A key the schema does not know yet is allowed (additive change, same version)."""
        data = {**BUILT[EventType.TRANSACTION_ENDED], "cost": {"total": 1.2}}
        assert errors(EventType.TRANSACTION_ENDED, body(EventType.TRANSACTION_ENDED, data)) == []

    @pytest.mark.parametrize(
        ("change", "path"),
        [
            ({"schema_version": 2}, "schema_version"),
            ({"occurred_at": "2024-05-01T14:00:00+02:00"}, "occurred_at"),
            ({"event_id": "not-a-uuid"}, "event_id"),
            ({"ocpp_version": "2.1"}, "ocpp_version"),
        ],
    )
    def test_envelope_violations_are_caught(self, change: dict[str, Any], path: str) -> None:
        """A wrong version, a non-UTC time, a bad id or protocol fails validation."""
        kind = EventType.STATION_CONNECTED
        assert errors(kind, {**body(kind, BUILT[kind]), **change})

    def test_a_missing_data_key_is_caught(self) -> None:
        """Every data key is required, null or not."""
        data = dict(BUILT[EventType.TRANSACTION_ENDED])
        del data["energy_wh"]
        assert errors(EventType.TRANSACTION_ENDED, body(EventType.TRANSACTION_ENDED, data))
