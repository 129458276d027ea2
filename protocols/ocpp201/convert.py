"""OCPP 2.0.1 payloads <-> the domain; pure functions, no I/O."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from csms.core.domain import ConnectorStatus, DeviceModelEntry, IdTokenInfo, MeterSample
from csms.services.stations import BootInfo
from csms.services.transactions import TransactionEventRequest
from protocols.common import format_time, parse_number, parse_time, sample, scale


def boot_info(payload: dict[str, Any]) -> BootInfo:
    station = payload["chargingStation"]
    extra: dict[str, Any] = {}
    if "modem" in station:
        extra["modem"] = station["modem"]
    return BootInfo(
        vendor=station["vendorName"],
        model=station["model"],
        serial_number=station.get("serialNumber"),
        firmware_version=station.get("firmwareVersion"),
        reason=payload["reason"],
        extra=extra,
    )


def connector_status(station_id: str, payload: dict[str, Any]) -> ConnectorStatus:
    return ConnectorStatus(
        station_id=station_id,
        evse_id=payload["evseId"],
        connector_id=payload["connectorId"],
        status=payload["connectorStatus"],
        error_code=None,  # 2.0.1 reports errors through NotifyEvent, not here
        info=None,
        vendor_id=None,
        vendor_error_code=None,
        updated_at=parse_time(payload["timestamp"], "timestamp"),
    )


def meter_samples(meter_values: list[dict[str, Any]], path: str) -> tuple[MeterSample, ...]:
    """Sampled values with unitOfMeasure (unit, power-of-ten multiplier) applied."""
    samples: list[MeterSample] = []
    for i, meter_value in enumerate(meter_values):
        stamp = parse_time(meter_value["timestamp"], f"{path}[{i}].timestamp")
        for j, sv in enumerate(meter_value["sampledValue"]):
            where = f"{path}[{i}].sampledValue[{j}].value"
            value = parse_number(sv["value"], where)
            measure = sv.get("unitOfMeasure") or {}
            multiplier = measure.get("multiplier", 0)
            if multiplier:
                value = scale(value, multiplier, where)
            samples.append(
                sample(
                    stamp,
                    value,
                    sv.get("measurand"),
                    measure.get("unit"),
                    sv.get("phase"),
                    sv.get("context"),
                    sv.get("location"),
                    where,
                    sv.get("signedMeterValue"),
                )
            )
    return tuple(samples)


def transaction_event(
    station_id: str, ocpp_version: str, payload: dict[str, Any]
) -> TransactionEventRequest:
    info = payload["transactionInfo"]
    evse = payload.get("evse") or {}
    id_token = payload.get("idToken")
    return TransactionEventRequest(
        station_id=station_id,
        ocpp_version=ocpp_version,
        event_type=payload["eventType"],
        transaction_id=info["transactionId"],
        seq_no=payload["seqNo"],
        timestamp=parse_time(payload["timestamp"], "timestamp"),
        trigger_reason=payload["triggerReason"],
        offline=bool(payload.get("offline", False)),
        evse_id=evse.get("id"),
        connector_id=evse.get("connectorId"),
        id_token=id_token["idToken"] if id_token else None,
        charging_state=info.get("chargingState"),
        stopped_reason=info.get("stoppedReason"),
        samples=meter_samples(payload.get("meterValue", []), "meterValue"),
        remote_start_id=info.get("remoteStartId"),
    )


def id_token_info(info: IdTokenInfo, group_type: str = "Central") -> dict[str, Any]:
    out: dict[str, Any] = {"status": info.status.value}
    if info.expires_at is not None:
        out["cacheExpiryDateTime"] = format_time(info.expires_at)
    if info.group_id is not None:
        out["groupIdToken"] = {"idToken": info.group_id, "type": group_type}
    return out


def device_model(report_data: list[dict[str, Any]]) -> tuple[DeviceModelEntry, ...]:
    """One entry per reported variable attribute (Actual, Target, MinSet, MaxSet)."""
    entries: list[DeviceModelEntry] = []
    for item in report_data:
        component = item["component"]
        evse = component.get("evse") or {}
        variable = item["variable"]
        characteristics = dict(item.get("variableCharacteristics") or {})
        characteristics.pop("customData", None)
        for attribute in item["variableAttribute"]:
            entries.append(
                DeviceModelEntry(
                    component=component["name"],
                    component_instance=component.get("instance"),
                    evse_id=evse.get("id"),
                    connector_id=evse.get("connectorId"),
                    variable=variable["name"],
                    variable_instance=variable.get("instance"),
                    attribute_type=attribute.get("type", "Actual"),
                    value=attribute.get("value"),
                    mutability=attribute.get("mutability", "ReadWrite"),
                    characteristics=characteristics,
                )
            )
    return tuple(entries)


def report_time(payload: dict[str, Any]) -> datetime:
    return parse_time(payload["generatedAt"], "generatedAt")
