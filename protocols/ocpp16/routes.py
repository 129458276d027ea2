"""OCPP 1.6: every action a charge point sends, and its handler.

A handler converts in, calls a service, converts out.
"""

from __future__ import annotations

from typing import Any

from csms.core.events import EventType
from csms.services import StationContext
from csms.services.transactions import StartOutcome, StartRequest, StopOutcome, StopRequest
from protocols.common import Handler, empty, format_time, parse_time, reply, stored
from protocols.ocpp16 import convert


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
    status = convert.connector_status(ctx.station_id, req, ctx.services.clock())
    occurred = status.updated_at if "timestamp" in req else None
    await ctx.services.transactions.connector_reported(status)
    await ctx.services.stations.status_changed(
        status, ctx.ocpp_version, occurred, reply(ctx, empty)
    )
    return {}


async def authorize(ctx: StationContext, req: dict[str, Any]) -> dict[str, Any]:
    info = await ctx.services.authorization.authorize(req["idTag"])
    return {"idTagInfo": convert.id_tag_info(info)}


def _start_answer(outcome: StartOutcome) -> dict[str, Any]:
    assert outcome.id_token_info is not None
    return {
        "transactionId": int(outcome.transaction.transaction_id),
        "idTagInfo": convert.id_tag_info(outcome.id_token_info),
    }


async def start_transaction(ctx: StationContext, req: dict[str, Any]) -> dict[str, Any]:
    evse_id, connector_id = convert.evse_of(req["connectorId"])
    outcome = await ctx.services.transactions.start(
        StartRequest(
            station_id=ctx.station_id,
            ocpp_version=ctx.ocpp_version,
            evse_id=evse_id,
            connector_id=connector_id,
            id_token=req["idTag"],
            meter_start_wh=float(req["meterStart"]),
            started_at=parse_time(req["timestamp"], "timestamp"),
        ),
        reply=reply(ctx, _start_answer),
    )
    return _start_answer(outcome)


def _stop_answer(outcome: StopOutcome) -> dict[str, Any]:
    if outcome.id_token_info is None:
        return {}
    return {"idTagInfo": convert.id_tag_info(outcome.id_token_info)}


async def stop_transaction(ctx: StationContext, req: dict[str, Any]) -> dict[str, Any]:
    outcome = await ctx.services.transactions.stop(
        StopRequest(
            station_id=ctx.station_id,
            ocpp_version=ctx.ocpp_version,
            transaction_id=str(req["transactionId"]),
            meter_stop_wh=float(req["meterStop"]),
            ended_at=parse_time(req["timestamp"], "timestamp"),
            reason=req.get("reason"),
            id_token=req.get("idTag"),
            samples=convert.meter_samples(req.get("transactionData", []), "transactionData"),
        ),
        reply(ctx, _stop_answer),
    )
    return _stop_answer(outcome)


async def meter_values(ctx: StationContext, req: dict[str, Any]) -> dict[str, Any]:
    evse_id, _ = convert.evse_of(req["connectorId"])
    transaction_id = req.get("transactionId")
    await ctx.services.transactions.record_meter_values(
        ctx.station_id,
        ctx.ocpp_version,
        None if transaction_id is None else str(transaction_id),
        evse_id,
        convert.meter_samples(req["meterValue"], "meterValue"),
        reply(ctx, empty),
    )
    return {}


def _unknown_vendor(_: object) -> dict[str, Any]:
    # No vendor extension is implemented: every vendorId is unknown here.
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
    "StartTransaction": start_transaction,
    "StopTransaction": stop_transaction,
    "MeterValues": meter_values,
    "DataTransfer": data_transfer,
    "DiagnosticsStatusNotification": stored("DiagnosticsStatusNotification"),
    "FirmwareStatusNotification": stored("FirmwareStatusNotification"),
    "LogStatusNotification": stored("LogStatusNotification"),
    "SignedFirmwareStatusNotification": stored("SignedFirmwareStatusNotification"),
    "SecurityEventNotification": security_event_notification,
    # Security extension. No certificate authority is configured (the contract:
    # Rejected without CSMS_CA_CERT / CSMS_CA_KEY); the request is kept.
    "SignCertificate": stored("SignCertificate", {"status": "Rejected"}),
}
