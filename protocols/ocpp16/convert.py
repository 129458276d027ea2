"""OCPP 1.6 payloads <-> the domain; pure functions, no I/O.

1.6 connector N is EVSE N with connector 1; connector 0 (the charge point
itself) is EVSE 0, connector 0.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import structlog

from csms.core.domain import ENERGY_IMPORT_REGISTER, ConnectorStatus, IdTokenInfo, MeterSample
from csms.services.stations import BootInfo
from protocols.common import format_time, parse_number, parse_time, sample

log = structlog.get_logger("csms.protocols")

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

    A value of format SignedData carries no number: its text is the signature
    of the raw reading beside it in the same meterValue (the same measurand,
    phase and location, else the first raw reading), kept as ``signed_data``.
    A meterValue with signed values only has no reading to carry them.
    """
    samples: list[MeterSample] = []
    for i, meter_value in enumerate(meter_values):
        stamp = parse_time(meter_value["timestamp"], f"{path}[{i}].timestamp")
        first = len(samples)
        signed: list[dict[str, Any]] | None = None  # rare: no list per meterValue
        for j, sv in enumerate(meter_value["sampledValue"]):
            if sv.get("format") == "SignedData":
                if signed is None:
                    signed = []
                signed.append(sv)
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
        if signed is not None:
            _attach_signatures(samples, first, signed)
    return tuple(samples)


def _attach_signatures(
    samples: list[MeterSample], first: int, signed: list[dict[str, Any]]
) -> None:
    """Give each SignedData value to the raw reading it signs: the same measurand,
    phase and location, else the same measurand; never one already signed. A
    signature with no such reading in its meterValue is logged, not guessed."""
    for sv in signed:
        measurand = sv.get("measurand") or ENERGY_IMPORT_REGISTER
        wanted = (measurand, sv.get("phase"), sv.get("location") or "Outlet")
        free = [k for k in range(first, len(samples)) if samples[k].signed_data is None]
        exact = [
            k
            for k in free
            if (samples[k].measurand, samples[k].phase, samples[k].location) == wanted
        ]
        fits = exact or [k for k in free if samples[k].measurand == measurand]
        if not fits:
            log.warning("signed_value_without_reading", measurand=measurand)
            continue
        samples[fits[0]] = replace(samples[fits[0]], signed_data=sv["value"])


def id_tag_info(info: IdTokenInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"status": info.status.value}
    if info.expires_at is not None:
        out["expiryDate"] = format_time(info.expires_at)
    if info.group_id is not None:
        out["parentIdTag"] = info.group_id
    return out
