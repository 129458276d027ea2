"""Charging sessions: start, meter values, stop; each booked exactly once."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from csms.core import catalog
from csms.core.domain import (
    AuthorizationStatus,
    ChargingProfile,
    ChargingProfileCriteria,
    ConnectorStatus,
    IdTokenInfo,
    MeterSample,
    Transaction,
)
from csms.core.errors import AlreadyAnsweredError, StorageError
from csms.core.events import EventType
from csms.core.ports import (
    CallAnswerStore,
    ChargingProfilesCleared,
    Clock,
    MeterSamplesRecorded,
    StationStateStore,
    TransactionChanged,
    TransactionEventRecorded,
    TransactionStarted,
    TransactionStore,
    UnitOfWork,
    WriteOp,
)
from csms.core.records import record
from csms.core.settlement import settle_energy
from csms.services.authorization import AuthorizationService
from csms.services.outbox import report
from csms.services.replies import Reply
from csms.telemetry import metrics

log = structlog.get_logger("csms.transactions")

DEFAULT_STOP_REASON = "Local"
MAX_KNOWN_TRANSACTIONS = 200_000


class Abandoned:
    """Why the CSMS closed a session the station never stopped (docs/billing.md)."""

    SUPERSEDED = "abandoned_superseded"  # a new session started on its EVSE
    AFTER_REBOOT = "abandoned_after_reboot"  # a boot, and its token was not Accepted
    AVAILABLE = "abandoned_available"  # its connector Available for ABANDON_AFTER


# A stop (1.6 StopTransaction, 2.0.1 Ended) that came for a session already
# closed as abandoned: answered, flagged on the session, never billed again.
STOPPED_AFTER_ABANDONED = "stopped_after_abandoned"
ABANDONED = (Abandoned.SUPERSEDED, Abandoned.AFTER_REBOOT, Abandoned.AVAILABLE)
# How long after a reboot, or a connector reporting Available, a session with
# no message is taken for over: long enough for a station that comes back
# online to send its queued stop first (CSMS_ABANDON_AFTER).
ABANDON_AFTER = timedelta(minutes=15)
# What the stop reason of a closed session says, in both protocols' words.
_ABANDON_REASONS = {
    Abandoned.SUPERSEDED: "Other",
    Abandoned.AFTER_REBOOT: "Reboot",
    Abandoned.AVAILABLE: "Other",
}
TX_PROFILE = "TxProfile"


@record
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


@record
class StartOutcome:
    transaction: Transaction
    id_token_info: IdTokenInfo | None
    created: bool


@record
class StopRequest:
    station_id: str
    ocpp_version: str
    transaction_id: str
    meter_stop_wh: float | None
    ended_at: datetime
    reason: str | None
    id_token: str | None
    samples: tuple[MeterSample, ...] = ()


@record
class StopOutcome:
    transaction: Transaction
    id_token_info: IdTokenInfo | None
    already_ended: bool


class TransactionEventType:
    STARTED = "Started"
    UPDATED = "Updated"
    ENDED = "Ended"


@record
class TransactionEventRequest:
    """An OCPP 2.0.1 TransactionEvent, version-neutral."""

    station_id: str
    ocpp_version: str
    event_type: str
    transaction_id: str
    seq_no: int
    timestamp: datetime
    trigger_reason: str
    offline: bool = False
    evse_id: int | None = None
    connector_id: int | None = None
    id_token: str | None = None
    charging_state: str | None = None
    stopped_reason: str | None = None
    samples: tuple[MeterSample, ...] = ()
    remote_start_id: int | None = None


@record
class TransactionEventOutcome:
    transaction: Transaction
    id_token_info: IdTokenInfo | None
    duplicate: bool


@dataclass(slots=True)
class _Known:
    """A transaction as the CSMS last stored it, and the seqNos it has seen."""

    transaction: Transaction
    seq_nos: set[int]
    # Energy register readings (timestamp, Wh) of the session, kept sorted: a
    # new one nearly always goes at the end, where sorting them all for every
    # event grew with the session's length.
    registers: list[tuple[datetime, float]]


@dataclass(slots=True)
class _Watch:
    """A piece of evidence that sessions may be over, waiting ABANDON_AFTER."""

    since: datetime  # when it happened (an Available report: the station's time)
    reported_at: datetime  # the CSMS's clock: the bound is counted on it
    # Sessions that sent a message since: not over.
    spoke: set[str] = field(default_factory=set)


# The answers that refuse a session: its station stops charging (1.6
# StopTransactionOnInvalidId, 2.0.1 the same for these). Not Unknown: 2.0.1
# stores NoAuthorization and tokens the registry does not know as Unknown,
# and such sessions charge.
_REFUSED_STATUSES = frozenset(
    s.value
    for s in (
        AuthorizationStatus.INVALID,
        AuthorizationStatus.BLOCKED,
        AuthorizationStatus.EXPIRED,
    )
)


class TransactionService:
    """Sessions: reads a ``TransactionStore``, writes through a ``UnitOfWork``;
    id tokens are checked by the ``AuthorizationService``. A repeat it tells
    by its facts (a start already booked, a stop of an ended session, a seqNo
    seen) is answered from the ``CallAnswerStore`` when that holds this very
    CALL's answer, so a resend gets the same answer even if the id token's
    status changed meanwhile."""

    def __init__(
        self,
        transactions: TransactionStore,
        writes: UnitOfWork,
        clock: Clock,
        authorization: AuthorizationService,
        answers: CallAnswerStore,
        state: StationStateStore,
        *,
        abandon_after: timedelta = ABANDON_AFTER,
    ) -> None:
        self._transactions = transactions
        self._answers = answers
        self._state = state
        self._abandon_after = abandon_after
        # Watches per station: its last boot; per EVSE, its connector Available.
        self._rebooted: dict[str, _Watch] = {}
        self._available: dict[str, dict[int, _Watch]] = {}
        self._writes = writes
        self._clock = clock
        self._authorization = authorization
        # 2.0.1 transactions this process is serving, by (station, id): a
        # TransactionEvent then needs no database read. Forgotten when the
        # station (re)connects, since another instance may have served it.
        self._known: dict[tuple[str, str], _Known] = {}

    def forget_station(self, station_id: str) -> None:
        """Drop cached state of a station (it connected, maybe after another
        instance): a watch belongs to one connection's view of it."""
        for key in [k for k in self._known if k[0] == station_id]:
            del self._known[key]
        self._rebooted.pop(station_id, None)
        self._available.pop(station_id, None)

    async def start(
        self,
        req: StartRequest,
        *,
        unknown: AuthorizationStatus = AuthorizationStatus.INVALID,
        reply: Reply[StartOutcome] | None = None,
    ) -> StartOutcome:
        """Book a session the station started. A resent start (same station,
        connector, token and time) returns the session already booked."""
        info = None
        if req.id_token is not None:
            info = await self._authorization.authorize(req.id_token, unknown=unknown)
        # The open sessions on its EVSE (indexed): a resent start is one of
        # them; any other is over, since an EVSE has one session at a time.
        open_here = await self._open_on(req.station_id, req.evse_id)
        if req.transaction_id is None:
            existing = next(
                (
                    tx
                    for tx in reversed(open_here)
                    if tx.id_token == req.id_token and tx.started_at == req.started_at
                ),
                None,
            )
            transaction_id = None if existing else str(await self._new_number(req.station_id))
        else:
            transaction_id = req.transaction_id
            existing = await self._transactions.find_transaction(req.station_id, transaction_id)
        if existing is not None:
            await self._answer_repeat(reply)
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
            id_token_status=None if info is None else info.status.value,
        )
        outcome = StartOutcome(tx, info, created=True)
        start_wh = req.meter_start_wh
        closing = (req.started_at, start_wh) if start_wh is not None else None
        closed = [
            await self._abandon(old, Abandoned.SUPERSEDED, req.started_at, closing)
            for old in open_here
            if old.started_at < req.started_at  # a late start of an older one closes nothing
        ]
        unit: list[WriteOp] = [op for ops, _ in closed for op in ops]
        unit += [TransactionStarted(tx), self._started_event(tx)]
        if reply is not None:
            unit.append(reply.answered(outcome))
        await self._writes.commit(unit)
        self._abandoned([old for _, old in closed])
        self._session_spoke(tx.station_id, tx.transaction_id)
        return outcome

    async def _open_on(self, station_id: str, evse_id: int) -> list[Transaction]:
        """The open sessions on one EVSE of a station (none known on EVSE 0)."""
        if evse_id <= 0:
            return []
        return await self._transactions.list_open_transactions(station_id, evse_id)

    # --- sessions that never end ---------------------------------------------
    # The evidence that a session is over without its stop: a new session on
    # its EVSE (start, transaction_event), a reboot, its connector Available.
    # The last two wait ABANDON_AFTER for the station's own stop first; their
    # watches live in memory and are settled on the station's own messages
    # (Heartbeat, StatusNotification), so a close never races its stop, and
    # the hot path reads nothing: the open sessions are read when a bound passed.

    def station_booted(self, station_id: str) -> None:
        """A reboot ends every session; the station sends the stops it kept after
        its BootNotification. The sessions open now whose id token the CSMS did
        not accept are closed ``abandoned_after_reboot`` if ABANDON_AFTER passes
        with no message of theirs (docs/billing.md)."""
        self._rebooted[station_id] = _Watch(self._clock(), self._clock())

    async def connector_reported(self, status: ConnectorStatus) -> None:
        """A connector's status: Available starts the watch of its EVSE's open
        sessions, any other ends it; then the station's watches are settled."""
        watches = self._available.get(status.station_id)
        if status.status == "Available" and status.evse_id > 0:
            if watches is None:
                watches = self._available[status.station_id] = {}
            if status.evse_id not in watches:
                watches[status.evse_id] = _Watch(status.updated_at, self._clock())
        elif watches is not None:
            watches.pop(status.evse_id, None)
            if not watches:
                del self._available[status.station_id]
        await self.settle_watches(status.station_id)

    async def settle_watches(self, station_id: str) -> None:
        """Close the sessions whose watch ran ABANDON_AFTER with no message of
        theirs. Memory only unless a bound passed: called at every Heartbeat
        and StatusNotification, whose answers it never fails: if the database
        fails meanwhile, the watches are kept and tried at the next one."""
        rebooted = self._rebooted.get(station_id)
        available = dict(self._available.get(station_id, {}))
        try:
            await self._settle_watches_now(station_id)
        except StorageError as exc:
            log.warning("abandon_check_failed", station_id=station_id, error=str(exc))
            if rebooted is not None:
                self._rebooted.setdefault(station_id, rebooted)
            if available:  # the ones it took out; any newer report wins
                self._available[station_id] = {**available, **self._available.get(station_id, {})}

    async def _settle_watches_now(self, station_id: str) -> None:
        now = self._clock()
        closing: list[tuple[list[WriteOp], Transaction]] = []
        # One close per session, whichever rules find it (a refused session's
        # station reboots and reports Available: both watches end together).
        closed_ids: set[str] = set()
        rebooted = self._rebooted.get(station_id)
        if rebooted is not None and now - rebooted.reported_at >= self._abandon_after:
            del self._rebooted[station_id]
            for tx in await self._transactions.list_open_transactions(station_id):
                if (
                    tx.id_token_status in _REFUSED_STATUSES
                    and tx.started_at <= rebooted.since  # a session begun after the boot is live
                    and await self._silent_since(tx, rebooted)
                ):
                    closing.append(await self._abandon(tx, Abandoned.AFTER_REBOOT, rebooted.since))
                    closed_ids.add(tx.transaction_id)
        watches = self._available.get(station_id, {})
        for evse_id, watch in list(watches.items()):
            if now - watch.reported_at < self._abandon_after:
                continue
            del watches[evse_id]
            open_here = await self._open_on(station_id, evse_id)
            if not open_here or not await self._still_available(station_id, evse_id):
                continue
            for tx in open_here:
                if (
                    tx.transaction_id not in closed_ids
                    # 2.0.1: a transaction may go on unplugged (TxStopPoint without
                    # EVConnected), so Available is no evidence there.
                    and tx.ocpp_version == "1.6"
                    and tx.started_at <= watch.since
                    and await self._silent_since(tx, watch)
                ):
                    closing.append(await self._abandon(tx, Abandoned.AVAILABLE, watch.since))
                    closed_ids.add(tx.transaction_id)
        if not watches:
            self._available.pop(station_id, None)
        if closing:
            await self._close(closing)

    async def _still_available(self, station_id: str, evse_id: int) -> bool:
        """Is the EVSE's connector still Available as stored (another process
        may have served the station meanwhile)?"""
        statuses = [
            c for c in await self._state.list_connectors(station_id) if c.evse_id == evse_id
        ]
        return bool(statuses) and all(c.status == "Available" for c in statuses)

    async def _silent_since(self, tx: Transaction, watch: _Watch) -> bool:
        """No message of the session since the watch began: none through this
        process, and no meter values stamped after it (through any)."""
        if tx.transaction_id in watch.spoke:
            return False
        samples = await self._transactions.list_meter_samples(tx.station_id, tx.transaction_id)
        return all(s.timestamp <= watch.since for s in samples)

    def _session_spoke(self, station_id: str, transaction_id: str) -> None:
        """A message of the session: the watches over its station do not close it."""
        rebooted = self._rebooted.get(station_id)
        if rebooted is not None:
            rebooted.spoke.add(transaction_id)
        for watch in self._available.get(station_id, {}).values():
            watch.spoke.add(transaction_id)

    async def _close(self, closed: list[tuple[list[WriteOp], Transaction]]) -> None:
        await self._writes.commit([op for ops, _ in closed for op in ops])
        self._abandoned([tx for _, tx in closed])

    async def _abandon(
        self,
        tx: Transaction,
        reason: str,
        at: datetime,
        closing_register: tuple[datetime, float] | None = None,
    ) -> tuple[list[WriteOp], Transaction]:
        """The ops closing a session the station never stopped, and the session
        closed: settled on its own readings as any stop without a meter stop
        (the last reading, ``meter_stop_missing``; none: ``no_meter_readings``),
        reported ended once, its TxProfiles gone."""
        stored = await self._transactions.list_meter_samples(tx.station_id, tx.transaction_id)
        registers = [(s.timestamp, s.value) for s in stored if s.is_energy_register()]
        if closing_register is not None:
            # The next session's start reads the same register: the last reading of this one.
            registers.append(closing_register)
        ended_at = max(at, tx.started_at)
        settled = settle_energy((tx.started_at, tx.meter_start_wh), (ended_at, None), registers)
        closed = replace(
            tx,
            meter_stop_wh=None,
            energy_wh=settled.energy_wh,
            ended_at=ended_at,
            stop_reason=_ABANDON_REASONS[reason],
            anomalies=(*tx.anomalies, reason, *settled.anomalies),
            updated_at=self._clock(),
        )
        ops: list[WriteOp] = [TransactionChanged(closed), self._ended_event(closed)]
        ops += await self._tx_profile_ops(closed, unnamed=False)
        return ops, closed

    def _abandoned(self, closed: list[Transaction]) -> None:
        """After the commit: count and log each closed session, update the cache."""
        for tx in closed:
            reason = next(a for a in tx.anomalies if a in ABANDONED)
            label = reason.removeprefix("abandoned_")
            metrics.TRANSACTIONS_ABANDONED.labels(tx.ocpp_version, label).inc()
            log.info(
                "transaction_abandoned",
                station_id=tx.station_id,
                transaction_id=tx.transaction_id,
                reason=reason,
                energy_wh=tx.energy_wh,
            )
            known = self._known.get((tx.station_id, tx.transaction_id))
            if known is not None:
                known.transaction = tx

    async def _tx_profile_ops(self, tx: Transaction, *, unnamed: bool = True) -> list[WriteOp]:
        """A TxProfile expires with its session (both specs): the ones the CSMS
        holds for it leave its view of the station. One read per session end.
        ``unnamed`` False: only those naming it (an unnamed one on the EVSE may
        be the next session's, from its remote start)."""
        profiles = await self._state.list_charging_profiles(tx.station_id)
        return [
            ChargingProfilesCleared(
                tx.station_id,
                ChargingProfileCriteria(
                    profile_id=p.profile_id, evse_id=p.evse_id, purpose=TX_PROFILE
                ),
            )
            for p in profiles
            if _expires_with(p, tx, unnamed=unnamed)
        ]

    async def _new_number(self, station_id: str) -> int:
        # A number a station used for a session we never assigned (an orphan
        # stop) must not be handed out again to that station.
        while True:
            number = await self._transactions.next_transaction_number()
            if await self._transactions.find_transaction(station_id, str(number)) is None:
                return number

    async def record_meter_values(
        self,
        station_id: str,
        ocpp_version: str,
        transaction_id: str | None,
        evse_id: int,
        samples: tuple[MeterSample, ...],
        reply: Reply[None] | None = None,
    ) -> None:
        if transaction_id is not None:
            self._session_spoke(station_id, transaction_id)
        unit = self._meter_ops(station_id, ocpp_version, transaction_id, evse_id, samples)
        if reply is not None:
            unit.append(reply.answered(None))
        await self._writes.commit(unit)

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

    async def stop(self, req: StopRequest, reply: Reply[StopOutcome] | None = None) -> StopOutcome:
        """End a session. A repeated stop is answered and changes nothing; a
        stop of a session never seen is kept from what it carries, flagged, and
        reaches billing (transaction.ended) only with its own energy readings."""
        info = None
        if req.id_token is not None:
            info = await self._authorization.authorize(req.id_token)
        tx = await self._transactions.find_transaction(req.station_id, req.transaction_id)
        if tx is not None and tx.ended_at is not None:
            if _stop_after_abandon(tx):
                return await self._stopped_after_abandon(tx, req, info, reply)
            await self._answer_repeat(reply)
            return StopOutcome(tx, info, already_ended=True)
        unit: list[WriteOp] = []
        anomalies: list[str] = []
        registers: list[tuple[datetime, float]] = []
        tx_is_known = tx is not None
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
        # Also for a session never seen started: MeterValues may have named it.
        stored = await self._transactions.list_meter_samples(tx.station_id, tx.transaction_id)
        registers = [(s.timestamp, s.value) for s in stored if s.is_energy_register()]
        if req.samples:
            unit.extend(
                self._meter_ops(
                    req.station_id, req.ocpp_version, tx.transaction_id, tx.evse_id, req.samples
                )
            )
            registers.extend((s.timestamp, s.value) for s in req.samples if s.is_energy_register())
        settled = settle_energy(
            (tx.started_at, tx.meter_start_wh), (req.ended_at, req.meter_stop_wh), registers
        )
        ended = replace(
            tx,
            meter_stop_wh=req.meter_stop_wh,
            energy_wh=settled.energy_wh,
            ended_at=req.ended_at,
            stop_reason=req.reason or DEFAULT_STOP_REASON,
            id_token=tx.id_token or req.id_token,
            anomalies=tuple(anomalies) + settled.anomalies,
            updated_at=self._clock(),
        )
        unit.append(TransactionChanged(ended))
        billable = tx_is_known or _billable_orphan(ended)
        if billable:
            unit.append(self._ended_event(ended))
        unit += await self._tx_profile_ops(ended)
        outcome = StopOutcome(ended, info, already_ended=False)
        if reply is not None:
            unit.append(reply.answered(outcome))
        await self._writes.commit(unit)
        if not tx_is_known:
            _orphan_stopped(ended, billable)
        return outcome

    async def _stopped_after_abandon(
        self,
        tx: Transaction,
        req: StopRequest,
        info: IdTokenInfo | None,
        reply: Reply[StopOutcome] | None,
    ) -> StopOutcome:
        """The station's stop of a session the CSMS closed as abandoned: answered
        as any stop, its readings kept, the session flagged; it was reported
        ended once already, so no second transaction.ended."""
        flagged = replace(
            tx,
            anomalies=(*tx.anomalies, STOPPED_AFTER_ABANDONED),
            updated_at=self._clock(),
        )
        unit: list[WriteOp] = [TransactionChanged(flagged)]
        if req.samples:
            unit.extend(
                self._meter_ops(
                    req.station_id, req.ocpp_version, tx.transaction_id, tx.evse_id, req.samples
                )
            )
        outcome = StopOutcome(flagged, info, already_ended=True)
        if reply is not None:
            unit.append(reply.answered(outcome))
        await self._writes.commit(unit)
        _late_stop(flagged, req.meter_stop_wh)
        return outcome

    async def transaction_event(
        self,
        req: TransactionEventRequest,
        reply: Reply[TransactionEventOutcome] | None = None,
    ) -> TransactionEventOutcome:
        """Apply a 2.0.1 TransactionEvent.

        The first event seen of a transaction starts it, whatever its type
        (an Updated or Ended after a lost or late Started). A seqNo seen before
        is answered and ignored. Ended settles the energy from the first and
        last energy register readings; seqNo gaps and out-of-order replays are
        flagged as anomalies, never silently billed.
        """
        info = None
        if req.id_token is not None:
            info = await self._authorization.authorize(
                req.id_token, unknown=AuthorizationStatus.UNKNOWN
            )
        known = await self._load(req.station_id, req.transaction_id)
        if known is not None and req.seq_no in known.seq_nos:
            await self._answer_repeat(reply)
            return TransactionEventOutcome(known.transaction, info, duplicate=True)
        now = self._clock()
        unit: list[WriteOp] = []
        registers = [(s.timestamp, s.value) for s in req.samples if s.is_energy_register()]
        # An Ended as the first event seen of a transaction: its start was never seen.
        orphan = known is None and req.event_type == TransactionEventType.ENDED
        closed: list[tuple[list[WriteOp], Transaction]] = []
        if known is None:
            known, closed = await self._first_seen(req, registers, orphan, unit)
        tx = known.transaction
        if req.samples:
            unit.extend(
                self._meter_ops(
                    req.station_id,
                    req.ocpp_version,
                    tx.transaction_id,
                    req.evse_id or tx.evse_id,
                    req.samples,
                )
            )
        readings = known.registers
        for reading in registers:
            bisect.insort(readings, reading)
        tx = replace(
            tx,
            evse_id=tx.evse_id or req.evse_id or 0,
            connector_id=tx.connector_id or req.connector_id or 0,
            id_token=tx.id_token or req.id_token,
            charging_state=req.charging_state or tx.charging_state,
            seq_no=max(req.seq_no, tx.seq_no if tx.seq_no is not None else -1),
            started_at=min(tx.started_at, req.timestamp),
            meter_start_wh=readings[0][1] if readings else tx.meter_start_wh,
            last_meter_wh=readings[-1][1] if readings else tx.last_meter_wh,
            updated_at=now,
            id_token_status=tx.id_token_status if info is None else info.status.value,
            remote_start_id=(
                tx.remote_start_id if tx.remote_start_id is not None else req.remote_start_id
            ),
        )
        self._session_spoke(tx.station_id, tx.transaction_id)
        late_stop = req.event_type == TransactionEventType.ENDED and _stop_after_abandon(tx)
        tx, billable = await self._applied(tx, req, known, orphan, late_stop, unit)
        unit.append(
            TransactionEventRecorded(
                req.station_id,
                req.transaction_id,
                req.seq_no,
                req.event_type,
                req.trigger_reason,
                req.timestamp,
                req.offline,
            )
        )
        outcome = TransactionEventOutcome(tx, info, duplicate=False)
        if reply is not None:
            unit.append(reply.answered(outcome))
        try:
            await self._writes.commit(unit)
        except BaseException:
            # Its readings went into the cached registers: read them again next time.
            self._known.pop((req.station_id, req.transaction_id), None)
            raise
        if orphan:
            _orphan_stopped(tx, billable)
        if late_stop:
            _late_stop(tx, tx.last_meter_wh)
        self._abandoned([old for _, old in closed])
        known.transaction = tx
        known.seq_nos.add(req.seq_no)
        return outcome

    async def _applied(
        self,
        tx: Transaction,
        req: TransactionEventRequest,
        known: _Known,
        orphan: bool,
        late_stop: bool,
        unit: list[WriteOp],
    ) -> tuple[Transaction, bool]:
        """The session after the event (its ops appended to ``unit``), and
        whether it is billable: an Ended settles it and reports it ended once."""
        if req.event_type == TransactionEventType.ENDED and tx.ended_at is None:
            tx = self._settle(tx, req, known.seq_nos | {req.seq_no}, known.registers)
            unit.append(TransactionChanged(tx))
            billable = not orphan or _billable_orphan(tx)
            if orphan and billable:
                unit.append(self._started_event(tx))
            if billable:
                unit.append(self._ended_event(tx))
            unit += await self._tx_profile_ops(tx)
            return tx, billable
        if late_stop:
            tx = replace(tx, anomalies=(*tx.anomalies, STOPPED_AFTER_ABANDONED))
        unit.append(TransactionChanged(tx))
        if req.event_type == TransactionEventType.UPDATED:
            unit.append(
                report(
                    self._clock,
                    EventType.TRANSACTION_UPDATED,
                    tx.station_id,
                    tx.ocpp_version,
                    req.timestamp,
                    catalog.transaction_updated(tx, req.trigger_reason),
                )
            )
        return tx, True

    async def _first_seen(
        self,
        req: TransactionEventRequest,
        registers: list[tuple[datetime, float]],
        orphan: bool,
        unit: list[WriteOp],
    ) -> tuple[_Known, list[tuple[list[WriteOp], Transaction]]]:
        """Book a transaction from its first event seen (ops appended to ``unit``);
        a new session on an EVSE ends any other open there (the closed ones returned)."""
        first = min(registers, default=None)
        # A new session closes the older ones on its EVSE; an orphan event (an
        # Ended or Updated of a session never seen started) closes nothing.
        closed = (
            []
            if orphan
            else [
                await self._abandon(old, Abandoned.SUPERSEDED, req.timestamp, first)
                for old in await self._open_on(req.station_id, req.evse_id or 0)
                if old.transaction_id != req.transaction_id and old.started_at < req.timestamp
            ]
        )
        for ops, _ in closed:
            unit.extend(ops)
        tx = Transaction(
            station_id=req.station_id,
            transaction_id=req.transaction_id,
            evse_id=req.evse_id or 0,
            connector_id=req.connector_id or (1 if req.evse_id else 0),
            id_token=req.id_token,
            meter_start_wh=first[1] if first else None,
            started_at=req.timestamp,
            ocpp_version=req.ocpp_version,
            anomalies=("unknown_transaction",) if orphan else (),
            updated_at=self._clock(),
            remote_start_id=req.remote_start_id,
        )
        unit.append(TransactionStarted(tx))
        if not orphan:
            unit.append(self._started_event(tx))
        return _Known(tx, set(), []), closed

    async def _answer_repeat(self, reply: Reply[Any] | None) -> None:
        """Raise AlreadyAnsweredError with the stored answer to the CALL in hand, if any.

        Only on the (rare) path of a repeat: one read, no write."""
        if reply is None:
            return
        stored = await self._answers.find_call_answer(reply.station_id, reply.call.action)
        if stored is not None and reply.answers(stored):
            raise AlreadyAnsweredError(stored.station_id, stored.action, stored.answer)

    def _ended_event(self, tx: Transaction) -> WriteOp:
        return report(
            self._clock,
            EventType.TRANSACTION_ENDED,
            tx.station_id,
            tx.ocpp_version,
            tx.ended_at,
            catalog.transaction_ended(tx),
        )

    def _started_event(self, tx: Transaction) -> WriteOp:
        return report(
            self._clock,
            EventType.TRANSACTION_STARTED,
            tx.station_id,
            tx.ocpp_version,
            tx.started_at,
            catalog.transaction_started(tx),
        )

    def _settle(
        self,
        tx: Transaction,
        req: TransactionEventRequest,
        seq_nos: set[int],
        readings: list[tuple[datetime, float]],
    ) -> Transaction:
        first = readings[0] if readings else (tx.started_at, None)
        last = readings[-1] if readings else (req.timestamp, None)
        settled = settle_energy(first, last, readings)
        anomalies = list(settled.anomalies)
        # Stations number a transaction's events without holes; a hole means
        # a message was lost (or is still queued offline) when it ended.
        if len(seq_nos) != max(seq_nos) - min(seq_nos) + 1:
            anomalies.append("seq_no_gap")
        return replace(
            tx,
            meter_stop_wh=last[1],
            energy_wh=settled.energy_wh,
            ended_at=req.timestamp,
            stop_reason=req.stopped_reason or DEFAULT_STOP_REASON,
            anomalies=tx.anomalies + tuple(anomalies),
        )

    async def _load(self, station_id: str, transaction_id: str) -> _Known | None:
        key = (station_id, transaction_id)
        known = self._known.get(key)
        if known is not None:
            return known
        tx = await self._transactions.find_transaction(station_id, transaction_id)
        if tx is None:
            return None
        seq_nos = await self._transactions.list_transaction_seq_nos(station_id, transaction_id)
        samples = await self._transactions.list_meter_samples(station_id, transaction_id)
        registers = sorted((s.timestamp, s.value) for s in samples if s.is_energy_register())
        known = self._known[key] = _Known(tx, seq_nos, registers)
        if len(self._known) > MAX_KNOWN_TRANSACTIONS:
            del self._known[next(iter(self._known))]
        return known


def _billable_orphan(ended: Transaction) -> bool:
    """A stop of a session never seen started goes to billing only when its own
    energy register readings bill a positive energy: a stranger's stop with a
    meterStop alone proves nothing (docs/billing.md)."""
    return (ended.energy_wh or 0) > 0


def _orphan_stopped(ended: Transaction, billable: bool) -> None:
    # Info, not warning: a confused station may send hundreds; the counter alarms.
    outcome = "billed" if billable else "ignored"
    metrics.UNKNOWN_TRANSACTION_STOPS.labels(ended.ocpp_version, outcome).inc()
    log.info(
        "unknown_transaction_stopped",
        station_id=ended.station_id,
        transaction_id=ended.transaction_id,
        outcome=outcome,
        energy_wh=ended.energy_wh,
    )


def _stop_after_abandon(tx: Transaction) -> bool:
    """Is a stop of ``tx`` the first to come after the CSMS closed it as abandoned?"""
    return (
        tx.ended_at is not None
        and any(a in ABANDONED for a in tx.anomalies)
        and STOPPED_AFTER_ABANDONED not in tx.anomalies
    )


def _late_stop(tx: Transaction, meter_stop_wh: float | None) -> None:
    # The station's own figure, for an operator who reconciles the bill by hand.
    log.info(
        "abandoned_transaction_stopped",
        station_id=tx.station_id,
        transaction_id=tx.transaction_id,
        energy_wh=tx.energy_wh,
        meter_start_wh=tx.meter_start_wh,
        station_meter_stop_wh=meter_stop_wh,
    )


def _expires_with(profile: ChargingProfile, tx: Transaction, *, unnamed: bool = True) -> bool:
    """A TxProfile naming the session, or (``unnamed``) one for its EVSE naming none."""
    if profile.purpose != TX_PROFILE:
        return False
    named = profile.profile.get("transactionId")
    if named is not None:
        return str(named) == tx.transaction_id
    return unnamed and tx.evse_id > 0 and profile.evse_id == tx.evse_id
