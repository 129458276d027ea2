"""The event envelope downstream services consume (see docs/events/).

The body is the same for OCPP 1.6 and 2.0.1; ``schema_version`` rises only
with a breaking change of a type's ``data``.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SCHEMA_VERSION = 1


class EventType:
    STATION_CONNECTED = "station.connected"
    STATION_DISCONNECTED = "station.disconnected"
    STATION_BOOTED = "station.booted"
    STATION_STATUS_CHANGED = "station.status_changed"
    TRANSACTION_STARTED = "transaction.started"
    TRANSACTION_UPDATED = "transaction.updated"
    TRANSACTION_ENDED = "transaction.ended"
    METER_VALUES = "meter.values"
    SECURITY_EVENT = "security.event"
    COMMAND_COMPLETED = "command.completed"


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    type: str
    station_id: str
    ocpp_version: str
    occurred_at: datetime
    recorded_at: datetime
    data: dict[str, Any]

    @classmethod
    def new(
        cls,
        type: str,
        station_id: str,
        ocpp_version: str,
        occurred_at: datetime,
        recorded_at: datetime,
        data: dict[str, Any],
    ) -> Event:
        event_id = str(uuid.uuid4())
        return cls(event_id, type, station_id, ocpp_version, occurred_at, recorded_at, data)

    def body(self) -> dict[str, Any]:
        """The JSON body as published (timestamps as ISO 8601 UTC)."""
        return {
            "event_id": self.event_id,
            "type": self.type,
            "schema_version": SCHEMA_VERSION,
            "station_id": self.station_id,
            "ocpp_version": self.ocpp_version,
            "occurred_at": iso(self.occurred_at),
            "recorded_at": iso(self.recorded_at),
            "data": self.data,
        }


@functools.lru_cache(maxsize=8192)
def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, millisecond precision (a naive time as it is).

    Cached: the samples of a meter-values message share one timestamp, and
    formatting cost about a twentieth of a MeterValues' CPU (docs/benchmarks.md).
    Equal times in other offsets are one cache key, hence the conversion.
    """
    if moment.utcoffset():
        moment = moment.astimezone(UTC)
    text = moment.isoformat(timespec="milliseconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text
