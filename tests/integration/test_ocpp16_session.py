"""A 1.6 station's whole charging session over a real WebSocket, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from csms.app import Running
from csms.core.domain import AuthorizationStatus, IdToken
from csms.core.events import Event
from csms.core.ports import TransactionFilter
from csms.telemetry import metrics
from scripts.simulate import CallError, SimStation
from tests.integration.conftest import ws_url


async def register_tokens(csms: Running) -> None:
    now = datetime.now(UTC)
    storage = csms.storage
    await storage.put_id_token(IdToken("GOOD", AuthorizationStatus.ACCEPTED, group_id="FLEET"))
    await storage.put_id_token(IdToken("BLOCKED", AuthorizationStatus.BLOCKED))
    await storage.put_id_token(IdToken("OLD", expires_at=now - timedelta(days=1)))
    await storage.put_id_token(IdToken("LATER", expires_at=now + timedelta(days=30)))


class TestChargingSession:
    async def test_boot_status_authorize_charge_and_stop_is_stored(self, csms: Running) -> None:
        """Every step is answered per the spec and the stored session bills stop - start."""
        await register_tokens(csms)
        async with SimStation(ws_url(csms), "CP-001") as cp:
            boot = await cp.call(
                "BootNotification",
                {
                    "chargePointVendor": "ACME",
                    "chargePointModel": "Fast-22",
                    "chargePointSerialNumber": "SN-9",
                    "firmwareVersion": "1.2.3",
                    "iccid": "8931",
                    "meterType": "DZG",
                },
            )
            assert boot["status"] == "Accepted"
            assert boot["interval"] == 300
            assert datetime.fromisoformat(boot["currentTime"]).tzinfo is not None

            await cp.status(0, "Available")
            await cp.status(1, "Preparing")

            assert (await cp.authorize("GOOD"))["idTagInfo"] == {
                "status": "Accepted",
                "parentIdTag": "FLEET",
            }
            assert (await cp.authorize("BLOCKED"))["idTagInfo"]["status"] == "Blocked"
            assert (await cp.authorize("OLD"))["idTagInfo"]["status"] == "Expired"
            assert (await cp.authorize("NOBODY"))["idTagInfo"]["status"] == "Invalid"
            later = (await cp.authorize("LATER"))["idTagInfo"]
            assert later["status"] == "Accepted"
            assert "expiryDate" in later

            start = await cp.call(
                "StartTransaction",
                {
                    "connectorId": 1,
                    "idTag": "GOOD",
                    "meterStart": 10_000,
                    "timestamp": "2026-11-26T08:00:00Z",
                },
            )
            tx_id = start["transactionId"]
            assert isinstance(tx_id, int)
            assert start["idTagInfo"]["status"] == "Accepted"

            await cp.call(
                "MeterValues",
                {
                    "connectorId": 1,
                    "transactionId": tx_id,
                    "meterValue": [
                        {
                            "timestamp": "2026-11-26T08:15:00Z",
                            "sampledValue": [
                                {"value": "12000", "unit": "Wh"},
                                {"value": "11.0", "unit": "kW", "measurand": "Power.Active.Import"},
                            ],
                        }
                    ],
                },
            )
            await cp.call(
                "MeterValues",
                {
                    "connectorId": 1,
                    "transactionId": tx_id,
                    "meterValue": [
                        {
                            "timestamp": "2026-11-26T08:30:00Z",
                            "sampledValue": [
                                {
                                    "value": "14.5",
                                    "unit": "kWh",
                                    "measurand": "Energy.Active.Import.Register",
                                    "context": "Sample.Clock",
                                    "location": "Outlet",
                                    "phase": "L1",
                                },
                            ],
                        }
                    ],
                },
            )
            stop = await cp.call(
                "StopTransaction",
                {
                    "transactionId": tx_id,
                    "idTag": "GOOD",
                    "meterStop": 16_000,
                    "timestamp": "2026-11-26T08:45:00Z",
                    "reason": "EVDisconnected",
                },
            )
            assert stop["idTagInfo"]["status"] == "Accepted"

        tx = await csms.storage.find_transaction("CP-001", str(tx_id))
        assert tx is not None
        assert tx.energy_wh == 6_000
        assert (tx.meter_start_wh, tx.meter_stop_wh) == (10_000, 16_000)
        assert tx.stop_reason == "EVDisconnected"
        assert tx.id_token == "GOOD"
        assert (tx.evse_id, tx.connector_id) == (1, 1)
        assert tx.ended_at == datetime(2026, 11, 26, 8, 45, tzinfo=UTC)

        samples = await csms.storage.list_meter_samples("CP-001", str(tx_id))
        energy = [(s.value, s.unit) for s in samples if s.measurand.startswith("Energy")]
        assert energy == [(12_000, "Wh"), (14_500, "Wh")]
        power = [s for s in samples if s.measurand == "Power.Active.Import"]
        assert [(p.value, p.unit) for p in power] == [(11_000, "W")]

        station = await csms.storage.find_station("CP-001")
        assert station is not None
        assert (station.vendor, station.model, station.serial_number, station.firmware_version) == (
            "ACME",
            "Fast-22",
            "SN-9",
            "1.2.3",
        )
        assert station.ocpp_version == "1.6"
        connectors = {
            (c.evse_id, c.connector_id): c for c in await csms.storage.list_connectors("CP-001")
        }
        assert connectors[(0, 0)].status == "Available"
        assert connectors[(1, 1)].status == "Preparing"
        assert connectors[(1, 1)].error_code == "NoError"

    async def test_transaction_ids_are_unique_across_stations(self, csms: Running) -> None:
        """Two stations starting at once get different transaction ids."""
        async with SimStation(ws_url(csms), "A") as a, SimStation(ws_url(csms), "B") as b:
            ta = await a.start(1, "X", 0)
            tb = await b.start(1, "X", 0)
        assert ta != tb

    async def test_repeated_stop_is_answered_and_changes_nothing(
        self, station: SimStation, csms: Running
    ) -> None:
        """A StopTransaction sent twice is answered twice and booked once."""
        tx_id = await station.start(1, "GOOD", 1000)
        stop = {"transactionId": tx_id, "meterStop": 3000, "timestamp": "2026-11-26T09:00:00Z"}
        await station.call("StopTransaction", stop)
        await station.call("StopTransaction", {**stop, "meterStop": 9000})
        tx = await csms.storage.find_transaction("CP-1", str(tx_id))
        assert tx is not None
        assert (tx.energy_wh, tx.stop_reason) == (2000, "Local")
        ended = [
            r
            for r in await csms.storage.outbox_list(100, pending_only=False)
            if r.event.type == "transaction.ended"
        ]
        assert len(ended) == 1

    async def test_resent_start_with_same_facts_books_one_transaction(
        self, station: SimStation, csms: Running
    ) -> None:
        """A StartTransaction resent after a lost answer gets the same transaction id."""
        payload = {
            "connectorId": 1,
            "idTag": "T",
            "meterStart": 5,
            "timestamp": "2026-11-26T07:00:00Z",
        }
        first = await station.call("StartTransaction", payload)
        second = await station.call("StartTransaction", payload)
        assert first["transactionId"] == second["transactionId"]
        active = await csms.storage.list_transactions(TransactionFilter(station_id="CP-1"))
        assert len(active) == 1

    async def test_stop_of_an_unknown_transaction_with_readings_is_billed_flagged(
        self, station: SimStation, csms: Running
    ) -> None:
        """A stop the CSMS never saw started, with its own register readings, bills them."""
        answer = await station.call(
            "StopTransaction",
            {
                "transactionId": 987654,
                "meterStop": 500,
                "timestamp": "2026-11-26T09:00:00Z",
                "transactionData": [
                    {"timestamp": "2026-11-26T08:00:00Z", "sampledValue": [{"value": "100"}]}
                ],
            },
        )
        assert answer == {}
        tx = await csms.storage.find_transaction("CP-1", "987654")
        assert tx is not None
        assert "unknown_transaction" in tx.anomalies
        assert tx.energy_wh == 400
        [ended] = await ended_events(csms)
        assert ended.data["transaction_id"] == "987654"
        assert ended.data["energy_wh"] == 400
        assert "unknown_transaction" in ended.data["anomalies"]

    async def test_a_stop_of_a_session_never_started_bills_its_earlier_meter_values(
        self, station: SimStation, csms: Running
    ) -> None:
        """MeterValues that named the transaction are the stop's evidence too."""
        await station.call(
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": 4242,
                "meterValue": [
                    {"timestamp": "2026-11-26T08:00:00Z", "sampledValue": [{"value": "7000"}]}
                ],
            },
        )
        await station.call(
            "StopTransaction",
            {"transactionId": 4242, "meterStop": 9_500, "timestamp": "2026-11-26T09:00:00Z"},
        )
        [ended] = await ended_events(csms)
        assert ended.data["energy_wh"] == 2_500

    async def test_a_strangers_stops_without_readings_mint_no_billing_events(
        self, station: SimStation, csms: Running
    ) -> None:
        """Twenty stops of sessions never started, meterStop alone: answered, kept, not billed."""
        before = stops_counted("1.6", "ignored")
        for n in range(20):
            answer = await station.call(
                "StopTransaction",
                {
                    "transactionId": 5_000 + n,
                    "idTag": "STRANGER",
                    "meterStop": 12_000,
                    "timestamp": "2026-11-26T09:00:00Z",
                },
            )
            assert answer["idTagInfo"]["status"] == "Invalid"
        assert await ended_events(csms) == []
        tx = await csms.storage.find_transaction("CP-1", "5000")
        assert tx is not None
        assert tx.ended_at is not None
        assert "unknown_transaction" in tx.anomalies
        assert stops_counted("1.6", "ignored") == before + 20


async def ended_events(csms: Running) -> list[Event]:
    return [
        r.event
        for r in await csms.storage.outbox_list(100, pending_only=False)
        if r.event.type == "transaction.ended"
    ]


def stops_counted(version: str, outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "csms_unknown_transaction_stops_total", {"ocpp_version": version, "outcome": outcome}
    )
    return value or 0.0


class TestOtherStationMessages:
    @pytest.mark.parametrize(
        ("action", "payload", "answer"),
        [
            ("Heartbeat", {}, None),
            (
                "DataTransfer",
                {"vendorId": "com.acme", "messageId": "x", "data": "1"},
                {"status": "UnknownVendorId"},
            ),
            ("DiagnosticsStatusNotification", {"status": "Uploaded"}, {}),
            ("FirmwareStatusNotification", {"status": "Installed"}, {}),
            ("LogStatusNotification", {"status": "Uploading", "requestId": 3}, {}),
            (
                "SecurityEventNotification",
                {"type": "FirmwareUpdated", "timestamp": "2026-11-26T09:00:00Z"},
                {},
            ),
        ],
    )
    async def test_each_notification_is_answered_and_kept(
        self,
        station: SimStation,
        csms: Running,
        action: str,
        payload: dict[str, object],
        answer: dict[str, object] | None,
    ) -> None:
        """Every 1.6 station-to-CSMS action is answered per its schema."""
        result = await station.call(action, payload)
        if answer is None:
            assert "currentTime" in result
        else:
            assert result == answer
            if action != "Heartbeat":
                kept = await csms.storage.list_notifications("CP-1", action)
                assert [n.payload for n in kept] == [payload]

    async def test_csms_to_station_action_sent_by_a_station_is_not_supported(
        self, station: SimStation
    ) -> None:
        """A station sending 'Reset' gets NotSupported, an invented action NotImplemented."""
        with pytest.raises(CallError) as caught:
            await station.call("Reset", {"type": "Hard"})
        assert caught.value.code == "NotSupported"
        with pytest.raises(CallError) as caught:
            await station.call("MakeCoffee", {})
        assert caught.value.code == "NotImplemented"


class TestBillingIntegrity:
    @pytest.mark.parametrize(
        ("meter_start", "samples", "meter_stop", "energy", "anomalies"),
        [
            # meters that really start at 0 (a third-party simulator's fleet, issue 20)
            (0, [("136.47", "Wh"), ("199.19", "Wh")], 199, 199, []),
            (0, [("60", "Wh")], 100, 100, []),
            (0, [("49.12", "Wh")], 49, 49, []),
            (0, [("40", "Wh")], 100, 100, []),
            (12_000, [("12030", "Wh")], 12_049, 49, []),
            # 30 kWh one minute after the start: possible at 1 MW (the time counts from the start)
            (1_000, [("31000", "Wh")], 40_000, 39_000, []),
            # kWh sent without a unit (so read as Wh)
            (52_000, [("52.3", None), ("53.9", None)], 55_000, 3_000, ["register_unit_mismatch"]),
            # a session counter instead of the lifetime register
            (52_000, [("0", "Wh"), ("1500", "Wh")], 55_000, 3_000, ["register_is_session_counter"]),
        ],
    )
    async def test_the_stations_own_figures_are_billed(
        self,
        station: SimStation,
        csms: Running,
        meter_start: int,
        samples: list[tuple[str, str | None]],
        meter_stop: int,
        energy: float,
        anomalies: list[str],
    ) -> None:
        """transaction.ended bills meterStop - meterStart, overriding nothing, flagged or not."""
        ended = await self.session(station, csms, meter_start, samples, meter_stop)
        assert ended["energy_wh"] == ended["station_energy_wh"] == energy
        assert ended["energy_overridden"] is False
        assert ended["anomalies"] == anomalies

    @pytest.mark.parametrize(
        ("meter_start", "samples", "meter_stop", "energy", "station_energy", "anomalies"),
        [
            # an offline start sent as 0 while the register reads its lifetime value
            (0, [("3096681", "Wh")], 3_097_000, 319, 3_097_000, ["meter_start_placeholder"]),
            # meterStop a few Wh below meterStart
            (10_000, [], 9_996, 0, -4, ["meter_stop_below_start"]),
        ],
    )
    async def test_an_impossible_figure_is_overridden_unmistakably(
        self,
        station: SimStation,
        csms: Running,
        meter_start: int,
        samples: list[tuple[str, str | None]],
        meter_stop: int,
        energy: float,
        station_energy: float,
        anomalies: list[str],
    ) -> None:
        """The settled energy comes with the station's own figure, the flag and the rule."""
        ended = await self.session(station, csms, meter_start, samples, meter_stop)
        assert (ended["energy_wh"], ended["station_energy_wh"]) == (energy, station_energy)
        assert ended["energy_overridden"] is True
        assert ended["anomalies"] == anomalies

    async def session(
        self,
        station: SimStation,
        csms: Running,
        meter_start: int,
        samples: list[tuple[str, str | None]],
        meter_stop: int,
    ) -> dict[str, Any]:
        """Start at 09:00, one sample a minute from 09:01, stop at 09:30; the ended event's data."""
        tx_id = await station.start(1, "TAG", meter_start, "2026-11-26T09:00:00Z")
        for minute, (value, unit) in enumerate(samples, start=1):
            sampled: dict[str, str] = {"value": value}
            if unit:
                sampled["unit"] = unit
            await station.call(
                "MeterValues",
                {
                    "connectorId": 1,
                    "transactionId": tx_id,
                    "meterValue": [
                        {"timestamp": f"2026-11-26T09:{minute:02}:00Z", "sampledValue": [sampled]}
                    ],
                },
            )
        await station.call(
            "StopTransaction",
            {"transactionId": tx_id, "meterStop": meter_stop, "timestamp": "2026-11-26T09:30:00Z"},
        )
        [ended] = [
            r.event
            for r in await csms.storage.outbox_list(100, pending_only=False)
            if r.event.type == "transaction.ended"
        ]
        return ended.data
