"""The ``data`` of each event type, built from domain objects (docs/events/)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from csms.core.domain import Command, ConnectorStatus, MeterSample, Transaction
from csms.core.events import iso
from csms.core.settlement import is_overridden


def station_connected(remote: str | None, connection_id: int, node_id: str) -> dict[str, Any]:
    return {"remote_address": remote, "connection_id": connection_id, "node_id": node_id}


def station_disconnected(
    close_code: int | None,
    reason: str,
    connection_id: int,
    node_id: str,
    *,
    detected_late: bool = False,
) -> dict[str, Any]:
    return {
        "close_code": close_code,
        "reason": reason,
        "connection_id": connection_id,
        "node_id": node_id,
        "detected_late": detected_late,
    }


def station_booted(
    vendor: str | None,
    model: str | None,
    serial_number: str | None,
    firmware_version: str | None,
    reason: str | None,
) -> dict[str, Any]:
    return {
        "vendor": vendor,
        "model": model,
        "serial_number": serial_number,
        "firmware_version": firmware_version,
        "reason": reason,
    }


def status_changed(status: ConnectorStatus) -> dict[str, Any]:
    return {
        "evse_id": status.evse_id,
        "connector_id": status.connector_id,
        "status": status.status,
        "error_code": status.error_code,
        "info": status.info,
        "vendor_id": status.vendor_id,
        "vendor_error_code": status.vendor_error_code,
    }


def transaction_started(tx: Transaction) -> dict[str, Any]:
    return {
        "transaction_id": tx.transaction_id,
        "evse_id": tx.evse_id,
        "connector_id": tx.connector_id,
        "id_token": tx.id_token,
        "meter_start_wh": tx.meter_start_wh,
        "started_at": iso(tx.started_at),
        "remote_start_id": tx.remote_start_id,
    }


def transaction_updated(tx: Transaction, trigger_reason: str | None) -> dict[str, Any]:
    return {
        "transaction_id": tx.transaction_id,
        "evse_id": tx.evse_id,
        "connector_id": tx.connector_id,
        "charging_state": tx.charging_state,
        "trigger_reason": trigger_reason,
        "seq_no": tx.seq_no,
        "id_token": tx.id_token,
    }


def transaction_ended(tx: Transaction) -> dict[str, Any]:
    return {
        "transaction_id": tx.transaction_id,
        "evse_id": tx.evse_id,
        "connector_id": tx.connector_id,
        "id_token": tx.id_token,
        "meter_start_wh": tx.meter_start_wh,
        "meter_stop_wh": tx.meter_stop_wh,
        "energy_wh": tx.energy_wh,
        "station_energy_wh": station_energy_wh(tx),
        "energy_overridden": is_overridden(tx.anomalies),
        "started_at": iso(tx.started_at),
        "ended_at": iso(tx.ended_at) if tx.ended_at else None,
        "stop_reason": tx.stop_reason,
        "anomalies": list(tx.anomalies),
        "remote_start_id": tx.remote_start_id,
    }


def station_energy_wh(tx: Transaction) -> float | None:
    """The station's own figure, meter stop - start as it sent them (may be negative)."""
    if tx.meter_start_wh is None or tx.meter_stop_wh is None:
        return None
    return tx.meter_stop_wh - tx.meter_start_wh


def meter_values(
    transaction_id: str | None, evse_id: int, samples: Iterable[MeterSample]
) -> dict[str, Any]:
    return {
        "transaction_id": transaction_id,
        "evse_id": evse_id,
        "samples": [meter_sample(s) for s in samples],
    }


def meter_sample(s: MeterSample) -> dict[str, Any]:
    """One sample, every key present (the REST API shows samples the same way)."""
    return {
        "timestamp": iso(s.timestamp),
        "measurand": s.measurand,
        "value": s.value,
        "unit": s.unit,
        "phase": s.phase,
        "context": s.context,
        "location": s.location,
        "signed_data": s.signed_data,
    }


def command_completed(command: Command) -> dict[str, Any]:
    """A command's final outcome (secrets already masked in the record)."""
    return {
        "command_id": command.id,
        "command": command.name,
        "action": command.action,
        "status": command.status.value,
        "request": command.request,
        "payload": command.payload,
        "response": command.response,
        "error": command.error,
        "source": command.source,
        "created_at": iso(command.created_at),
        "expires_at": _iso_or_none(command.expires_at),
        "sent_at": _iso_or_none(command.sent_at),
        "completed_at": _iso_or_none(command.completed_at),
    }


def _iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)
