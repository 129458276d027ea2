"""Sessions that end without their stop (issue 21): closed on the evidence, reported
ended once; TxProfiles expire with their session; a 2.0.1 remote start is linked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from csms.app import Running
from csms.core.domain import AuthorizationStatus, IdToken
from csms.core.events import Event
from scripts.simulate import SimStation
from tests.integration.conftest import StartCsms, http_url, ws_url

TOKEN = "test-session-ends-token-0123456789"
# Short enough for a test, long enough for the calls sent within it.
ABANDON_AFTER = 0.5


async def events(csms: Running, station_id: str, kind: str) -> list[Event]:
    """The station's outbox events of one type, oldest first."""
    rows = await csms.storage.outbox_list(10_000, pending_only=False)
    return [
        r.event
        for r in sorted(rows, key=lambda r: r.seq)
        if r.event.station_id == station_id and r.event.type == kind
    ]


@pytest.fixture
async def running(start_csms: StartCsms) -> Running:
    return await start_csms(api_token=TOKEN, abandon_after=ABANDON_AFTER)


@pytest.fixture
async def api(running: Running) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        yield session


async def api_get(running: Running, session: aiohttp.ClientSession, path: str) -> Any:
    async with session.get(http_url(running, path)) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def api_post(
    running: Running, session: aiohttp.ClientSession, path: str, body: dict[str, Any]
) -> Any:
    async with session.post(http_url(running, path), json=body) as r:
        assert r.status == 200, await r.text()
        return await r.json()


class TestAbandonedSessions:
    async def test_a_new_session_on_the_connector_closes_the_one_never_stopped(
        self, running: Running
    ) -> None:
        """An Invalid start left open is closed by the next start on its connector,
        billed on its readings; its late stop is answered and not billed again."""
        async with SimStation(ws_url(running), "AB-1") as cp:
            await cp.boot()
            first = await cp.start(1, "NOBODY", 1_000)
            assert cp.last_result is not None
            assert cp.last_result["idTagInfo"]["status"] == "Invalid"
            await cp.meter_values(1, first, 1_400)
            second = await cp.start(1, "NOBODY", 1_400)

            old = await running.storage.find_transaction("AB-1", str(first))
            assert old is not None
            assert old.ended_at is not None
            assert "abandoned_superseded" in old.anomalies
            assert "meter_stop_missing" in old.anomalies
            assert old.energy_wh == 400
            assert await running.storage.count_active_transactions() == 1
            [ended] = await events(running, "AB-1", "transaction.ended")
            assert ended.data["transaction_id"] == str(first)
            assert ended.data["energy_overridden"] is True

            answer = await cp.stop(first, 1_450, id_tag="NOBODY")
            assert answer == {"idTagInfo": {"status": "Invalid"}}
            assert len(await events(running, "AB-1", "transaction.ended")) == 1
            flagged = await running.storage.find_transaction("AB-1", str(first))
            assert flagged is not None
            assert "stopped_after_abandoned" in flagged.anomalies
            assert flagged.energy_wh == 400
            new = await running.storage.find_transaction("AB-1", str(second))
            assert new is not None
            assert new.is_active

    async def test_a_connector_available_for_long_closes_its_session(
        self, running: Running
    ) -> None:
        """A session whose connector reports Available, with no message for the bound,
        is closed at the station's next Heartbeat as abandoned_available."""
        async with SimStation(ws_url(running), "AB-2") as cp:
            await cp.boot()
            tx_id = await cp.start(1, "NOBODY", 5_000)
            await cp.status(1, "Available")
            await cp.heartbeat()
            still = await running.storage.find_transaction("AB-2", str(tx_id))
            assert still is not None
            assert still.is_active
            await asyncio.sleep(ABANDON_AFTER + 0.1)
            await cp.heartbeat()
        closed = await running.storage.find_transaction("AB-2", str(tx_id))
        assert closed is not None
        assert not closed.is_active
        assert "abandoned_available" in closed.anomalies
        assert await running.storage.count_active_transactions() == 0
        [ended] = await events(running, "AB-2", "transaction.ended")
        assert "no_meter_readings" in ended.data["anomalies"]

    async def test_a_reboot_closes_a_refused_session_once_the_bound_passed(
        self, running: Running
    ) -> None:
        """After a BootNotification, an open session the CSMS refused is closed once
        the bound passed with no stop; an accepted one waits for its queued stop."""
        await running.storage.put_id_token(IdToken("GOOD", AuthorizationStatus.ACCEPTED))
        async with SimStation(ws_url(running), "AB-3") as cp:
            await cp.boot()
            refused = await cp.start(1, "NOBODY", 100)
            accepted = await cp.start(2, "GOOD", 200)
            await cp.boot()
            await cp.heartbeat()
            assert await running.storage.count_active_transactions() == 2
            await asyncio.sleep(ABANDON_AFTER + 0.1)
            await cp.heartbeat()
        closed = await running.storage.find_transaction("AB-3", str(refused))
        assert closed is not None
        assert "abandoned_after_reboot" in closed.anomalies
        assert closed.stop_reason == "Reboot"
        kept = await running.storage.find_transaction("AB-3", str(accepted))
        assert kept is not None
        assert kept.is_active

    async def test_a_stop_sent_right_after_the_reboot_is_billed_as_sent(
        self, running: Running
    ) -> None:
        """A refused session whose station sends its kept stop after the boot is
        ended by that stop, with the station's figures."""
        async with SimStation(ws_url(running), "AB-4") as cp:
            await cp.boot()
            tx_id = await cp.start(1, "NOBODY", 100)
            await cp.boot()
            await cp.stop(tx_id, 900, reason="Reboot")
            await asyncio.sleep(ABANDON_AFTER + 0.1)
            await cp.heartbeat()
        tx = await running.storage.find_transaction("AB-4", str(tx_id))
        assert tx is not None
        assert (tx.energy_wh, tx.anomalies) == (800, ())

    async def test_a_new_2_0_1_transaction_on_the_evse_closes_the_open_one(
        self, running: Running
    ) -> None:
        """A 2.0.1 Started on an EVSE with another transaction open closes that one;
        its Ended coming later is answered and flagged, not billed again."""
        async with SimStation(ws_url(running), "AB-5", protocol="ocpp2.0.1") as cp:
            await cp.boot201()
            await cp.transaction_event("Started", "TX-OLD", 0, "Authorized", energy_wh=10)
            await cp.transaction_event("Updated", "TX-OLD", 1, "MeterValuePeriodic", energy_wh=60)
            await cp.transaction_event("Started", "TX-NEW", 0, "Authorized", energy_wh=60)
            old = await running.storage.find_transaction("AB-5", "TX-OLD")
            assert old is not None
            assert (old.is_active, old.energy_wh) == (False, 50)
            assert "abandoned_superseded" in old.anomalies
            await cp.transaction_event("Ended", "TX-OLD", 2, "StopAuthorized", energy_wh=70)
        ended = await events(running, "AB-5", "transaction.ended")
        assert [e.data["transaction_id"] for e in ended] == ["TX-OLD"]
        flagged = await running.storage.find_transaction("AB-5", "TX-OLD")
        assert flagged is not None
        assert "stopped_after_abandoned" in flagged.anomalies
        assert await running.storage.count_active_transactions() == 1


def tx_profile(profile_id: int, purpose: str, transaction_id: int | None) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "chargingProfileId": profile_id,
        "stackLevel": 0,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute" if purpose == "TxProfile" else "Recurring",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
        },
    }
    if purpose != "TxProfile":
        profile["recurrencyKind"] = "Daily"
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    return profile


class TestTxProfiles:
    async def test_a_tx_profile_leaves_the_station_view_when_its_session_ends(
        self, running: Running, api: aiohttp.ClientSession
    ) -> None:
        """SetChargingProfile of a TxProfile for a session, accepted: gone from the
        station's charging_profiles at the StopTransaction; a TxDefaultProfile stays."""
        async with SimStation(ws_url(running), "TXP-1") as cp:
            await cp.boot()
            tx_id = await cp.start(1, "NOBODY", 0)
            for profile in (
                tx_profile(7, "TxProfile", tx_id),
                tx_profile(8, "TxDefaultProfile", None),
            ):
                await api_post(
                    running,
                    api,
                    "/api/v1/stations/TXP-1/ocpp/SetChargingProfile",
                    {"connectorId": 1, "csChargingProfiles": profile},
                )
            detail = await api_get(running, api, "/api/v1/stations/TXP-1")
            assert sorted(p["profile_id"] for p in detail["charging_profiles"]) == [7, 8]
            await cp.stop(tx_id, 500)
            detail = await api_get(running, api, "/api/v1/stations/TXP-1")
            assert [p["profile_id"] for p in detail["charging_profiles"]] == [8]


class TestRemoteStartLink:
    async def test_a_2_0_1_transaction_names_the_request_start_that_led_to_it(
        self, running: Running, api: aiohttp.ClientSession
    ) -> None:
        """A start command's remote_start_id, carried back in transactionInfo, is on
        the transaction resource and in transaction.started / transaction.ended."""
        async with SimStation(ws_url(running), "RS-1", protocol="ocpp2.0.1") as cp:
            await cp.boot201()
            command = await api_post(
                running,
                api,
                "/api/v1/stations/RS-1/commands/start",
                {"id_token": "APP-1", "evse_id": 1, "remote_start_id": 4242},
            )
            assert command["payload"]["remoteStartId"] == 4242
            for event_type, seq_no, trigger in [
                ("Started", 0, "RemoteStart"),
                ("Ended", 1, "StopAuthorized"),
            ]:
                await cp.call(
                    "TransactionEvent",
                    {
                        "eventType": event_type,
                        "timestamp": "2026-12-04T08:00:00Z",
                        "triggerReason": trigger,
                        "seqNo": seq_no,
                        "transactionInfo": {"transactionId": "TX-R", "remoteStartId": 4242},
                        "evse": {"id": 1, "connectorId": 1},
                    },
                )
        resource = await api_get(running, api, "/api/v1/transactions/TX-R")
        assert resource["remote_start_id"] == 4242
        [started] = await events(running, "RS-1", "transaction.started")
        [ended] = await events(running, "RS-1", "transaction.ended")
        assert started.data["remote_start_id"] == ended.data["remote_start_id"] == 4242
