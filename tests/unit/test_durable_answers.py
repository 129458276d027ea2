"""The version adapters answer a resent CALL from its durable record, with
services on a MemoryStorage standing for a database two processes share."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from csms.adapters.storage.memory import MemoryStorage
from csms.core.domain import AuthorizationStatus, IdToken
from csms.core.ports import CallAnswered
from csms.services import StationContext
from csms.services.answers import AnswerRetention
from csms.transport.rpc import Call
from protocols import ocpp16
from protocols.common import Adapter
from tests.unit.services_fixture import T0, FakeClock, build_services

OCPP16 = ocpp16.adapter()
START = {"connectorId": 1, "idTag": "TAG-1", "meterStart": 10, "timestamp": "2026-05-01T08:00:00Z"}
STATUS = {"connectorId": 1, "errorCode": "NoError", "status": "Charging"}


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


def process(storage: MemoryStorage) -> StationContext:
    """A new CSMS process on ``storage``: nothing in memory but the database."""
    return StationContext("CP-1", "1.6", build_services(storage, FakeClock()))


async def handle(ctx: StationContext, call: Call, adapter: Adapter = OCPP16) -> dict[str, Any]:
    return await adapter.handle(ctx, call)


async def event_types(storage: MemoryStorage) -> list[str]:
    return [r.event.type for r in await storage.outbox_list(100, pending_only=False)]


class TestResend:
    async def test_a_resend_to_another_process_gets_the_recorded_answer(
        self, storage: MemoryStorage
    ) -> None:
        """Same id, action and payload: the answer of the first handling, its effects once."""
        call = Call("m-1", "StatusNotification", STATUS)
        assert await handle(process(storage), call) == {}
        with capture_logs() as logs:
            assert await handle(process(storage), call) == {}
        assert await event_types(storage) == ["station.status_changed"]
        assert [e.get("durable") for e in logs if e["event"] == "call_repeated"] == [True]

    async def test_a_resent_start_keeps_its_answer_when_the_token_changed(
        self, storage: MemoryStorage
    ) -> None:
        """The recorded answer, not one computed again: the same id and idTagInfo."""
        await storage.put_id_token(IdToken("TAG-1", AuthorizationStatus.ACCEPTED))
        call = Call("m-2", "StartTransaction", START)
        first = await handle(process(storage), call)
        await storage.put_id_token(IdToken("TAG-1", AuthorizationStatus.BLOCKED))
        assert await handle(process(storage), call) == first
        assert first["idTagInfo"]["status"] == "Accepted"
        assert await event_types(storage) == ["transaction.started"]

    async def test_a_reused_id_with_another_payload_is_handled(
        self, storage: MemoryStorage
    ) -> None:
        """Firmware counting ids from 1 again: a new CALL under an old id is handled."""
        await handle(process(storage), Call("1", "StatusNotification", STATUS))
        again = Call("1", "StatusNotification", {**STATUS, "status": "Finishing"})
        assert await handle(process(storage), again) == {}
        assert await event_types(storage) == ["station.status_changed"] * 2

    async def test_a_call_that_writes_nothing_records_nothing(self, storage: MemoryStorage) -> None:
        """Authorize reads only; a Heartbeat's last-seen write needs no answer record."""
        ctx = process(storage)
        await handle(ctx, Call("h-1", "Heartbeat", {}))
        await handle(ctx, Call("a-1", "Authorize", {"idTag": "TAG-1"}))
        assert await storage.find_call_answer("CP-1", "Heartbeat") is None
        assert await storage.find_call_answer("CP-1", "Authorize") is None

    async def test_a_boot_under_a_reused_id_is_handled_again(self, storage: MemoryStorage) -> None:
        """The same boot under the same id after a reboot: booked again, with the time now."""
        boot = Call("1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
        await handle(process(storage), boot)
        await handle(process(storage), boot)
        assert await event_types(storage) == ["station.booted"] * 2
        assert await storage.find_call_answer("CP-1", "BootNotification") is None


class TestRetention:
    async def test_prune_deletes_what_is_past_retention_in_rounds(
        self, storage: MemoryStorage
    ) -> None:
        """Every answer older than the retention goes, however many rounds it takes."""
        for i in range(5):
            await storage.commit([CallAnswered(f"CP-{i}", "MeterValues", "1", "d", {})])
        clock = FakeClock(T0.replace(year=2100))
        retention = AnswerRetention(storage, clock, batch=2)
        assert await retention.prune() == 5
        assert await retention.prune() == 0
        assert await storage.find_call_answer("CP-0", "MeterValues") is None
