"""The event envelope downstream services consume (see docs/events/).

The body is the same for OCPP 1.6 and 2.0.1; ``schema_version`` rises only
with a breaking change of a type's ``data``.
"""

from __future__ import annotations

import functools
import os
from datetime import UTC, datetime
from typing import Any

from csms.core.records import record

SCHEMA_VERSION = 1

# Random bytes for event ids, drawn from os.urandom 4 KiB at a time. Events are
# made on the event loop's thread only; a forked child starts afresh, so it
# never repeats its parent's ids.
_RANDOM = bytearray()
os.register_at_fork(after_in_child=_RANDOM.clear)


def new_event_id() -> str:
    """A random (version 4) UUID as text: what ``str(uuid.uuid4())`` gives, in
    0.6 us instead of 2.4 (a system call and two conversions per id)."""
    if not _RANDOM:
        _RANDOM.extend(os.urandom(4096))
    raw = _RANDOM[:16]
    del _RANDOM[:16]
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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


@record
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
        return cls(new_event_id(), type, station_id, ocpp_version, occurred_at, recorded_at, data)

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
