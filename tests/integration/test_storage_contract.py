"""The Storage port's contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest

from csms.adapters.storage import migrate, open_storage, parse_database_url
from csms.adapters.storage.migrations import load_migrations
from csms.core.domain import (
    AuthorizationStatus,
    ConnectorStatus,
    IdToken,
    IdTokenType,
    MeterSample,
    Transaction,
)
from csms.core.errors import ConfigurationError, StorageError, StorageUnavailableError
from csms.core.events import Event
from csms.core.ports import (
    UNCHANGED,
    ConnectorStatusChanged,
    EventAppended,
    MeterSamplesRecorded,
    StationBooted,
    StationNotified,
    StationSeen,
    Storage,
    TransactionChanged,
    TransactionEventRecorded,
    TransactionFilter,
    TransactionStarted,
    WriteOp,
)
from tests.integration.polling import poll_until


@pytest.fixture
def storage(any_storage: Storage) -> Storage:
    """The contract holds for the in-memory storage as for the databases."""
    return any_storage


T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
INT32_MAX = 2**31 - 1


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def at_text(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def transaction(
    transaction_id: str = "tx-1", station_id: str = "CP-1", **changes: object
) -> Transaction:
    tx = Transaction(
        station_id=station_id,
        transaction_id=transaction_id,
        evse_id=1,
        connector_id=1,
        id_token="TOKEN-1",
        meter_start_wh=1000.0,
        started_at=T0,
        ocpp_version="2.0.1",
        updated_at=T0,
    )
    return replace(tx, **changes)  # type: ignore[arg-type]


def event(station_id: str = "CP-1", type_: str = "station.connected", **data: object) -> Event:
    return Event.new(type_, station_id, "2.0.1", T0, at(1), dict(data))


def status(connector_id: int = 1, state: str = "Available", evse_id: int = 1) -> ConnectorStatus:
    return ConnectorStatus(
        "CP-1", evse_id, connector_id, state, "NoError", "info", "ACME", "E1", at(5)
    )


def sample(measurand: str = "Energy.Active.Import.Register", value: float = 1234.5) -> MeterSample:
    return MeterSample(at(10), measurand, value, "Wh", "L1", "Sample.Periodic", "Outlet")


def booted(station_id: str = "CP-1", moment: datetime = T0) -> StationBooted:
    return StationBooted(
        station_id,
        "2.0.1",
        "ACME",
        "Model-X",
        "SN-1",
        "1.2.3",
        {"reason": "PowerUp", "chargingStation": {"model": "Model-X"}},
        moment,
    )


async def commit_all(storage: Storage, units: Sequence[Sequence[WriteOp]]) -> list[object]:
    """Commit ``units`` concurrently (so they share batches); results in unit order."""
    return await asyncio.gather(*(storage.commit(unit) for unit in units), return_exceptions=True)


class TestMigrations:
    async def test_migrate_applies_each_migration_once(self, database_url: str) -> None:
        """A first migrate applies every migration; a second finds nothing pending."""
        dialect = parse_database_url(database_url).dialect
        names = [m.name for m in load_migrations(dialect)]
        assert await migrate(database_url) == names
        assert await migrate(database_url) == []

    async def test_concurrent_migrations_apply_each_migration_once(self, database_url: str) -> None:
        """Two migrate runs racing each other apply every migration exactly once."""
        dialect = parse_database_url(database_url).dialect
        first, second = await asyncio.gather(migrate(database_url), migrate(database_url))
        assert sorted(first + second) == [m.name for m in load_migrations(dialect)]

    async def test_open_without_migrate_leaves_schema_alone(self, database_url: str) -> None:
        """open_storage(migrate=False) creates no tables, so reads fail with StorageError."""
        storage = await open_storage(database_url, migrate=False)
        try:
            with pytest.raises(StorageError):
                await storage.list_stations()
        finally:
            await storage.close()

    async def test_meter_samples_stored_before_0007_are_listed_the_same_after_it(
        self, database_url: str
    ) -> None:
        """0007 folds one-row-per-sample into one row per message: the samples a
        database held before it are listed after it unchanged, in order."""
        url = parse_database_url(database_url)
        before = [m for m in load_migrations(url.dialect) if m.version < 7]
        rows = [
            ("CP-1", "7", 1, "2026-01-05T10:00:00.000000+00:00", "Energy.Active.Import.Register",
             1200.5, "Wh", None, "Sample.Periodic", "Outlet"),
            ("CP-1", "7", 1, "2026-01-05T10:00:00.000000+00:00", "Power.Active.Import",
             7000.0, "W", "L1", None, None),
            ("CP-1", "8", 1, "2026-01-05T10:01:00.000000+00:00", "Energy.Active.Import.Register",
             99.0, "Wh", None, None, None),
        ]  # fmt: skip
        insert = (
            "INSERT INTO meter_samples (station_id, transaction_id, evse_id, timestamp,"
            " measurand, value, unit, phase, context, location) VALUES {}"
        )
        if url.dialect == "sqlite":
            with sqlite3.connect(url.location) as db:
                for m in before:
                    db.executescript(m.sql)
                    db.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, '2026-01-01')",
                        (m.version, m.name),
                    )
                db.executemany(insert.format("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"), rows)
        else:
            conn = await asyncpg.connect(url.location)
            try:
                for m in before:
                    await conn.execute(m.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        m.version,
                        m.name,
                    )
                await conn.executemany(
                    insert.format("($1, $2, $3, $4::timestamptz, $5, $6, $7, $8, $9, $10)"),
                    [(*r[:3], datetime.fromisoformat(r[3]), *r[4:]) for r in rows],
                )
            finally:
                await conn.close()
        storage = await open_storage(database_url, migrate=True)
        try:
            listed = await storage.list_meter_samples("CP-1", "7")
            assert await storage.list_meter_samples("CP-1", "8") == [
                MeterSample(at_text(rows[2][3]), rows[2][4], 99.0, "Wh", None, None, None)
            ]
        finally:
            await storage.close()
        assert listed == [
            MeterSample(at_text(r[3]), r[4], r[5], r[6], r[7], r[8], r[9]) for r in rows[:2]
        ]

    def test_dialects_ship_the_same_migrations(self) -> None:
        """SQLite and PostgreSQL carry the same migration versions and names."""
        sqlite = [(m.version, m.name) for m in load_migrations("sqlite")]
        postgres = [(m.version, m.name) for m in load_migrations("postgresql")]
        assert sqlite == postgres
        assert sqlite


class TestStationRegistry:
    async def test_register_creates_station_with_defaults(self, storage: Storage) -> None:
        """A new registration without options has no password and security profile 1."""
        station = await storage.register_station("CP-1", at=T0)
        assert (station.id, station.password_hash, station.security_profile) == ("CP-1", None, 1)
        assert station.registered_at == T0
        assert await storage.find_station("CP-1") == station

    async def test_register_unchanged_keeps_stored_values(self, storage: Storage) -> None:
        """UNCHANGED keeps the stored password hash and profile of an existing station."""
        await storage.register_station("CP-1", password_hash="h1", security_profile=2, at=T0)
        station = await storage.register_station(
            "CP-1", password_hash=UNCHANGED, security_profile=UNCHANGED, at=at(60)
        )
        assert (station.password_hash, station.security_profile) == ("h1", 2)

    async def test_register_updates_given_values_only(self, storage: Storage) -> None:
        """A re-registration changes what it names: None clears the password."""
        await storage.register_station("CP-1", password_hash="h1", security_profile=2, at=T0)
        station = await storage.register_station("CP-1", password_hash=None, at=at(60))
        assert (station.password_hash, station.security_profile) == (None, 2)
        station = await storage.register_station("CP-1", security_profile=3, at=at(90))
        assert (station.password_hash, station.security_profile) == (None, 3)

    async def test_register_keeps_first_registration_time(self, storage: Storage) -> None:
        """registered_at stays the time of the first registration."""
        await storage.register_station("CP-1", at=T0)
        station = await storage.register_station("CP-1", password_hash="h", at=at(3600))
        assert station.registered_at == T0

    async def test_find_unknown_station_returns_none(self, storage: Storage) -> None:
        """find_station of an id never registered is None."""
        assert await storage.find_station("nope") is None

    async def test_concurrent_lookups_each_get_their_own_station(self, storage: Storage) -> None:
        """Many handshakes looking up at once (PostgreSQL answers them with shared
        queries): each gets its station, an unknown id None, a repeated id twice."""
        for n in range(5):
            await storage.register_station(f"CP-{n}", security_profile=1 + n % 3, at=at(n))
        ids = ["CP-3", "nope", "CP-0", "CP-3", "CP-4", "CP-1", "other", "CP-2"] * 10
        found = await asyncio.gather(*(storage.find_station(i) for i in ids))
        for station_id, station in zip(ids, found, strict=True):
            if station_id.startswith("CP-"):
                assert station is not None
                assert station.id == station_id
                assert station.registered_at == at(int(station_id[3:]))
            else:
                assert station is None

    async def test_a_pending_password_waits_until_the_station_logs_in_with_it(
        self, storage: Storage
    ) -> None:
        """Kept per station (a later rotation replaces it), dropped with the
        previous password's retirement and with the station; none for a
        station never registered."""
        await storage.register_station("CP-1", password_hash="h0", at=T0)
        assert await storage.find_pending_password("CP-1") is None
        assert await storage.rotate_station_password("CP-1", "h1")
        assert await storage.set_pending_password("CP-1", "sealed-1")
        assert await storage.set_pending_password("CP-1", "sealed-2")
        assert await storage.find_pending_password("CP-1") == "sealed-2"
        await storage.retire_previous_password("CP-1")
        assert await storage.find_pending_password("CP-1") is None
        assert not await storage.set_pending_password("CP-9", "sealed")
        assert await storage.set_pending_password("CP-1", "sealed-3")
        assert await storage.delete_station("CP-1")
        await storage.register_station("CP-1", at=T0)
        assert await storage.find_pending_password("CP-1") is None

    async def test_the_first_offered_shared_key_is_everyones(self, storage: Storage) -> None:
        """Two processes offering a key at once both get the one stored first."""
        assert await storage.secret("k", "first") == "first"
        assert await storage.secret("k", "second") == "first"
        assert await storage.secret("other", "x") == "x"

    async def test_list_stations_sorted_by_id(self, storage: Storage) -> None:
        """list_stations returns every station ordered by id."""
        for station_id in ("CP-3", "CP-1", "CP-2"):
            await storage.register_station(station_id, at=T0)
        assert [s.id for s in await storage.list_stations()] == ["CP-1", "CP-2", "CP-3"]


class TestIdTokens:
    async def test_put_then_find_round_trips_every_field(self, storage: Storage) -> None:
        """A stored token reads back with status, type, expiry, group and time."""
        token = IdToken(
            "RFID-1", AuthorizationStatus.BLOCKED, IdTokenType.EMAID, at(3600), "G-1", at(1)
        )
        assert await storage.put_id_token(token) == token
        found = await storage.find_id_token("RFID-1")
        assert found == token
        assert found is not None
        assert found.expires_at is not None
        assert found.expires_at.utcoffset() == timedelta(0)

    async def test_put_replaces_existing_token(self, storage: Storage) -> None:
        """Putting a token again replaces every field, clearing the ones now None."""
        await storage.put_id_token(
            IdToken("RFID-1", expires_at=at(60), group_id="G", updated_at=T0)
        )
        replaced = IdToken("RFID-1", AuthorizationStatus.INVALID, IdTokenType.LOCAL, updated_at=T0)
        await storage.put_id_token(replaced)
        assert await storage.find_id_token("RFID-1") == replaced

    async def test_put_without_time_stamps_the_token(self, storage: Storage) -> None:
        """A token put without updated_at is stored with the current time."""
        before = datetime.now(UTC)
        stored = await storage.put_id_token(IdToken("RFID-1"))
        assert stored.updated_at is not None
        assert stored.updated_at >= before
        assert await storage.find_id_token("RFID-1") == stored

    async def test_expired_token_reads_back_as_expired(self, storage: Storage) -> None:
        """An Accepted token whose expiry passed is Expired at a later time."""
        await storage.put_id_token(IdToken("RFID-1", expires_at=at(60), updated_at=T0))
        found = await storage.find_id_token("RFID-1")
        assert found is not None
        assert found.status_at(at(30)) is AuthorizationStatus.ACCEPTED
        assert found.status_at(at(61)) is AuthorizationStatus.EXPIRED

    async def test_find_unknown_token_returns_none(self, storage: Storage) -> None:
        """find_id_token of an unregistered token is None."""
        assert await storage.find_id_token("nope") is None

    async def test_list_tokens_sorted(self, storage: Storage) -> None:
        """list_id_tokens returns every token ordered by value."""
        for value in ("B", "C", "A"):
            await storage.put_id_token(IdToken(value, updated_at=T0))
        assert [t.id_token for t in await storage.list_id_tokens()] == ["A", "B", "C"]


class TestCommittedOps:
    async def test_booted_updates_facts_and_keeps_registration(self, storage: Storage) -> None:
        """StationBooted stores the boot facts without touching password or profile."""
        await storage.register_station("CP-1", password_hash="h", security_profile=2, at=T0)
        await storage.commit([booted(moment=at(10))])
        station = await storage.find_station("CP-1")
        assert station is not None
        assert (station.vendor, station.model, station.serial_number) == ("ACME", "Model-X", "SN-1")
        assert (station.firmware_version, station.ocpp_version) == ("1.2.3", "2.0.1")
        assert station.boot_info == booted().boot_info
        assert (station.last_boot_at, station.last_seen_at) == (at(10), at(10))
        assert (station.password_hash, station.security_profile) == ("h", 2)

    async def test_booted_and_seen_never_create_a_station(self, storage: Storage) -> None:
        """A station deleted while still connected is not created again by its
        next write (which would let anyone connect as it, with no password)."""
        await storage.register_station("CP-D", password_hash="h", security_profile=2, at=at(0))
        assert await storage.delete_station("CP-D")
        await storage.commit([booted("CP-D")])
        await storage.commit([StationSeen("CP-D", "1.6", at(5)), StationSeen("CP-S", "1.6", at(5))])
        assert await storage.list_stations() == []

    @pytest.mark.postgres
    async def test_a_write_racing_a_delete_does_not_bring_the_station_back(
        self, postgres_url: str
    ) -> None:
        """The station's deletion is in flight (its transaction open) when its
        boot and liveness writes arrive: they wait for it, then find no row."""
        storage = await open_storage(postgres_url)
        admin = await asyncpg.connect(postgres_url)
        try:
            await storage.register_station("CP-R", password_hash="h", security_profile=2, at=T0)
            deleting = admin.transaction()
            await deleting.start()
            await admin.execute("DELETE FROM stations WHERE id = 'CP-R'")
            writes = asyncio.gather(
                storage.commit([StationSeen("CP-R", "1.6", at(5))]),
                storage.commit([booted("CP-R")]),
            )
            await asyncio.sleep(0.3)  # both blocked on the deleted row
            await deleting.commit()
            await writes
            assert await storage.find_station("CP-R") is None
        finally:
            await admin.close()
            await storage.close()

    async def test_two_boots_in_one_batch_keep_the_last_boot_and_the_latest_time(
        self, storage: Storage
    ) -> None:
        """The last boot's facts win; last seen is the latest time of both, as it
        would be had they been applied one after the other."""
        await storage.register_station("CP-1", at=T0)
        later = replace(booted(moment=at(20)), firmware_version="2.0")
        await storage.commit([booted(moment=at(30)), later])
        station = await storage.find_station("CP-1")
        assert station is not None
        assert (station.firmware_version, station.last_boot_at) == ("2.0", at(20))
        assert station.last_seen_at == at(30)

    async def test_seen_keeps_the_latest_time(self, storage: Storage) -> None:
        """StationSeen never moves last_seen_at backwards, within or across units."""
        await storage.register_station("CP-1", at=T0)
        await storage.commit(
            [StationSeen("CP-1", "1.6", at(30)), StationSeen("CP-1", "1.6", at(20))]
        )
        await storage.commit([StationSeen("CP-1", "1.6", at(10))])
        station = await storage.find_station("CP-1")
        assert station is not None
        assert station.last_seen_at == at(30)

    async def test_connector_status_upserts_and_lists_in_order(self, storage: Storage) -> None:
        """ConnectorStatusChanged keeps one row per connector, the latest status winning."""
        await storage.commit([ConnectorStatusChanged(status(2)), ConnectorStatusChanged(status(1))])
        await storage.commit([ConnectorStatusChanged(status(1, "Occupied"))])
        await storage.commit([ConnectorStatusChanged(status(0, "Available", evse_id=0))])
        listed = await storage.list_connectors("CP-1")
        assert [(c.evse_id, c.connector_id, c.status) for c in listed] == [
            (0, 0, "Available"),
            (1, 1, "Occupied"),
            (1, 2, "Available"),
        ]
        assert listed[1] == status(1, "Occupied")
        assert await storage.list_connectors("CP-other") == []

    async def test_notifications_kept_and_filtered_by_action(self, storage: Storage) -> None:
        """StationNotified rows read back as sent, in order, optionally by action."""
        first = StationNotified("CP-1", "DataTransfer", {"vendorId": "ACME", "n": [1, 2]}, T0)
        second = StationNotified("CP-1", "FirmwareStatusNotification", {"status": "Idle"}, at(1))
        await storage.commit([first, second])
        assert await storage.list_notifications("CP-1") == [first, second]
        assert await storage.list_notifications("CP-1", "DataTransfer") == [first]
        assert await storage.list_notifications("CP-2") == []

    async def test_empty_unit_is_a_no_op(self, storage: Storage) -> None:
        """Committing an empty unit returns at once and writes nothing."""
        await storage.commit([])
        assert await storage.list_stations() == []


class TestTransactions:
    async def test_start_change_and_read_back(self, storage: Storage) -> None:
        """A started, then changed transaction reads back with every changed field."""
        started = transaction()
        await storage.commit([TransactionStarted(started)])
        assert await storage.find_transaction("CP-1", "tx-1") == started
        ended = replace(
            started,
            meter_stop_wh=5000.5,
            energy_wh=4000.5,
            ended_at=at(3600),
            stop_reason="EVDisconnected",
            charging_state="Idle",
            seq_no=7,
            last_meter_wh=5000.5,
            anomalies=("meter_went_backwards", "late_stop"),
            updated_at=at(3601),
        )
        await storage.commit([TransactionChanged(ended)])
        found = await storage.find_transaction("CP-1", "tx-1")
        assert found == ended
        assert found is not None
        assert not found.is_active

    async def test_start_and_change_in_one_unit(self, storage: Storage) -> None:
        """A unit may start a transaction and change it: the change lands last."""
        changed = transaction(charging_state="Charging", seq_no=1)
        await storage.commit([TransactionChanged(changed), TransactionStarted(transaction())])
        assert await storage.find_transaction("CP-1", "tx-1") == changed

    async def test_several_changes_of_one_row_in_one_batch_land_in_order(
        self, storage: Storage
    ) -> None:
        """Changes of one transaction and one connector in one unit, and in
        units sharing a batch, end as the last of them, as if applied in turn."""
        await storage.commit([TransactionStarted(transaction())])
        charging = transaction(charging_state="Charging", seq_no=1)
        suspended = transaction(charging_state="SuspendedEV", seq_no=2, last_meter_wh=10.5)
        await storage.commit(
            [
                TransactionChanged(charging),
                ConnectorStatusChanged(status(1, "Occupied")),
                TransactionChanged(suspended),
                ConnectorStatusChanged(status(1, "Faulted")),
            ]
        )
        assert await storage.find_transaction("CP-1", "tx-1") == suspended
        assert [c.status for c in await storage.list_connectors("CP-1")] == ["Faulted"]
        states = [transaction(charging_state="Charging", seq_no=n) for n in range(3, 40)]
        results = await commit_all(storage, [[TransactionChanged(tx)] for tx in states])
        assert results == [None] * len(states)
        assert await storage.find_transaction("CP-1", "tx-1") == states[-1]

    async def test_values_read_back_exactly(self, storage: Storage) -> None:
        """Times in any offset with microseconds, fractional and large meter
        readings, nulls in nullable columns and anomalies come back as written."""
        plus2 = timezone(timedelta(hours=2))
        started = transaction(
            "tx-exact",
            id_token=None,
            meter_start_wh=0.1,
            started_at=datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=plus2),
            updated_at=datetime(2024, 5, 1, 12, 0, 0, 1, tzinfo=UTC),
        )
        ended = replace(
            started,
            meter_stop_wh=2_147_483_647.25,
            energy_wh=2_147_483_647.15,
            ended_at=datetime(2024, 5, 1, 13, 30, 0, 999999, tzinfo=UTC),
            stop_reason="EVDisconnected",
            seq_no=None,
            last_meter_wh=1e-3,
            anomalies=("meter_went_backwards",),
        )
        await storage.commit([TransactionStarted(started), TransactionChanged(ended)])
        found = await storage.find_transaction("CP-1", "tx-exact")
        assert found == ended
        assert found is not None
        assert found.started_at == datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)

    async def test_change_of_unknown_transaction_stores_it(self, storage: Storage) -> None:
        """TransactionChanged of a transaction the store lacks still records it."""
        tx = transaction(charging_state="Charging")
        await storage.commit([TransactionChanged(tx)])
        assert await storage.find_transaction("CP-1", "tx-1") == tx

    async def test_duplicate_start_fails(self, storage: Storage) -> None:
        """Starting a transaction id already stored for the station raises StorageError."""
        await storage.commit([TransactionStarted(transaction())])
        with pytest.raises(StorageError):
            await storage.commit([TransactionStarted(transaction())])

    async def test_a_failing_unit_leaves_nothing_of_its_other_ops(self, storage: Storage) -> None:
        """A unit whose last op fails stores none of its earlier ops (atomic on every store)."""
        await storage.commit([TransactionStarted(transaction())])
        seq = TransactionEventRecorded("CP-1", "tx-2", 0, "Started", "Authorized", T0, False)
        with pytest.raises(StorageError):
            await storage.commit(
                [TransactionStarted(transaction("tx-2")), seq, TransactionStarted(transaction())]
            )
        assert await storage.find_transaction("CP-1", "tx-2") is None
        assert await storage.list_transaction_seq_nos("CP-1", "tx-2") == set()

    async def test_same_transaction_id_on_two_stations(self, storage: Storage) -> None:
        """Transaction ids are unique per station, not across stations (2.0.1)."""
        await storage.commit([TransactionStarted(transaction(station_id="CP-1"))])
        await storage.commit([TransactionStarted(transaction(station_id="CP-2"))])
        assert await storage.find_transaction("CP-2", "tx-1") is not None

    async def test_find_by_ocpp16_id_finds_only_16_transactions(self, storage: Storage) -> None:
        """find_transaction_by_ocpp16_id matches 1.6 sessions by number, on any station."""
        await storage.commit([TransactionStarted(transaction("42", "CP-9", ocpp_version="1.6"))])
        await storage.commit([TransactionStarted(transaction("43", "CP-9"))])
        found = await storage.find_transaction_by_ocpp16_id(42)
        assert found is not None
        assert (found.station_id, found.transaction_id) == ("CP-9", "42")
        assert await storage.find_transaction_by_ocpp16_id(43) is None

    async def test_find_open_transaction_like_matches_open_only(self, storage: Storage) -> None:
        """A resent start finds the open session with the same facts, not an ended one."""
        await storage.commit([TransactionStarted(transaction("1", ocpp_version="1.6"))])
        found = await storage.find_open_transaction_like("CP-1", 1, "TOKEN-1", T0)
        assert found is not None
        assert found.transaction_id == "1"
        assert await storage.find_open_transaction_like("CP-1", 1, "TOKEN-1", at(1)) is None
        assert await storage.find_open_transaction_like("CP-1", 1, "OTHER", T0) is None
        await storage.commit([TransactionChanged(transaction("1", ended_at=at(60)))])
        assert await storage.find_open_transaction_like("CP-1", 1, "TOKEN-1", T0) is None

    async def test_list_filters_and_pages_newest_first(self, storage: Storage) -> None:
        """list_transactions filters by station, token, activity and start time, newest first."""
        await commit_all(
            storage,
            [
                [TransactionStarted(transaction("a", "CP-1", started_at=at(0)))],
                [TransactionStarted(transaction("b", "CP-1", started_at=at(10), id_token="T2"))],
                [TransactionStarted(transaction("c", "CP-2", started_at=at(20), ended_at=at(30)))],
            ],
        )

        async def ids(**where: object) -> list[str]:
            found = await storage.list_transactions(TransactionFilter(**where))  # type: ignore[arg-type]
            return [t.transaction_id for t in found]

        assert await ids() == ["c", "b", "a"]
        assert await ids(station_id="CP-1") == ["b", "a"]
        assert await ids(id_token="T2") == ["b"]
        assert await ids(active=True) == ["b", "a"]
        assert await ids(active=False) == ["c"]
        assert await ids(started_after=at(10)) == ["c", "b"]
        assert await ids(started_before=at(10)) == ["a"]
        assert await ids(limit=1, offset=1) == ["b"]


class TestMeterSamples:
    async def test_samples_kept_with_every_field_by_transaction(self, storage: Storage) -> None:
        """Samples read back in order with all fields, per transaction only."""
        samples = (sample(), sample("Power.Active.Import", 7200.0), replace(sample(), unit=None))
        await storage.commit([MeterSamplesRecorded("CP-1", "tx-1", 1, samples)])
        await storage.commit([MeterSamplesRecorded("CP-1", "tx-2", 1, (sample(value=1.0),))])
        await storage.commit([MeterSamplesRecorded("CP-1", None, 0, (sample(value=2.0),))])
        assert await storage.list_meter_samples("CP-1", "tx-1") == list(samples)
        assert await storage.list_meter_samples("CP-1", "tx-2") == [sample(value=1.0)]
        assert await storage.list_meter_samples("CP-2", "tx-1") == []


class TestOutbox:
    async def test_event_round_trips(self, storage: Storage) -> None:
        """An appended event reads back with its id, times and data."""
        appended = event(type_="meter.values", samples=[{"value": 1.5, "unit": "Wh"}], tx=None)
        await storage.commit([EventAppended(appended)])
        [row] = await storage.outbox_pending(10)
        assert row.event == appended
        assert row.delivered_at is None

    async def test_seq_follows_unit_and_commit_order(self, storage: Storage) -> None:
        """Pending events come out in commit order, and in unit order within a batch."""
        first = [EventAppended(event(n=0))]
        await storage.commit(first)
        units = [
            [EventAppended(event(n=i, k=0)), EventAppended(event(n=i, k=1))] for i in range(50)
        ]
        assert await commit_all(storage, units) == [None] * 50
        expected = [op.event for unit in [first, *units] for op in unit]
        pending = await storage.outbox_pending(1000)
        assert [row.event for row in pending] == expected
        seqs = [row.seq for row in pending]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == len(seqs)

    async def test_mark_delivered_stats_and_list(self, storage: Storage) -> None:
        """Delivered rows leave the pending set; stats and listings say so."""
        events = [event(n=i) for i in range(3)]
        await storage.commit([EventAppended(e) for e in events])
        pending = await storage.outbox_pending(10)
        await storage.outbox_mark_delivered([pending[0].seq], at(100))
        await storage.outbox_mark_delivered([pending[0].seq], at(200))
        assert [r.event for r in await storage.outbox_pending(10)] == events[1:]
        stats = await storage.outbox_stats()
        assert (stats.pending, stats.delivered) == (2, 1)
        assert stats.oldest_pending_at == events[1].recorded_at
        listed = await storage.outbox_list(10, pending_only=False)
        assert [r.event for r in listed] == events[::-1]
        assert listed[-1].delivered_at == at(100)
        assert [r.event for r in await storage.outbox_list(1, pending_only=True)] == [events[2]]

    async def test_stats_of_empty_outbox(self, storage: Storage) -> None:
        """An empty outbox has no pending, no delivered and no oldest time."""
        stats = await storage.outbox_stats()
        assert (stats.pending, stats.delivered, stats.oldest_pending_at) == (0, 0, None)

    async def test_prune_deletes_only_delivered_before_cutoff(self, storage: Storage) -> None:
        """Pruning removes rows delivered before the cutoff, never pending ones."""
        await storage.commit([EventAppended(event(n=i)) for i in range(3)])
        old, recent, _ = await storage.outbox_pending(10)
        await storage.outbox_mark_delivered([old.seq], at(10))
        await storage.outbox_mark_delivered([recent.seq], at(100))
        assert await storage.outbox_prune(at(50)) == 1
        stats = await storage.outbox_stats()
        assert (stats.pending, stats.delivered) == (1, 1)

    async def test_seq_is_never_reused_after_prune(self, storage: Storage) -> None:
        """A new event gets a larger seq than any pruned one."""
        await storage.commit([EventAppended(event())])
        [row] = await storage.outbox_pending(10)
        await storage.outbox_mark_delivered([row.seq], T0)
        await storage.outbox_prune(at(1))
        await storage.commit([EventAppended(event())])
        [newer] = await storage.outbox_pending(10)
        assert newer.seq > row.seq


class TestOutboxForTheRelay:
    async def test_backlog_counts_pending_rows_up_to_the_cap(self, storage: Storage) -> None:
        """The backlog counts only pending rows, at most ``cap``, and names the oldest."""
        events = [event(n=i) for i in range(5)]
        await storage.commit([EventAppended(e) for e in events])
        first = (await storage.outbox_pending(1))[0]
        await storage.outbox_mark_delivered([first.seq], at(100))
        backlog = await storage.outbox_backlog()
        assert (backlog.pending, backlog.oldest_pending_at) == (4, events[1].recorded_at)
        assert (await storage.outbox_backlog(cap=2)).pending == 2

    async def test_pending_skips_the_ranges_in_flight(self, storage: Storage) -> None:
        """Rows in the skipped (inclusive) ranges are left out, the rest read in
        seq order up to the limit: a second batch read while the first is in flight."""
        await storage.commit([EventAppended(event(n=i)) for i in range(10)])
        seqs = [row.seq for row in await storage.outbox_pending(10)]
        skip = [(seqs[0], seqs[2]), (seqs[5], seqs[5])]
        read = await storage.outbox_pending(4, skip)
        assert [row.seq for row in read] == [seqs[3], seqs[4], seqs[6], seqs[7]]
        assert [r.event.data["n"] for r in read] == [3, 4, 6, 7]
        assert await storage.outbox_pending(5, [(seqs[0], seqs[-1])]) == []

    async def test_backlog_of_empty_outbox(self, storage: Storage) -> None:
        """Nothing pending: zero and no oldest time."""
        backlog = await storage.outbox_backlog()
        assert (backlog.pending, backlog.oldest_pending_at) == (0, None)

    async def test_prune_is_bounded_by_its_limit(self, storage: Storage) -> None:
        """Each call deletes at most ``limit`` rows; repeated calls finish the job."""
        await storage.commit([EventAppended(event(n=i)) for i in range(7)])
        rows = await storage.outbox_pending(10)
        await storage.outbox_mark_delivered([r.seq for r in rows[:6]], at(10))
        assert [await storage.outbox_prune(at(50), limit=4) for _ in range(3)] == [4, 2, 0]
        stats = await storage.outbox_stats()
        assert (stats.pending, stats.delivered) == (1, 0)

    async def test_subscribers_hear_of_commits_that_append_events(self, storage: Storage) -> None:
        """A listener is called after a commit with events, not after one without."""
        calls: list[int] = []
        storage.outbox_subscribe(lambda: calls.append(1))
        await storage.commit([StationSeen("CP-1", "1.6", T0)])
        assert calls == []
        await storage.commit([StationSeen("CP-1", "1.6", T0), EventAppended(event())])
        assert calls == [1]

    async def test_one_storage_at_a_time_leads(self, database_url: str) -> None:
        """Of two storages on one database one leads; resigning or closing hands the role on."""
        storage = await open_storage(database_url)
        other = await open_storage(database_url)
        try:
            assert await storage.outbox_lead()
            assert await storage.outbox_lead()  # still leading
            assert not await other.outbox_lead()
            await storage.outbox_resign()
            assert await other.outbox_lead()
            assert not await storage.outbox_lead()
        finally:
            await other.close()
        try:
            assert await storage.outbox_lead()
        finally:
            await storage.close()

    @pytest.mark.postgres
    async def test_a_lost_lock_session_ends_the_lead(self, postgres_url: str) -> None:
        """When PostgreSQL ends the lock's session the leader learns it, then leads again."""
        storage = await open_storage(postgres_url)
        try:
            assert await storage.outbox_lead()
            admin = await asyncpg.connect(postgres_url)
            try:
                where = (
                    " FROM pg_stat_activity"
                    " WHERE application_name = 'csms-relay-lock' AND datname = current_database()"
                )
                await admin.execute(f"SELECT pg_terminate_backend(pid){where}")

                async def ended() -> bool:  # terminating is asynchronous
                    return bool(await admin.fetchval(f"SELECT count(*){where}") == 0)

                await poll_until(ended, within=5)
            finally:
                await admin.close()
            assert not await storage.outbox_lead()
            assert await storage.outbox_lead()
        finally:
            await storage.close()


class TestBatchIsolation:
    async def test_failing_unit_fails_only_its_caller(self, storage: Storage) -> None:
        """A unit violating a constraint fails alone; its batch-mates commit."""
        await storage.commit([TransactionStarted(transaction())])
        good: list[list[WriteOp]] = [
            [TransactionStarted(transaction(f"ok-{i}")), EventAppended(event(n=i))]
            for i in range(30)
        ]
        bad_event = event(n="bad")
        bad: list[WriteOp] = [TransactionStarted(transaction()), EventAppended(bad_event)]
        results = await commit_all(storage, [*good[:15], bad, *good[15:]])
        assert isinstance(results[15], StorageError)
        assert results[:15] + results[16:] == [None] * 30
        outbox = [row.event for row in await storage.outbox_pending(100)]
        assert outbox == [op.event for unit in good for op in unit if isinstance(op, EventAppended)]
        assert bad_event not in outbox
        assert len(await storage.list_transactions(TransactionFilter(limit=100))) == 31

    async def test_unstorable_value_fails_only_its_caller(self, storage: Storage) -> None:
        """A unit with a value the database cannot hold fails alone, with StorageError."""
        bad = StationNotified("CP-1", "DataTransfer", {"data": object()}, T0)
        results = await commit_all(
            storage, [[EventAppended(event())], [bad], [EventAppended(event())]]
        )
        assert results[0] is None
        assert isinstance(results[1], StorageError)
        assert results[2] is None
        assert await storage.list_notifications("CP-1") == []


class TestTransactionNumbers:
    async def test_concurrent_numbers_are_unique_int32(self, storage: Storage) -> None:
        """200 concurrent allocations give 200 distinct positive int32 numbers."""
        numbers = await asyncio.gather(*(storage.next_transaction_number() for _ in range(200)))
        assert len(set(numbers)) == 200
        assert all(0 < n <= INT32_MAX for n in numbers)

    async def test_two_storages_on_one_database_never_collide(self, database_url: str) -> None:
        """Two processes' storages sharing a database never hand out the same number."""
        first = await open_storage(database_url)
        second = await open_storage(database_url)
        try:
            numbers = await asyncio.gather(
                *(s.next_transaction_number() for _ in range(50) for s in (first, second))
            )
        finally:
            await first.close()
            await second.close()
        assert len(set(numbers)) == 100

    async def test_numbers_keep_rising_after_reopen(self, database_url: str) -> None:
        """A reopened storage continues after the last number handed out."""
        storage = await open_storage(database_url)
        try:
            before = await storage.next_transaction_number()
        finally:
            await storage.close()
        storage = await open_storage(database_url)
        try:
            assert await storage.next_transaction_number() > before
        finally:
            await storage.close()


class TestDurability:
    async def test_data_survives_close_and_reopen(self, database_url: str) -> None:
        """Everything committed is read back by a new storage on the same database."""
        storage = await open_storage(database_url)
        try:
            await storage.register_station("CP-1", password_hash="h", at=T0)
            await storage.put_id_token(IdToken("RFID-1", updated_at=T0))
            tx_event = event()
            await storage.commit([TransactionStarted(transaction()), EventAppended(tx_event)])
        finally:
            await storage.close()
        storage = await open_storage(database_url)
        try:
            station = await storage.find_station("CP-1")
            assert station is not None
            assert station.password_hash == "h"
            assert await storage.find_id_token("RFID-1") == IdToken("RFID-1", updated_at=T0)
            assert await storage.find_transaction("CP-1", "tx-1") == transaction()
            assert [r.event for r in await storage.outbox_pending(10)] == [tx_event]
        finally:
            await storage.close()

    async def test_close_flushes_pending_commits(self, database_url: str) -> None:
        """Units submitted before close() are committed before it returns."""
        storage = await open_storage(database_url)
        units = [[EventAppended(event(n=i))] for i in range(20)]
        commits = [asyncio.create_task(storage.commit(unit)) for unit in units]
        await asyncio.sleep(0)  # let every task submit its unit
        await storage.close()
        assert [task.result() for task in commits] == [None] * 20
        storage = await open_storage(database_url)
        try:
            assert len(await storage.outbox_pending(100)) == 20
        finally:
            await storage.close()

    async def test_commit_after_close_fails(self, database_url: str) -> None:
        """A closed storage refuses new work with StorageError."""
        storage = await open_storage(database_url)
        await storage.close()
        with pytest.raises(StorageError):
            await storage.commit([StationSeen("CP-1", "1.6", T0)])
        with pytest.raises(StorageError):
            await storage.find_station("CP-1")


class TestPing:
    async def test_ping_true_while_open(self, storage: Storage) -> None:
        """ping answers True when the database answers."""
        assert await storage.ping() is True

    async def test_ping_false_after_close_without_raising(self, database_url: str) -> None:
        """ping of a closed storage is False, never an exception."""
        storage = await open_storage(database_url)
        await storage.close()
        assert await storage.ping() is False


class TestParseDatabaseUrl:
    @pytest.mark.parametrize(
        ("url", "dialect", "location"),
        [
            ("sqlite:///csms.db", "sqlite", "csms.db"),
            ("sqlite:///data/csms.db", "sqlite", "data/csms.db"),
            ("sqlite:////var/lib/csms/csms.db", "sqlite", "/var/lib/csms/csms.db"),
            ("postgresql://u:p@db:5432/csms", "postgresql", "postgresql://u:p@db:5432/csms"),
            ("postgres://db/csms", "postgresql", "postgres://db/csms"),
            ("postgresql:///csms?host=/run/postgresql", "postgresql", None),
        ],
    )
    def test_accepts_contract_forms(self, url: str, dialect: str, location: str | None) -> None:
        """The contract's SQLite and PostgreSQL forms parse to dialect and location."""
        parsed = parse_database_url(url)
        assert parsed.dialect == dialect
        assert parsed.location == (location or url)

    @pytest.mark.parametrize(
        "url",
        [
            "",
            "csms.db",
            "mysql://root:hunter2@db/csms",
            "postgresql+asyncpg://u:hunter2@db/csms",
            "sqlite://",
            "sqlite:///",
            "sqlite://host/csms.db",
            "sqlite:///:memory:",
            "sqlite:///csms.db?mode=ro",
            "postgresql://u:hunter2@db:notaport/csms",
        ],
    )
    def test_rejects_other_forms_in_one_line(self, url: str) -> None:
        """Anything else is a ConfigurationError naming the variable, on one line."""
        with pytest.raises(ConfigurationError) as caught:
            parse_database_url(url)
        message = str(caught.value)
        assert "CSMS_DATABASE_URL" in message
        assert "\n" not in message
        assert "hunter2" not in message

    def test_masks_password_containing_at_sign(self) -> None:
        """A password with a raw "@" is masked whole."""
        with pytest.raises(ConfigurationError) as caught:
            parse_database_url("mysql://root:hun@ter2@db/csms")
        assert "ter2" not in str(caught.value)
        assert "hun" not in str(caught.value)

    def test_masks_password_in_query_parameters(self) -> None:
        """A password passed as a URL parameter is masked too."""
        with pytest.raises(ConfigurationError) as caught:
            parse_database_url("mysql://db/csms?user=u&password=hunter2")
        assert "hunter2" not in str(caught.value)


class TestOpenStorage:
    async def test_unreachable_postgres_fails_fast_in_one_line(self) -> None:
        """A PostgreSQL nobody listens on gives StorageUnavailableError within seconds."""
        started = time.monotonic()
        with pytest.raises(StorageUnavailableError) as caught:
            await open_storage("postgresql://csms:hunter2@127.0.0.1:1/csms")
        assert time.monotonic() - started < 5
        message = str(caught.value)
        assert "CSMS_DATABASE_URL" in message
        assert "\n" not in message
        assert "hunter2" not in message

    async def test_missing_postgres_database_is_unavailable(self, postgres_url: str) -> None:
        """A server without the named database gives StorageUnavailableError."""
        missing = postgres_url.rsplit("/", 1)[0] + f"/csms_missing_{uuid.uuid4().hex[:8]}"
        with pytest.raises(StorageUnavailableError):
            await open_storage(missing)

    async def test_sqlite_in_missing_directory_is_unavailable(self, tmp_path: Path) -> None:
        """A SQLite path whose directory does not exist gives StorageUnavailableError."""
        with pytest.raises(StorageUnavailableError) as caught:
            await open_storage(f"sqlite:///{tmp_path / 'absent' / 'csms.db'}")
        assert "\n" not in str(caught.value)

    async def test_sqlite_file_that_is_no_database_is_unavailable(self, tmp_path: Path) -> None:
        """A file that is not a SQLite database gives StorageUnavailableError."""
        path = tmp_path / "not.db"
        path.write_text("hello, this is not a database" * 100)
        with pytest.raises(StorageUnavailableError):
            await open_storage(f"sqlite:///{path}")
