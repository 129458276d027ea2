"""OCPP 2.0.1 stations on the same core: sessions, offline replays, and events shaped like 1.6's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from csms.app import Running
from csms.core.domain import AuthorizationStatus, IdToken, IdTokenType
from csms.core.events import Event
from scripts.simulate import SimStation
from tests.integration.conftest import ws_url

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


async def events(csms: Running, station_id: str, kind: str | None = None) -> list[Event]:
    """The station's outbox events, oldest first."""
    rows = await csms.storage.outbox_list(10_000, pending_only=False)
    found = [r.event for r in sorted(rows, key=lambda r: r.seq) if r.event.station_id == station_id]
    return [e for e in found if kind is None or e.type == kind]


@pytest.fixture
async def cp201(csms: Running) -> Any:
    async with SimStation(ws_url(csms), "EV-201", protocol="ocpp2.0.1") as sim:
        yield sim


class TestSession:
    async def test_boot_status_authorize_start_update_end_is_stored(
        self, csms: Running, cp201: SimStation
    ) -> None:
        """A full 2.0.1 session is answered, stored and settles energy from the register."""
        await csms.storage.put_id_token(
            IdToken("APP-7", AuthorizationStatus.ACCEPTED, IdTokenType.CENTRAL, group_id="FLEET")
        )
        assert cp201.subprotocol == "ocpp2.0.1"
        boot = await cp201.boot201()
        assert (boot["status"], boot["interval"]) == ("Accepted", 300)
        await cp201.status201(1, 1, "Occupied", timestamp=at(0))
        auth = await cp201.authorize201("APP-7", type="Central")
        assert auth["idTokenInfo"] == {
            "status": "Accepted",
            "groupIdToken": {"idToken": "FLEET", "type": "Central"},
        }
        assert (await cp201.authorize201("NOBODY"))["idTokenInfo"]["status"] == "Unknown"

        started = await cp201.transaction_event(
            "Started",
            "TX-A",
            0,
            "Authorized",
            id_token="APP-7",
            id_token_type="Central",
            energy_wh=1_000,
            timestamp=at(1),
            charging_state="EVConnected",
        )
        assert started["idTokenInfo"]["status"] == "Accepted"
        await cp201.transaction_event(
            "Updated",
            "TX-A",
            1,
            "MeterValuePeriodic",
            energy_wh=4_000,
            timestamp=at(20),
            charging_state="Charging",
        )
        ended = await cp201.transaction_event(
            "Ended",
            "TX-A",
            2,
            "EVDeparted",
            energy_wh=7_250,
            timestamp=at(40),
            stopped_reason="EVDisconnected",
            charging_state="Idle",
        )
        assert ended == {}

        tx = await csms.storage.find_transaction("EV-201", "TX-A")
        assert tx is not None
        assert (tx.meter_start_wh, tx.meter_stop_wh, tx.energy_wh) == (1_000, 7_250, 6_250)
        assert (tx.evse_id, tx.connector_id, tx.id_token) == (1, 1, "APP-7")
        assert (tx.stop_reason, tx.charging_state, tx.seq_no) == ("EVDisconnected", "Idle", 2)
        assert tx.started_at == T0 + timedelta(minutes=1)
        assert tx.ended_at == T0 + timedelta(minutes=40)
        assert tx.anomalies == ()
        assert await csms.storage.list_transaction_seq_nos("EV-201", "TX-A") == {0, 1, 2}

        kinds = [e.type for e in await events(csms, "EV-201")]
        assert kinds == [
            "station.connected",
            "station.booted",
            "station.status_changed",
            "transaction.started",
            "meter.values",
            "meter.values",
            "transaction.updated",
            "meter.values",
            "transaction.ended",
        ]
        [status] = await events(csms, "EV-201", "station.status_changed")
        assert status.data["error_code"] is None
        assert (status.data["evse_id"], status.data["connector_id"]) == (1, 1)
        [updated] = await events(csms, "EV-201", "transaction.updated")
        assert updated.data == {
            "transaction_id": "TX-A",
            "evse_id": 1,
            "connector_id": 1,
            "charging_state": "Charging",
            "trigger_reason": "MeterValuePeriodic",
            "seq_no": 1,
            "id_token": "APP-7",
        }
        [end] = await events(csms, "EV-201", "transaction.ended")
        assert end.data["energy_wh"] == 6_250
        assert end.data["stop_reason"] == "EVDisconnected"
        assert end.occurred_at == T0 + timedelta(minutes=40)

    async def test_meter_values_message_is_normalised_and_reported(
        self, csms: Running, cp201: SimStation
    ) -> None:
        """2.0.1 MeterValues in kWh with a multiplier arrive in Wh, W as meter.values."""
        await cp201.call(
            "MeterValues",
            {
                "evseId": 2,
                "meterValue": [
                    {
                        "timestamp": at(5),
                        "sampledValue": [
                            {"value": 12.5, "unitOfMeasure": {"unit": "kWh"}},
                            {
                                "value": 11,
                                "measurand": "Power.Active.Import",
                                "unitOfMeasure": {"unit": "W", "multiplier": 3},
                            },
                        ],
                    }
                ],
            },
        )
        [event] = await events(csms, "EV-201", "meter.values")
        assert event.data["evse_id"] == 2
        assert event.data["transaction_id"] is None
        energy, power = event.data["samples"]
        assert (energy["value"], energy["unit"], energy["measurand"]) == (
            12_500,
            "Wh",
            "Energy.Active.Import.Register",
        )
        assert (power["value"], power["unit"]) == (11_000, "W")
        assert set(energy) == {
            "timestamp",
            "measurand",
            "value",
            "unit",
            "phase",
            "context",
            "location",
            "signed_data",
        }

    async def test_updated_for_an_unseen_transaction_starts_it(
        self, csms: Running, cp201: SimStation
    ) -> None:
        """An Updated whose Started was lost books the transaction from what it carries."""
        await cp201.transaction_event(
            "Updated", "TX-LOST", 5, "MeterValuePeriodic", energy_wh=500, timestamp=at(3)
        )
        tx = await csms.storage.find_transaction("EV-201", "TX-LOST")
        assert tx is not None
        assert (tx.meter_start_wh, tx.started_at) == (500, T0 + timedelta(minutes=3))
        assert len(await events(csms, "EV-201", "transaction.started")) == 1


class TestEndedNeverStarted:
    async def test_an_ended_alone_is_flagged_and_reaches_no_bill(
        self, csms: Running, cp201: SimStation
    ) -> None:
        """An Ended for a transaction never seen, one reading: answered, kept, flagged, unbilled."""
        answer = await cp201.transaction_event(
            "Ended", "TX-GHOST", 7, "StopAuthorized", energy_wh=12_000, timestamp=at(5)
        )
        assert answer == {}
        tx = await csms.storage.find_transaction("EV-201", "TX-GHOST")
        assert tx is not None
        assert tx.ended_at is not None
        assert "unknown_transaction" in tx.anomalies
        assert await events(csms, "EV-201", "transaction.ended") == []
        assert await events(csms, "EV-201", "transaction.started") == []

    async def test_an_ended_alone_with_its_own_readings_is_billed(
        self, csms: Running, cp201: SimStation
    ) -> None:
        """Begin and End registers in the Ended itself bill their difference, flagged."""
        await cp201.call(
            "TransactionEvent",
            {
                "eventType": "Ended",
                "timestamp": at(30),
                "triggerReason": "StopAuthorized",
                "seqNo": 3,
                "transactionInfo": {"transactionId": "TX-LATE"},
                "evse": {"id": 1, "connectorId": 1},
                "meterValue": [
                    {
                        "timestamp": stamp,
                        "sampledValue": [
                            {
                                "value": wh,
                                "context": context,
                                "measurand": "Energy.Active.Import.Register",
                                "unitOfMeasure": {"unit": "Wh"},
                            }
                        ],
                    }
                    for stamp, wh, context in [
                        (at(0), 40_000, "Transaction.Begin"),
                        (at(30), 46_500, "Transaction.End"),
                    ]
                ],
            },
        )
        [ended] = await events(csms, "EV-201", "transaction.ended")
        assert ended.data["energy_wh"] == 6_500
        assert "unknown_transaction" in ended.data["anomalies"]
        assert len(await events(csms, "EV-201", "transaction.started")) == 1


class TestOfflineReplay:
    async def test_offline_replay_and_duplicate_end_book_one_transaction(
        self, csms: Running
    ) -> None:
        """Started, Updated, Ended replayed offline with old timestamps, then Ended again."""
        async with SimStation(ws_url(csms), "EV-OFF", protocol="ocpp2.0.1") as cp:
            await cp.boot201()
            for event_type, seq, trigger, wh, minute in [
                ("Started", 0, "CablePluggedIn", 20_000, 0),
                ("Updated", 1, "MeterValuePeriodic", 21_500, 30),
                ("Ended", 2, "StopAuthorized", 23_000, 60),
            ]:
                await cp.transaction_event(
                    event_type,
                    "TX-OFF",
                    seq,
                    trigger,
                    energy_wh=wh,
                    offline=True,
                    timestamp=at(minute - 600),
                )
        async with SimStation(ws_url(csms), "EV-OFF", protocol="ocpp2.0.1") as cp:
            again = await cp.transaction_event(
                "Ended",
                "TX-OFF",
                2,
                "StopAuthorized",
                energy_wh=23_000,
                offline=True,
                timestamp=at(-540),
            )
            assert again == {}
        tx = await csms.storage.find_transaction("EV-OFF", "TX-OFF")
        assert tx is not None
        assert tx.energy_wh == 3_000
        assert tx.started_at == T0 - timedelta(minutes=600)
        assert len(await events(csms, "EV-OFF", "transaction.ended")) == 1
        assert len(await events(csms, "EV-OFF", "transaction.started")) == 1

    async def test_out_of_order_replay_still_settles_from_first_and_last_reading(
        self, csms: Running, cp201: SimStation
    ) -> None:
        """Updated before Started is accepted; energy spans the earliest to the latest reading."""
        await cp201.transaction_event(
            "Updated",
            "TX-OOO",
            1,
            "MeterValuePeriodic",
            energy_wh=150,
            offline=True,
            timestamp=at(10),
        )
        await cp201.transaction_event(
            "Started", "TX-OOO", 0, "Authorized", energy_wh=100, offline=True, timestamp=at(0)
        )
        await cp201.transaction_event(
            "Ended", "TX-OOO", 2, "EVDeparted", energy_wh=400, offline=True, timestamp=at(20)
        )
        tx = await csms.storage.find_transaction("EV-201", "TX-OOO")
        assert tx is not None
        assert (tx.meter_start_wh, tx.energy_wh, tx.anomalies) == (100, 300, ())
        assert tx.started_at == T0

    async def test_a_missing_seq_no_at_end_is_flagged(
        self, csms: Running, cp201: SimStation
    ) -> None:
        """Ended with seqNo 1 never seen flags the session instead of billing it silently."""
        await cp201.transaction_event(
            "Started", "TX-GAP", 0, "Authorized", energy_wh=0, timestamp=at(0)
        )
        await cp201.transaction_event(
            "Ended", "TX-GAP", 2, "EVDeparted", energy_wh=900, timestamp=at(9)
        )
        [end] = await events(csms, "EV-201", "transaction.ended")
        assert end.data["anomalies"] == ["seq_no_gap"]
        assert end.data["energy_wh"] == 900


class TestMixedFleet:
    async def test_16_and_201_events_have_the_same_shape(self, csms: Running) -> None:
        """Charging side by side, both versions' events differ only in values and ocpp_version."""
        async with (
            SimStation(ws_url(csms), "MIX-16") as old,
            SimStation(ws_url(csms), "MIX-201", protocol="ocpp2.0.1") as new,
        ):
            await old.boot()
            await new.boot201()
            await old.status(1, "Charging")
            await new.status201(1, 1, "Occupied")
            tx16 = await old.start(1, "TAG", 1_000)
            await new.transaction_event(
                "Started", "TX-M", 0, "Authorized", id_token="TAG", energy_wh=1_000
            )
            await old.meter_values(1, tx16, 2_000)
            await new.meter_values201(1, 2_000)
            await old.stop(tx16, 3_000)
            await new.transaction_event("Ended", "TX-M", 1, "StopAuthorized", energy_wh=3_000)

        by_type_16 = {e.type: e for e in await events(csms, "MIX-16")}
        by_type_201 = {e.type: e for e in await events(csms, "MIX-201")}
        common = {
            "station.connected",
            "station.booted",
            "station.status_changed",
            "transaction.started",
            "meter.values",
            "transaction.ended",
        }
        assert common <= set(by_type_16) & set(by_type_201)
        for kind in common:
            a, b = by_type_16[kind], by_type_201[kind]
            assert set(a.body()) == set(b.body())
            assert set(a.data) == set(b.data), kind
            assert (a.ocpp_version, b.ocpp_version) == ("1.6", "2.0.1")
        assert by_type_16["transaction.ended"].data["energy_wh"] == 2_000
        assert by_type_201["transaction.ended"].data["energy_wh"] == 2_000
        samples16 = by_type_16["meter.values"].data["samples"]
        samples201 = by_type_201["meter.values"].data["samples"]
        assert {tuple(sorted(s)) for s in samples16} == {tuple(sorted(s)) for s in samples201}


class TestNotifications:
    async def test_notify_report_parts_build_the_device_model(
        self, csms: Running, cp201: SimStation
    ) -> None:
        """A two-part report (same requestId, seqNo 0 and 1) ends up as one stored model."""

        def part(seq: int, tbc: bool, variable: str, value: str) -> dict[str, Any]:
            return {
                "requestId": 7,
                "generatedAt": at(0),
                "seqNo": seq,
                "tbc": tbc,
                "reportData": [
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": variable},
                        "variableAttribute": [
                            {"type": "Actual", "value": value, "mutability": "ReadWrite"}
                        ],
                        "variableCharacteristics": {
                            "dataType": "integer",
                            "supportsMonitoring": False,
                        },
                    }
                ],
            }

        assert await cp201.call("NotifyReport", part(0, True, "HeartbeatInterval", "300")) == {}
        assert await cp201.call("NotifyReport", part(1, False, "MessageTimeout", "30")) == {}
        model = {
            (e.component, e.variable): e.value
            for e in await csms.storage.list_device_model("EV-201")
        }
        assert model == {
            ("OCPPCommCtrlr", "HeartbeatInterval"): "300",
            ("OCPPCommCtrlr", "MessageTimeout"): "30",
        }

    @pytest.mark.parametrize(
        ("action", "payload", "answer"),
        [
            (
                "NotifyEvent",
                {
                    "generatedAt": "2026-11-26T08:00:00Z",
                    "seqNo": 0,
                    "eventData": [
                        {
                            "eventId": 1,
                            "timestamp": "2026-11-26T08:00:00Z",
                            "trigger": "Alerting",
                            "actualValue": "Faulted",
                            "eventNotificationType": "HardWiredNotification",
                            "component": {"name": "Connector"},
                            "variable": {"name": "Problem"},
                        }
                    ],
                },
                {},
            ),
            (
                "SecurityEventNotification",
                {"type": "TamperDetectionActivated", "timestamp": "2026-11-26T08:00:00Z"},
                {},
            ),
            ("FirmwareStatusNotification", {"status": "Installed", "requestId": 1}, {}),
            ("LogStatusNotification", {"status": "Uploaded", "requestId": 2}, {}),
            ("DataTransfer", {"vendorId": "com.acme"}, {"status": "UnknownVendorId"}),
            ("NotifyChargingLimit", {"chargingLimit": {"chargingLimitSource": "EMS"}}, {}),
            ("ClearedChargingLimit", {"chargingLimitSource": "EMS"}, {}),
            (
                "ReservationStatusUpdate",
                {"reservationId": 3, "reservationUpdateStatus": "Expired"},
                {},
            ),
            (
                "NotifyEVChargingNeeds",
                {"evseId": 1, "chargingNeeds": {"requestedEnergyTransfer": "AC_three_phase"}},
                {"status": "Accepted"},
            ),
            (
                "NotifyEVChargingSchedule",
                {
                    "timeBase": "2026-11-26T08:00:00Z",
                    "evseId": 1,
                    "chargingSchedule": {
                        "id": 1,
                        "chargingRateUnit": "W",
                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000}],
                    },
                },
                {"status": "Accepted"},
            ),
        ],
    )
    async def test_each_notification_is_answered_and_kept(
        self,
        csms: Running,
        cp201: SimStation,
        action: str,
        payload: dict[str, Any],
        answer: dict[str, Any],
    ) -> None:
        """Every 2.0.1 notification is acknowledged per its schema and stored as received."""
        assert await cp201.call(action, payload) == answer
        kept = await csms.storage.list_notifications("EV-201", action)
        assert [n.payload for n in kept] == [payload]
