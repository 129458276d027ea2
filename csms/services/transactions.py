"""Charging sessions: start, meter values, stop; each booked exactly once."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from csms.domain import (
    AuthorizationStatus,
    IdTokenInfo,
    MeterSample,
    Transaction,
    settle_energy,
)
from csms.events import catalog
from csms.events.model import EventType
from csms.ports import (
    Clock,
    MeterSamplesRecorded,
    Storage,
    TransactionChanged,
    TransactionStarted,
    WriteOp,
)
from csms.services.authorization import AuthorizationService
from csms.services.outbox import report

DEFAULT_STOP_REASON = "Local"


@dataclass(frozen=True, slots=True)
class StartRequest:
    station_id: str
    ocpp_version: str
    evse_id: int
    connector_id: int
    id_token: str | None
    meter_start_wh: float | None
    started_at: datetime
    # None: the CSMS assigns one (OCPP 1.6); else the station's own (2.0.1).
    transaction_id: str | None = None


@dataclass(frozen=True, slots=True)
class StartOutcome:
    transaction: Transaction
    id_token_info: IdTokenInfo | None
    created: bool


@dataclass(frozen=True, slots=True)
class StopRequest:
    station_id: str
    ocpp_version: str
    transaction_id: str
    meter_stop_wh: float | None
    ended_at: datetime
    reason: str | None
    id_token: str | None
    samples: tuple[MeterSample, ...] = ()


@dataclass(frozen=True, slots=True)
class StopOutcome:
    transaction: Transaction
    id_token_info: IdTokenInfo | None
    already_ended: bool


class TransactionService:
    def __init__(self, storage: Storage, clock: Clock, authorization: AuthorizationService) -> None:
        self._storage = storage
        self._clock = clock
        self._authorization = authorization

    async def start(
        self, req: StartRequest, *, unknown: AuthorizationStatus = AuthorizationStatus.INVALID
    ) -> StartOutcome:
        """Book a session the station started. A resent start (same station,
        connector, token and time) returns the session already booked."""
        info = None
        if req.id_token is not None:
            info = await self._authorization.authorize(req.id_token, unknown=unknown)
        if req.transaction_id is None:
            existing = await self._storage.find_open_transaction_like(
                req.station_id, req.connector_id, req.id_token or "", req.started_at
            )
            transaction_id = None if existing else str(await self._new_number(req.station_id))
        else:
            transaction_id = req.transaction_id
            existing = await self._storage.find_transaction(req.station_id, transaction_id)
        if existing is not None:
            return StartOutcome(existing, info, created=False)
        assert transaction_id is not None
        tx = Transaction(
            station_id=req.station_id,
            transaction_id=transaction_id,
            evse_id=req.evse_id,
            connector_id=req.connector_id,
            id_token=req.id_token,
            meter_start_wh=req.meter_start_wh,
            started_at=req.started_at,
            ocpp_version=req.ocpp_version,
            updated_at=self._clock(),
        )
        await self._storage.commit(
            [
                TransactionStarted(tx),
                report(
                    self._clock,
                    EventType.TRANSACTION_STARTED,
                    tx.station_id,
                    tx.ocpp_version,
                    tx.started_at,
                    catalog.transaction_started(tx),
                ),
            ]
        )
        return StartOutcome(tx, info, created=True)

    async def _new_number(self, station_id: str) -> int:
        # A number a station used for a session we never assigned (an orphan
        # stop) must not be handed out again to that station.
        while True:
            number = await self._storage.next_transaction_number()
            if await self._storage.find_transaction(station_id, str(number)) is None:
                return number

    async def record_meter_values(
        self,
        station_id: str,
        ocpp_version: str,
        transaction_id: str | None,
        evse_id: int,
        samples: tuple[MeterSample, ...],
    ) -> None:
        await self._storage.commit(
            self._meter_ops(station_id, ocpp_version, transaction_id, evse_id, samples)
        )

    def _meter_ops(
        self,
        station_id: str,
        ocpp_version: str,
        transaction_id: str | None,
        evse_id: int,
        samples: tuple[MeterSample, ...],
    ) -> list[WriteOp]:
        return [
            MeterSamplesRecorded(station_id, transaction_id, evse_id, samples),
            report(
                self._clock,
                EventType.METER_VALUES,
                station_id,
                ocpp_version,
                samples[0].timestamp if samples else None,
                catalog.meter_values(transaction_id, evse_id, samples),
            ),
        ]

    async def stop(self, req: StopRequest) -> StopOutcome:
        """End a session. A repeated stop is answered and changes nothing; a
        stop of a session never seen is booked from what it carries, flagged."""
        info = None
        if req.id_token is not None:
            info = await self._authorization.authorize(req.id_token)
        tx = await self._storage.find_transaction(req.station_id, req.transaction_id)
        if tx is not None and tx.ended_at is not None:
            return StopOutcome(tx, info, already_ended=True)
        unit: list[WriteOp] = []
        anomalies: list[str] = []
        registers: list[float] = []
        if tx is None:
            anomalies.append("unknown_transaction")
            started_at = min((s.timestamp for s in req.samples), default=req.ended_at)
            tx = Transaction(
                station_id=req.station_id,
                transaction_id=req.transaction_id,
                evse_id=0,
                connector_id=0,
                id_token=req.id_token,
                meter_start_wh=None,
                started_at=started_at,
                ocpp_version=req.ocpp_version,
            )
            unit.append(TransactionStarted(tx))
        else:
            stored = await self._storage.list_meter_samples(tx.station_id, tx.transaction_id)
            registers = [s.value for s in stored if s.is_energy_register()]
        if req.samples:
            unit.extend(
                self._meter_ops(
                    req.station_id, req.ocpp_version, tx.transaction_id, tx.evse_id, req.samples
                )
            )
            registers.extend(s.value for s in req.samples if s.is_energy_register())
        energy, found = settle_energy(tx.meter_start_wh, req.meter_stop_wh, registers)
        ended = replace(
            tx,
            meter_stop_wh=req.meter_stop_wh,
            energy_wh=energy,
            ended_at=req.ended_at,
            stop_reason=req.reason or DEFAULT_STOP_REASON,
            id_token=tx.id_token or req.id_token,
            anomalies=tuple(anomalies) + found,
            updated_at=self._clock(),
        )
        unit.append(TransactionChanged(ended))
        unit.append(
            report(
                self._clock,
                EventType.TRANSACTION_ENDED,
                ended.station_id,
                ended.ocpp_version,
                ended.ended_at,
                catalog.transaction_ended(ended),
            )
        )
        await self._storage.commit(unit)
        return StopOutcome(ended, info, already_ended=False)
