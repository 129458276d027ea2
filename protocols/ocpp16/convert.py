"""OCPP 1.6 payloads <-> the domain; pure functions, no I/O.

1.6 connector N is EVSE N with connector 1; connector 0 (the charge point
itself) is EVSE 0, connector 0.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from csms.core.domain import ConnectorStatus, IdTokenInfo, MeterSample
from csms.services.stations import BootInfo
from protocols.common import format_time, parse_number, parse_time, sample

_BOOT_EXTRA = (
    "chargeBoxSerialNumber",
    "iccid",
    "imsi",
    "meterType",
    "meterSerialNumber",
)


def evse_of(connector_id: int) -> tuple[int, int]:
    """(evse_id, connector_id) of a 1.6 connector id."""
    return (connector_id, 1) if connector_id > 0 else (0, 0)


def boot_info(payload: dict[str, Any]) -> BootInfo:
    return BootInfo(
        vendor=payload["chargePointVendor"],
        model=payload["chargePointModel"],
        serial_number=payload.get("chargePointSerialNumber")
        or payload.get("chargeBoxSerialNumber"),
        firmware_version=payload.get("firmwareVersion"),
        reason=None,
        extra={key: payload[key] for key in _BOOT_EXTRA if key in payload},
    )


def connector_status(station_id: str, payload: dict[str, Any], now: datetime) -> ConnectorStatus:
    evse_id, connector_id = evse_of(payload["connectorId"])
    stamp = payload.get("timestamp")
    return ConnectorStatus(
        station_id=station_id,
        evse_id=evse_id,
        connector_id=connector_id,
        status=payload["status"],
        error_code=payload["errorCode"],
        info=payload.get("info"),
        vendor_id=payload.get("vendorId"),
        vendor_error_code=payload.get("vendorErrorCode"),
        updated_at=parse_time(stamp, "timestamp") if stamp else now,
    )


def meter_samples(meter_values: list[dict[str, Any]], path: str) -> tuple[MeterSample, ...]:
    """The sampled values of a ``meterValue`` / ``transactionData`` list.

    Signed values (format SignedData) carry no number and are left out.
    """
    samples: list[MeterSample] = []
    for i, meter_value in enumerate(meter_values):
        stamp = parse_time(meter_value["timestamp"], f"{path}[{i}].timestamp")
        for j, sv in enumerate(meter_value["sampledValue"]):
            if sv.get("format") == "SignedData":
                continue
            where = f"{path}[{i}].sampledValue[{j}].value"
            samples.append(
                sample(
                    stamp,
                    parse_number(sv["value"], where),
                    sv.get("measurand"),
                    sv.get("unit"),
                    sv.get("phase"),
                    sv.get("context"),
                    sv.get("location"),
                    where,
                )
            )
    return tuple(samples)


def id_tag_info(info: IdTokenInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"status": info.status.value}
    if info.expires_at is not None:
        out["expiryDate"] = format_time(info.expires_at)
    if info.group_id is not None:
        out["parentIdTag"] = info.group_id
    return out
