"""A CALL resent after a lost answer, to a new connection, a restarted CSMS or
another instance on the same database: the same answer, its effects once
(docs/adr/0012-durable-answers.md). On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs

from csms.app import Running
from csms.core.ports import TransactionFilter
from scripts.simulate import OCPP201, SimStation
from tests.integration.conftest import StartCsms, ws_url

START = {"connectorId": 1, "idTag": "T-1", "meterStart": 100, "timestamp": "2026-11-26T07:00:00Z"}
METER_VALUES = {
    "connectorId": 1,
    "meterValue": [
        {
            "timestamp": "2026-11-26T07:05:00Z",
            "sampledValue": [{"value": "1500", "measurand": "Energy.Active.Import.Register"}],
        }
    ],
}
STATUS = {"connectorId": 1, "errorCode": "NoError", "status": "Charging"}
TRANSACTION_EVENT = {
    "eventType": "Started",
    "timestamp": "2026-11-26T07:00:00Z",
    "triggerReason": "Authorized",
    "seqNo": 0,
    "transactionInfo": {"transactionId": "TX-9"},
    "evse": {"id": 1, "connectorId": 1},
    "idToken": {"idToken": "T-1", "type": "ISO14443"},
    "meterValue": [
        {
            "timestamp": "2026-11-26T07:00:00Z",
            "sampledValue": [{"value": 100, "measurand": "Energy.Active.Import.Register"}],
        }
    ],
}


def call(message_id: str, action: str, payload: dict[str, Any]) -> str:
    return orjson.dumps([2, message_id, action, payload]).decode()


async def events(csms: Running, kind: str) -> list[dict[str, Any]]:
    return [
        r.event.data
        for r in await csms.storage.outbox_list(1000, pending_only=False)
        if r.event.type == kind
    ]


Scenario = tuple[Running, Callable[[], Awaitable[Running]]]


@pytest.fixture(params=["reconnect", "restart", "other_instance"])
async def scenario(request: pytest.FixtureRequest, start_csms: StartCsms) -> Scenario:
    """The CSMS a station first talks to, and how to get the one it resends
    to: the same one (a new connection), a new one after the first stopped
    (a restart: nothing survives but the database), or a second instance on
    the same database while the first runs (a cluster)."""
    first = await start_csms()

    async def second() -> Running:
        if request.param == "reconnect":
            return first
        if request.param == "restart":
            await first.stop()
        return await start_csms()

    return first, second


async def send_twice(scenario: Scenario, frame: str, protocol: str = "ocpp1.6") -> Any:
    """Send ``frame`` to the first CSMS, then on a new connection to the second;
    both answers and the second CSMS. Checks that the resend was answered as a
    repeat: from the memory cache by the same process, else from the database."""
    first, second = scenario
    async with SimStation(ws_url(first), "CP-R", protocol=protocol) as sim:
        before = await sim.send_raw(frame)
    other = await second()
    with capture_logs() as logs:
        async with SimStation(ws_url(other), "CP-R", protocol=protocol) as sim:
            after = await sim.send_raw(frame)
    repeats = [e for e in logs if e["event"] == "call_repeated"]
    assert len(repeats) == 1
    assert repeats[0].get("durable", False) is (other is not first)
    return before, after, other


class TestResentCall:
    async def test_a_resent_start_transaction_gets_the_same_transaction_id(
        self, scenario: Scenario
    ) -> None:
        """The same transactionId, one transaction row, one transaction.started event."""
        before, after, second = await send_twice(scenario, call("42", "StartTransaction", START))
        assert before[0] == 3
        assert after == before
        rows = await second.storage.list_transactions(TransactionFilter(station_id="CP-R"))
        assert [r.transaction_id for r in rows] == [str(before[2]["transactionId"])]
        assert len(await events(second, "transaction.started")) == 1

    async def test_resent_meter_values_are_booked_once(self, scenario: Scenario) -> None:
        """One meter.values event and one reading, however often the CALL comes."""
        before, after, second = await send_twice(scenario, call("7", "MeterValues", METER_VALUES))
        assert before == after == [3, "7", {}]
        assert len(await events(second, "meter.values")) == 1

    async def test_a_resent_status_notification_is_reported_once(self, scenario: Scenario) -> None:
        """One station.status_changed event for one StatusNotification."""
        before, after, second = await send_twice(scenario, call("8", "StatusNotification", STATUS))
        assert before == after == [3, "8", {}]
        assert len(await events(second, "station.status_changed")) == 1

    async def test_a_resent_transaction_event_is_booked_once(self, scenario: Scenario) -> None:
        """2.0.1: the same answer, one transaction, one transaction.started event."""
        frame = call("9", "TransactionEvent", TRANSACTION_EVENT)
        before, after, second = await send_twice(scenario, frame, protocol=OCPP201)
        assert before[0] == 3
        assert after == before
        rows = await second.storage.list_transactions(TransactionFilter(station_id="CP-R"))
        assert len(rows) == 1
        assert len(await events(second, "transaction.started")) == 1
        assert len(await events(second, "meter.values")) == 1

    async def test_a_reused_message_id_with_another_payload_is_handled(
        self, scenario: Scenario
    ) -> None:
        """Firmware counting ids from 1 again after a reboot sends a new CALL: handled."""
        first, other = scenario
        async with SimStation(ws_url(first), "CP-R") as sim:
            await sim.send_raw(call("1", "StatusNotification", {**STATUS, "status": "Preparing"}))
        second = await other()
        async with SimStation(ws_url(second), "CP-R") as sim:
            assert await sim.send_raw(call("1", "StatusNotification", STATUS)) == [3, "1", {}]
        reported = await events(second, "station.status_changed")
        assert len(reported) == 2
        connectors = await second.storage.list_connectors("CP-R")
        assert [c.status for c in connectors] == ["Charging"]


class TestRetention:
    async def test_answers_older_than_the_cutoff_are_pruned(self, csms: Running) -> None:
        """A pruned answer no longer refuses a resend: the CALL is handled again."""
        async with SimStation(ws_url(csms), "CP-P") as sim:
            await sim.send_raw(call("5", "StatusNotification", STATUS))
        stored = await csms.storage.find_call_answer("CP-P", "StatusNotification")
        assert stored is not None
        assert (stored.message_id, stored.answer) == ("5", {})
        assert await csms.storage.prune_call_answers(datetime.now(UTC) + timedelta(seconds=1)) == 1
        assert await csms.storage.find_call_answer("CP-P", "StatusNotification") is None
