"""Storage of commands to stations and of the state their answers leave behind."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from csms.core.domain import (
    ChargingProfile,
    ChargingProfileCriteria,
    Command,
    CommandStatus,
    ConfigurationKey,
    ConnectorStatus,
    DeviceModelEntry,
    IdToken,
    Reservation,
)
from csms.core.errors import ConflictError
from csms.core.ports import (
    ChargingProfilesCleared,
    ChargingProfileSet,
    CommandFilter,
    CommandRecorded,
    ConfigurationChanged,
    ConnectorStatusChanged,
    DeviceModelReported,
    DeviceModelValuesSet,
    LocalListVersionSet,
    ReservationChanged,
    Storage,
)


@pytest.fixture
def storage(any_storage: Storage) -> Storage:
    """The contract holds for the in-memory storage as for the databases."""
    return any_storage


AT = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def command(number: int, station_id: str = "CP-1", **changes: object) -> Command:
    made = Command(
        id=f"cmd-{number}",
        station_id=station_id,
        name="reset",
        action=None,
        ocpp_version=None,
        request={"type": "soft"},
        status=CommandStatus.QUEUED,
        source="api",
        created_at=AT + timedelta(seconds=number),
        expires_at=AT + timedelta(hours=1, seconds=number),
    )
    return replace(made, **changes)  # type: ignore[arg-type]


class TestCommands:
    async def test_a_command_is_recorded_moved_on_and_listed(self, storage: Storage) -> None:
        """Insert, conditional updates, lookups by id, station, status and queue order."""
        await storage.commit([CommandRecorded(command(1)), CommandRecorded(command(2))])
        await storage.commit([CommandRecorded(command(3, "CP-2"))])
        sent = replace(
            command(1),
            status=CommandStatus.SENT,
            action="Reset",
            ocpp_version="1.6",
            payload={"type": "Soft"},
            sent_at=AT,
        )
        await storage.commit([CommandRecorded(sent, CommandStatus.QUEUED)])
        done = replace(
            sent, status=CommandStatus.COMPLETED, response={"status": "Accepted"}, completed_at=AT
        )
        await storage.commit([CommandRecorded(done, CommandStatus.SENT)])
        assert await storage.find_command("cmd-1") == done
        assert await storage.find_command("nope") is None
        assert [c.id for c in await storage.list_queued_commands("CP-1")] == ["cmd-2"]
        newest_first = await storage.list_commands(CommandFilter(station_id="CP-1"))
        assert [c.id for c in newest_first] == ["cmd-2", "cmd-1"]
        completed = await storage.list_commands(CommandFilter(status=CommandStatus.COMPLETED))
        assert [c.id for c in completed] == ["cmd-1"]
        assert await storage.list_stations_with_queued_commands() == ["CP-1", "CP-2"]
        due = await storage.list_expired_commands(AT + timedelta(hours=1, seconds=2))
        assert [c.id for c in due] == ["cmd-2"]

    async def test_a_stale_update_fails_its_unit_and_writes_nothing(self, storage: Storage) -> None:
        """A command no longer in the expected status is not moved on; nor is the rest."""
        await storage.commit([CommandRecorded(command(1))])
        expired = replace(command(1), status=CommandStatus.EXPIRED, completed_at=AT)
        await storage.commit([CommandRecorded(expired, CommandStatus.QUEUED)])
        sent = replace(command(1), status=CommandStatus.SENT, sent_at=AT)
        with pytest.raises(ConflictError):
            await storage.commit(
                [CommandRecorded(sent, CommandStatus.QUEUED), LocalListVersionSet("CP-1", 9, AT)]
            )
        assert await storage.find_command("cmd-1") == expired


class TestStationState:
    async def test_configuration_keys_are_upserted_keeping_the_readonly_flag(
        self, storage: Storage
    ) -> None:
        """A ChangeConfiguration (readonly unknown) keeps what GetConfiguration reported."""
        await storage.register_station("CP-1", at=AT)
        reported = (
            ConfigurationKey("HeartbeatInterval", "300", False),
            ConfigurationKey("X", "1", True),
        )
        await storage.commit([ConfigurationChanged("CP-1", reported, AT)])
        changed = (ConfigurationKey("HeartbeatInterval", "60", None),)
        await storage.commit([ConfigurationChanged("CP-1", changed, AT)])
        keys = await storage.list_configuration("CP-1")
        assert [(k.key, k.value, k.readonly) for k in keys] == [
            ("HeartbeatInterval", "60", False),
            ("X", "1", True),
        ]

    async def test_one_unit_changing_a_key_twice_keeps_the_known_readonly_flag(
        self, storage: Storage
    ) -> None:
        """Within one unit too: the last value wins, a later unknown readonly keeps
        the earlier known one; the last local list version wins."""
        await storage.register_station("CP-1", at=AT)
        await storage.commit(
            [
                ConfigurationChanged("CP-1", (ConfigurationKey("K", "1", True),), AT),
                ConfigurationChanged("CP-1", (ConfigurationKey("K", "2", None),), AT),
                LocalListVersionSet("CP-1", 4, AT),
                LocalListVersionSet("CP-1", 5, AT),
            ]
        )
        keys = await storage.list_configuration("CP-1")
        assert [(k.key, k.value, k.readonly) for k in keys] == [("K", "2", True)]
        assert await storage.find_local_list_version("CP-1") == 5
        # Units committed together share a batch: the same holds across them.
        await asyncio.gather(
            *(
                storage.commit([ConfigurationChanged("CP-1", (ConfigurationKey("M", v, ro),), AT)])
                for v, ro in (("1", False), ("2", None), ("3", None))
            )
        )
        keys = await storage.list_configuration("CP-1")
        assert [(k.key, k.value, k.readonly) for k in keys][1] == ("M", "3", False)

    async def test_device_model_values_keep_reported_characteristics(
        self, storage: Storage
    ) -> None:
        """A GetVariables value changes the value only; a new variable is added."""
        reported = DeviceModelEntry(
            "OCPPCommCtrlr", None, None, None, "HeartbeatInterval", None, "Actual", "300",
            "ReadWrite", {"dataType": "integer"},
        )  # fmt: skip
        await storage.commit([DeviceModelReported("CP-2", (reported,), AT)])
        value = replace(reported, value="60", mutability=None, characteristics={})
        new = replace(value, variable="Other", value="x")
        await storage.commit([DeviceModelValuesSet("CP-2", (value, new), AT)])
        model = {e.variable: e for e in await storage.list_device_model("CP-2")}
        assert model["HeartbeatInterval"] == replace(reported, value="60")
        assert (model["Other"].value, model["Other"].mutability) == ("x", None)

    async def test_one_unit_changing_an_entry_or_reservation_twice_keeps_the_last(
        self, storage: Storage
    ) -> None:
        """Device model entries (reported or set) and reservations changed twice
        in one unit end as the last change, as if applied in turn (PostgreSQL
        applies a batch set-based, and may touch each row only once)."""
        first = DeviceModelEntry(
            "OCPPCommCtrlr", None, None, None, "HeartbeatInterval", None, "Actual", "300",
            "ReadWrite", {"dataType": "integer"},
        )  # fmt: skip
        second = replace(first, value="60")
        third = replace(first, value="90", mutability=None, characteristics={})
        reservation = Reservation("CP-1", 5, 1, "TAG", AT, "Reserved", AT)
        await storage.commit(
            [
                DeviceModelReported("CP-2", (first, second), AT),
                DeviceModelValuesSet("CP-2", (third, replace(third, value="120")), AT),
                ReservationChanged(reservation),
                ReservationChanged(replace(reservation, status="Cancelled")),
            ]
        )
        assert await storage.list_device_model("CP-2") == [replace(first, value="120")]
        assert await storage.list_reservations("CP-1") == [replace(reservation, status="Cancelled")]

    async def test_local_list_version_reservations_and_profiles(self, storage: Storage) -> None:
        """Version per station; reservations upserted; profiles replaced and cleared by criteria."""
        await storage.register_station("CP-1", at=AT)
        assert await storage.find_local_list_version("CP-1") is None
        await storage.commit([LocalListVersionSet("CP-1", 7, AT)])
        assert await storage.find_local_list_version("CP-1") == 7
        reservation = Reservation("CP-1", 5, 1, "TAG", AT, "Reserved", AT)
        await storage.commit([ReservationChanged(reservation)])
        await storage.commit([ReservationChanged(replace(reservation, status="Cancelled"))])
        assert await storage.list_reservations("CP-1") == [replace(reservation, status="Cancelled")]

        def profile(profile_id: int, evse_id: int, stack: int) -> ChargingProfile:
            body = {"chargingProfileId": profile_id, "limit": 21.4}
            return ChargingProfile("CP-1", evse_id, profile_id, stack, "TxDefaultProfile", body, AT)

        await storage.commit(
            [ChargingProfileSet(profile(1, 1, 0)), ChargingProfileSet(profile(2, 2, 0))]
        )
        # Same EVSE, purpose and stack level: replaces profile 1.
        await storage.commit([ChargingProfileSet(profile(3, 1, 0))])
        assert [p.profile_id for p in await storage.list_charging_profiles("CP-1")] == [3, 2]
        assert (await storage.list_charging_profiles("CP-1"))[0].profile["limit"] == 21.4
        await storage.commit([ChargingProfilesCleared("CP-1", ChargingProfileCriteria(evse_id=2))])
        assert [p.profile_id for p in await storage.list_charging_profiles("CP-1")] == [3]
        await storage.commit([ChargingProfilesCleared("CP-1", ChargingProfileCriteria())])
        assert await storage.list_charging_profiles("CP-1") == []

    async def test_deleting_a_station_removes_its_state_not_its_history(
        self, storage: Storage
    ) -> None:
        """The registration and current state go; commands stay; a second delete says False."""
        await storage.register_station("CP-1", at=AT)
        await storage.commit(
            [
                ConnectorStatusChanged(
                    ConnectorStatus("CP-1", 1, 1, "Available", None, None, None, None, AT)
                ),
                ConfigurationChanged("CP-1", (ConfigurationKey("K", "v", False),), AT),
                CommandRecorded(command(1)),
            ]
        )
        assert await storage.delete_station("CP-1") is True
        assert await storage.find_station("CP-1") is None
        assert await storage.list_connectors("CP-1") == []
        assert await storage.list_configuration("CP-1") == []
        assert await storage.find_command("cmd-1") is not None
        assert await storage.delete_station("CP-1") is False

    async def test_id_tokens_are_deleted_and_active_transactions_counted(
        self, storage: Storage
    ) -> None:
        """delete_id_token says whether there was one; nothing is active in a new database."""
        await storage.put_id_token(IdToken("TAG", updated_at=AT))
        assert await storage.delete_id_token("TAG") is True
        assert await storage.delete_id_token("TAG") is False
        assert await storage.find_id_token("TAG") is None
        assert await storage.count_active_transactions() == 0
