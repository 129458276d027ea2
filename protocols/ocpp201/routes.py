"""OCPP 2.0.1: every action a charging station sends, and its handler.

A handler converts in, calls a service, converts out.
"""

from __future__ import annotations

from typing import Any

from csms.core.domain import AuthorizationStatus
from csms.core.events import EventType
from csms.services import StationContext
from csms.services.transactions import TransactionEventOutcome
from protocols.common import Handler, empty, format_time, parse_time, reply, stored
from protocols.ocpp201 import convert


async def boot_notification(ctx: StationContext, req: dict[str, Any]) -> dict[str, Any]:
    # No durable answer: it carries the current time, and firmware that counts
    # message ids from 1 again sends the same boot under the same id after
    # every reboot (docs/adr/0012-durable-answers.md).
    ctx.services.transactions.station_booted(ctx.station_id)
    decision = await ctx.services.stations.booted(
        ctx.station_id, ctx.ocpp_version, convert.boot_info(req)
    )
    return {
        "status": decision.status,
        "currentTime": format_time(decision.current_time),
        "interval": decision.interval,
    }


async def heartbeat(ctx: StationContext, req: dict[str, Any]) -> dict[str, Any]:
    await ctx.services.transactions.settle_watches(ctx.station_id)
    now = await ctx.services.stations.heartbeat(ctx.station_id, ctx.ocpp_version)
    return {"currentTime": format_time(now)}


async def status_notification(ctx: StationContext, req: dict[str, Any]) -> dict[str, Any]:
    status = convert.connector_status(ctx.station_id, req)
    await ctx.services.transactions.connector_reported(status)
    await ctx.services.stations.status_changed(
        status, ctx.ocpp_version, status.updated_at, reply(ctx, empty)
    )
    return {}


async def authorize(ctx: StationContext, req: dict[str, Any]) -> dict[str, Any]:
    info = await ctx.services.authorization.authorize(
        req["idToken"]["idToken"], unknown=AuthorizationStatus.UNKNOWN
    )
    return {"idTokenInfo": convert.id_token_info(info)}


def _transaction_event_answer(outcome: TransactionEventOutcome) -> dict[str, Any]:
    if outcome.id_token_info is None:
        return {}
    return {"idTokenInfo": convert.id_token_info(outcome.id_token_info)}


async def transaction_event(ctx: StationContext, req: dict[str, Any]) -> dict[str, Any]:
    outcome = await ctx.services.transactions.transaction_event(
        convert.transaction_event(ctx.station_id, ctx.ocpp_version, req),
        reply(ctx, _transaction_event_answer),
    )
    return _transaction_event_answer(outcome)


async def meter_values(ctx: StationContext, req: dict[str, Any]) -> dict[str, Any]:
    await ctx.services.transactions.record_meter_values(
        ctx.station_id,
        ctx.ocpp_version,
        None,
        req["evseId"],
        convert.meter_samples(req["meterValue"], "meterValue"),
        reply(ctx, empty),
    )
    return {}


async def notify_report(ctx: StationContext, req: dict[str, Any]) -> dict[str, Any]:
    await ctx.services.stations.device_model_reported(
        ctx.station_id,
        "NotifyReport",
        req,
        convert.device_model(req.get("reportData", [])),
        reply(ctx, empty),
    )
    return {}


def _unknown_vendor(_: object) -> dict[str, Any]:
    return {"status": "UnknownVendorId"}


async def data_transfer(ctx: StationContext, req: dict[str, Any]) -> dict[str, Any]:
    await ctx.services.stations.notified(
        ctx.station_id, ctx.ocpp_version, "DataTransfer", req, reply=reply(ctx, _unknown_vendor)
    )
    return _unknown_vendor(None)


async def security_event_notification(ctx: StationContext, req: dict[str, Any]) -> dict[str, Any]:
    occurred_at = parse_time(req["timestamp"], "timestamp")
    data = {"type": req["type"], "tech_info": req.get("techInfo")}
    await ctx.services.stations.notified(
        ctx.station_id,
        ctx.ocpp_version,
        "SecurityEventNotification",
        req,
        (EventType.SECURITY_EVENT, data, occurred_at),
        reply(ctx, empty),
    )
    return {}


ROUTES: dict[str, Handler] = {
    "BootNotification": boot_notification,
    "Heartbeat": heartbeat,
    "StatusNotification": status_notification,
    "Authorize": authorize,
    "TransactionEvent": transaction_event,
    "MeterValues": meter_values,
    "NotifyReport": notify_report,
    "DataTransfer": data_transfer,
    "SecurityEventNotification": security_event_notification,
    "NotifyEvent": stored("NotifyEvent"),
    "FirmwareStatusNotification": stored("FirmwareStatusNotification"),
    "LogStatusNotification": stored("LogStatusNotification"),
    "NotifyChargingLimit": stored("NotifyChargingLimit"),
    "ClearedChargingLimit": stored("ClearedChargingLimit"),
    "ReservationStatusUpdate": stored("ReservationStatusUpdate"),
    "NotifyEVChargingNeeds": stored("NotifyEVChargingNeeds", {"status": "Accepted"}),
    "NotifyEVChargingSchedule": stored("NotifyEVChargingSchedule", {"status": "Accepted"}),
    "NotifyCustomerInformation": stored("NotifyCustomerInformation"),
    "NotifyMonitoringReport": stored("NotifyMonitoringReport"),
    "NotifyDisplayMessages": stored("NotifyDisplayMessages"),
    "ReportChargingProfiles": stored("ReportChargingProfiles"),
    "PublishFirmwareStatusNotification": stored("PublishFirmwareStatusNotification"),
    # No certificate authority is configured (the contract: Rejected without
    # CSMS_CA_CERT / CSMS_CA_KEY); the request is kept.
    "SignCertificate": stored(
        "SignCertificate", {"status": "Rejected", "statusInfo": {"reasonCode": "NoCA"}}
    ),
}
