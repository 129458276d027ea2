"""TransactionService on the in-memory storage: sessions booked exactly once,
settled from the station's readings, anomalies kept on the stored transaction."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from csms.adapters.storage.memory import MemoryStorage
from csms.core.domain import (
    AuthorizationStatus,
    ChargingProfile,
    ConnectorStatus,
    IdToken,
    MeterSample,
    Transaction,
)
from csms.core.errors import StorageUnavailableError
from csms.core.events import EventType
from csms.core.ports import ChargingProfileSet
from csms.services import Services
from csms.services.transactions import (
    ABANDON_AFTER,
    StartRequest,
    StopRequest,
    TransactionEventRequest,
    TransactionEventType,
)
from tests.unit.services_fixture import T0, FakeClock, build_services


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def services(storage: MemoryStorage, clock: FakeClock) -> Services:
    return build_services(storage, clock)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def register(wh: float, minutes: float) -> MeterSample:
    return MeterSample(at(minutes), "Energy.Active.Import.Register", wh, "Wh", None, None, None)


def start_16(meter_start_wh: float = 1000.0, token: str | None = "TAG-1") -> StartRequest:
    return StartRequest("CP-1", "1.6", 1, 1, token, meter_start_wh, at(0))


def stop_16(transaction_id: str, meter_stop_wh: float = 8000.0) -> StopRequest:
    return StopRequest("CP-1", "1.6", transaction_id, meter_stop_wh, at(60), "Local", None)


def event_201(
    event_type: str, seq_no: int, *samples: MeterSample, minutes: float = 0
) -> TransactionEventRequest:
    return TransactionEventRequest(
        "CP-2",
        "2.0.1",
        event_type,
        "TX-9",
        seq_no,
        at(minutes),
        "MeterValuePeriodic",
        evse_id=1,
        connector_id=1,
        samples=samples,
    )


async def event_types(storage: MemoryStorage) -> list[str]:
    return [row.event.type for row in await storage.outbox_pending(100)]


class TestStartAndStop:
    async def test_a_resent_start_books_one_session(
        self, services: Services, storage: MemoryStorage
    ) -> None:
        """A StartTransaction sent twice gets the same transaction id, stored once."""
        first = await services.transactions.start(start_16())
        again = await services.transactions.start(start_16())
        assert first.created
        assert not again.created
        assert again.transaction.transaction_id == first.transaction.transaction_id
        assert await storage.count_active_transactions() == 1
        assert await event_types(storage) == [EventType.TRANSACTION_STARTED]

    async def test_stop_settles_energy_and_a_repeat_changes_nothing(
        self, services: Services, storage: MemoryStorage
    ) -> None:
        """meterStop - meterStart is billed once; a repeated stop is answered as already ended."""
        started = await services.transactions.start(start_16())
        tx_id = started.transaction.transaction_id
        stopped = await services.transactions.stop(stop_16(tx_id))
        repeated = await services.transactions.stop(stop_16(tx_id, meter_stop_wh=9999.0))
        stored = await storage.find_transaction("CP-1", tx_id)
        assert stored is not None
        assert stored.energy_wh == 7000.0
        assert stored.ended_at == at(60)
        assert not stopped.already_ended
        assert repeated.already_ended
        ended = [e for e in await event_types(storage) if e == EventType.TRANSACTION_ENDED]
        assert len(ended) == 1

    async def test_stop_of_an_unknown_session_is_booked_and_flagged(
        self, services: Services, storage: MemoryStorage
    ) -> None:
        """A stop the CSMS never saw start is stored, with the unknown_transaction anomaly."""
        await services.transactions.stop(stop_16("4242"))
        stored = await storage.find_transaction("CP-1", "4242")
        assert stored is not None
        assert stored.ended_at == at(60)
        assert "unknown_transaction" in stored.anomalies

    async def test_start_answers_the_registry_verdict_on_the_token(
        self, services: Services, storage: MemoryStorage
    ) -> None:
        """A blocked token's start is still booked, and answered Blocked."""
        await storage.put_id_token(IdToken("TAG-B", AuthorizationStatus.BLOCKED))
        outcome = await services.transactions.start(start_16(token="TAG-B"))
        assert outcome.id_token_info is not None
        assert outcome.id_token_info.status == AuthorizationStatus.BLOCKED
        assert await storage.count_active_transactions() == 1


class TestTransactionEvents:
    async def test_a_session_is_booked_once_and_settled_from_registers(
        self, services: Services, storage: MemoryStorage
    ) -> None:
        """Started, a repeated Updated and Ended store one transaction billed last - first."""
        tx = services.transactions
        await tx.transaction_event(event_201(TransactionEventType.STARTED, 0, register(500, 0)))
        update = event_201(TransactionEventType.UPDATED, 1, register(2500, 30), minutes=30)
        assert not (await tx.transaction_event(update)).duplicate
        assert (await tx.transaction_event(update)).duplicate
        await tx.transaction_event(
            event_201(TransactionEventType.ENDED, 2, register(4500, 60), minutes=60)
        )
        stored = await storage.find_transaction("CP-2", "TX-9")
        assert stored is not None
        assert stored.energy_wh == 4000.0
        assert stored.ended_at == at(60)
        assert stored.anomalies == ()
        assert await storage.list_transaction_seq_nos("CP-2", "TX-9") == {0, 1, 2}
        assert (await event_types(storage)).count(EventType.TRANSACTION_ENDED) == 1

    async def test_a_seq_no_gap_reaches_the_stored_transaction(
        self, services: Services, storage: MemoryStorage
    ) -> None:
        """An Ended after a lost event is settled and flagged seq_no_gap."""
        tx = services.transactions
        await tx.transaction_event(event_201(TransactionEventType.STARTED, 0, register(500, 0)))
        await tx.transaction_event(
            event_201(TransactionEventType.ENDED, 2, register(1500, 60), minutes=60)
        )
        stored = await storage.find_transaction("CP-2", "TX-9")
        assert stored is not None
        assert stored.energy_wh == 1000.0
        assert "seq_no_gap" in stored.anomalies

    async def test_a_register_going_backwards_reaches_the_stored_transaction(
        self, services: Services, storage: MemoryStorage
    ) -> None:
        """A register that falls during a session is billed as read and flagged so."""
        tx = services.transactions
        await tx.transaction_event(event_201(TransactionEventType.STARTED, 0, register(5000, 0)))
        await tx.transaction_event(
            event_201(TransactionEventType.UPDATED, 1, register(6000, 30), minutes=30)
        )
        await tx.transaction_event(
            event_201(TransactionEventType.ENDED, 2, register(5500, 60), minutes=60)
        )
        stored = await storage.find_transaction("CP-2", "TX-9")
        assert stored is not None
        assert stored.energy_wh == 500.0
        assert stored.anomalies == ("register_went_backwards",)

    async def test_another_instance_resumes_a_session_from_storage(
        self, storage: MemoryStorage, clock: FakeClock
    ) -> None:
        """A second service (a restarted CSMS) knows the seqNos stored by the first."""
        first = build_services(storage, clock).transactions
        await first.transaction_event(event_201(TransactionEventType.STARTED, 0, register(0, 0)))
        second = build_services(storage, clock).transactions
        again = await second.transaction_event(
            event_201(TransactionEventType.STARTED, 0, register(0, 0))
        )
        assert again.duplicate
        assert await storage.count_active_transactions() == 1


def available(minutes: float, evse_id: int = 1) -> ConnectorStatus:
    return ConnectorStatus(
        "CP-1", evse_id, 1, "Available", "NoError", None, None, None, at(minutes)
    )


async def ended_ids(storage: MemoryStorage) -> list[str]:
    rows = await storage.outbox_pending(100)
    return [
        r.event.data["transaction_id"] for r in rows if r.event.type == EventType.TRANSACTION_ENDED
    ]


class TestAbandonedSessions:
    async def test_a_new_start_on_the_evse_closes_the_open_session(
        self, services: Services, storage: MemoryStorage
    ) -> None:
        """The open session is ended abandoned_superseded, settled on its readings."""
        first = (await services.transactions.start(start_16())).transaction
        await services.transactions.record_meter_values(
            "CP-1", "1.6", first.transaction_id, 1, (register(1600, 10),)
        )
        second = StartRequest("CP-1", "1.6", 1, 1, "TAG-2", 1600.0, at(20))
        await services.transactions.start(second)
        closed = await storage.find_transaction("CP-1", first.transaction_id)
        assert closed is not None
        assert (closed.ended_at, closed.energy_wh, closed.stop_reason) == (at(20), 600.0, "Other")
        assert closed.anomalies == ("abandoned_superseded", "meter_stop_missing")
        assert await ended_ids(storage) == [first.transaction_id]
        assert await storage.count_active_transactions() == 1

    async def test_a_late_stop_of_a_closed_session_is_flagged_not_billed(
        self, services: Services, storage: MemoryStorage
    ) -> None:
        """Its stop is answered as a stop, flagged stopped_after_abandoned once, no second end."""
        first = (await services.transactions.start(start_16())).transaction
        await services.transactions.start(StartRequest("CP-1", "1.6", 1, 1, "T", 0.0, at(5)))
        late = await services.transactions.stop(stop_16(first.transaction_id))
        again = await services.transactions.stop(stop_16(first.transaction_id))
        assert late.already_ended
        assert again.already_ended
        stored = await storage.find_transaction("CP-1", first.transaction_id)
        assert stored is not None
        assert stored.anomalies.count("stopped_after_abandoned") == 1
        assert stored.energy_wh == 0.0
        assert await ended_ids(storage) == [first.transaction_id]

    async def test_a_reboot_closes_refused_sessions_after_the_bound(
        self, services: Services, storage: MemoryStorage, clock: FakeClock
    ) -> None:
        """Only a session whose token was not Accepted, and only once the bound passed."""
        await storage.put_id_token(IdToken("GOOD", AuthorizationStatus.ACCEPTED))
        refused = (await services.transactions.start(start_16(token="BAD"))).transaction
        accepted = StartRequest("CP-1", "1.6", 2, 1, "GOOD", 0.0, at(0))
        kept = (await services.transactions.start(accepted)).transaction
        services.transactions.station_booted("CP-1")
        clock.advance(ABANDON_AFTER.total_seconds() - 1)
        await services.transactions.settle_watches("CP-1")
        assert await storage.count_active_transactions() == 2
        clock.advance(1)
        await services.transactions.settle_watches("CP-1")
        closed = await storage.find_transaction("CP-1", refused.transaction_id)
        assert closed is not None
        assert "abandoned_after_reboot" in closed.anomalies
        assert closed.ended_at == clock.now - ABANDON_AFTER
        open_ = await storage.find_transaction("CP-1", kept.transaction_id)
        assert open_ is not None
        assert open_.is_active

    async def test_a_session_heard_from_after_the_reboot_is_kept(
        self, services: Services, storage: MemoryStorage, clock: FakeClock
    ) -> None:
        """Meter values of a refused session after the boot: it is alive, not closed."""
        refused = (await services.transactions.start(start_16(token="BAD"))).transaction
        services.transactions.station_booted("CP-1")
        await services.transactions.record_meter_values(
            "CP-1", "1.6", refused.transaction_id, 1, (register(1200, 1),)
        )
        clock.advance(ABANDON_AFTER.total_seconds())
        await services.transactions.settle_watches("CP-1")
        assert await storage.count_active_transactions() == 1

    async def test_a_connector_available_for_the_bound_closes_its_session(
        self, services: Services, storage: MemoryStorage, clock: FakeClock
    ) -> None:
        """Ended abandoned_available, at the time the connector became Available."""
        tx = (await services.transactions.start(start_16())).transaction
        await services.transactions.connector_reported(available(30))
        clock.advance(ABANDON_AFTER.total_seconds())
        await services.transactions.settle_watches("CP-1")
        # The connector state is the stored one (StationService wrote it in the same CALL).
        assert await storage.count_active_transactions() == 1
        await services.stations.status_changed(available(30), "1.6", None)
        await services.transactions.connector_reported(available(30))
        clock.advance(ABANDON_AFTER.total_seconds())
        await services.transactions.settle_watches("CP-1")
        closed = await storage.find_transaction("CP-1", tx.transaction_id)
        assert closed is not None
        assert closed.ended_at == at(30)
        assert closed.anomalies == ("abandoned_available", "no_meter_readings")

    async def test_meter_values_after_available_keep_the_session(
        self, services: Services, storage: MemoryStorage, clock: FakeClock
    ) -> None:
        """A session that sends meter values after its connector said Available is live."""
        tx = (await services.transactions.start(start_16())).transaction
        await services.stations.status_changed(available(30), "1.6", None)
        await services.transactions.connector_reported(available(30))
        await services.transactions.record_meter_values(
            "CP-1", "1.6", tx.transaction_id, 1, (register(1500, 31),)
        )
        clock.advance(ABANDON_AFTER.total_seconds())
        await services.transactions.settle_watches("CP-1")
        assert await storage.count_active_transactions() == 1


class TestAbandonRulesHold:
    """What the second review found (each a wrong bill without its rule)."""

    async def test_a_session_two_rules_close_at_once_ends_once(
        self, services: Services, storage: MemoryStorage, clock: FakeClock
    ) -> None:
        """A refused session; the station reboots and reports Available: both
        watches end together, one transaction.ended."""
        refused = (await services.transactions.start(start_16(token="BAD"))).transaction
        services.transactions.station_booted("CP-1")
        await services.stations.status_changed(available(1), "1.6", None)
        await services.transactions.connector_reported(available(1))
        clock.advance(ABANDON_AFTER.total_seconds() + 60)
        await services.transactions.settle_watches("CP-1")
        assert await ended_ids(storage) == [refused.transaction_id]

    async def test_an_older_start_or_an_orphan_end_closes_no_live_session(
        self, services: Services, storage: MemoryStorage
    ) -> None:
        """A late StartTransaction of a session begun before the open one, or a
        2.0.1 Ended of a session never seen, leaves the live session open."""
        live = StartRequest("CP-1", "1.6", 1, 1, "TAG-1", 1000.0, at(20))
        await services.transactions.start(live)
        await services.transactions.start(StartRequest("CP-1", "1.6", 1, 1, "T", 500.0, at(10)))
        assert await storage.count_active_transactions() == 2
        tx = services.transactions
        await tx.transaction_event(event_201(TransactionEventType.STARTED, 0, register(0, 0)))
        orphan = replace(
            event_201(TransactionEventType.ENDED, 0, minutes=5), transaction_id="TX-OLD"
        )
        await tx.transaction_event(orphan)
        still = await storage.find_transaction("CP-2", "TX-9")
        assert still is not None
        assert still.is_active

    async def test_a_superseded_session_is_billed_up_to_the_next_start(
        self, services: Services, storage: MemoryStorage
    ) -> None:
        """No meter values (MeterValueSampleInterval 0): the next session's
        meterStart reads the same register, so the closed one gets 4,000 Wh."""
        first = (await services.transactions.start(start_16(meter_start_wh=1000.0))).transaction
        await services.transactions.start(StartRequest("CP-1", "1.6", 1, 1, "T", 5000.0, at(20)))
        closed = await storage.find_transaction("CP-1", first.transaction_id)
        assert closed is not None
        assert closed.energy_wh == 4000.0

    async def test_a_session_begun_after_the_boot_is_not_closed_by_it(
        self, services: Services, storage: MemoryStorage, clock: FakeClock
    ) -> None:
        clock.now = at(0)
        services.transactions.station_booted("CP-1")
        late = StartRequest("CP-1", "1.6", 1, 1, "BAD", 0.0, at(5))
        await services.transactions.start(late)
        clock.advance(ABANDON_AFTER.total_seconds() + 600)
        await services.transactions.settle_watches("CP-1")
        assert await storage.count_active_transactions() == 1

    async def test_a_2_0_1_session_is_not_closed_by_available(
        self, services: Services, storage: MemoryStorage, clock: FakeClock
    ) -> None:
        """2.0.1 may go on unplugged (TxStopPoint without EVConnected)."""
        tx = services.transactions
        await tx.transaction_event(event_201(TransactionEventType.STARTED, 0, register(0, 0)))
        status = replace(available(1), station_id="CP-2")
        await services.stations.status_changed(status, "2.0.1", None)
        await tx.connector_reported(status)
        clock.advance(ABANDON_AFTER.total_seconds() + 60)
        await tx.settle_watches("CP-2")
        assert await storage.count_active_transactions() == 1

    async def test_a_database_failure_during_the_check_keeps_the_watch(
        self, services: Services, storage: MemoryStorage, clock: FakeClock
    ) -> None:
        """The check never fails the station's Heartbeat; it is tried again at
        the next one and then closes the session."""
        refused = (await services.transactions.start(start_16(token="BAD"))).transaction
        services.transactions.station_booted("CP-1")
        clock.advance(ABANDON_AFTER.total_seconds() + 1)
        real = storage.list_open_transactions

        async def database_down(station_id: str, evse_id: int | None = None) -> list[Transaction]:
            raise StorageUnavailableError("cannot read: connection refused")

        storage.list_open_transactions = database_down  # type: ignore[method-assign]
        await services.transactions.settle_watches("CP-1")  # does not raise
        storage.list_open_transactions = real  # type: ignore[method-assign]
        assert await storage.count_active_transactions() == 1
        await services.transactions.settle_watches("CP-1")
        assert await ended_ids(storage) == [refused.transaction_id]

    async def test_a_superseded_close_keeps_the_next_sessions_unnamed_tx_profile(
        self, services: Services, storage: MemoryStorage
    ) -> None:
        """The remote start's TxProfile (naming no transaction yet) is the new
        session's, not the closed one's."""
        await services.transactions.start(StartRequest("CP-2", "1.6", 1, 1, "A", 0.0, at(0)))
        await storage.commit([ChargingProfileSet(profile(7, 1, "TxProfile", None))])
        await services.transactions.start(StartRequest("CP-2", "1.6", 1, 1, "B", 10.0, at(9)))
        assert [p.profile_id for p in await storage.list_charging_profiles("CP-2")] == [7]


def profile(
    profile_id: int, evse_id: int, purpose: str, transaction_id: str | None
) -> ChargingProfile:
    body: dict[str, object] = {"id": profile_id, "chargingProfilePurpose": purpose}
    if transaction_id is not None:
        body["transactionId"] = transaction_id
    return ChargingProfile("CP-2", evse_id, profile_id, 0, purpose, body)


class TestTxProfiles:
    async def test_the_tx_profile_of_a_session_expires_with_it(
        self, services: Services, storage: MemoryStorage
    ) -> None:
        """At the Ended, the session's TxProfile goes; another session's and defaults stay."""
        await storage.commit(
            [
                ChargingProfileSet(profile(1, 1, "TxProfile", "TX-9")),
                ChargingProfileSet(profile(2, 2, "TxProfile", "TX-OTHER")),
                ChargingProfileSet(profile(3, 1, "TxDefaultProfile", None)),
            ]
        )
        tx = services.transactions
        await tx.transaction_event(event_201(TransactionEventType.STARTED, 0, register(0, 0)))
        await tx.transaction_event(event_201(TransactionEventType.ENDED, 1, minutes=5))
        left = await storage.list_charging_profiles("CP-2")
        assert sorted(p.profile_id for p in left) == [2, 3]


class TestRemoteStart:
    async def test_the_remote_start_id_is_kept_and_reported(
        self, services: Services, storage: MemoryStorage
    ) -> None:
        """transactionInfo.remoteStartId is on the stored session and both events."""
        started = replace(
            event_201(TransactionEventType.STARTED, 0, register(0, 0)), remote_start_id=77
        )
        await services.transactions.transaction_event(started)
        await services.transactions.transaction_event(
            event_201(TransactionEventType.ENDED, 1, register(10, 5), minutes=5)
        )
        stored = await storage.find_transaction("CP-2", "TX-9")
        assert stored is not None
        assert stored.remote_start_id == 77
        rows = await storage.outbox_pending(100)
        reported = [
            r.event.data.get("remote_start_id")
            for r in rows
            if r.event.type in (EventType.TRANSACTION_STARTED, EventType.TRANSACTION_ENDED)
        ]
        assert reported == [77, 77]
