"""The storage contract of CallAnswered (docs/adr/0012-durable-answers.md), on
SQLite, PostgreSQL and in memory."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from csms.core.errors import AlreadyAnsweredError
from csms.core.events import Event
from csms.core.ports import CallAnswered, EventAppended, Storage, WriteOp

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def storage(any_storage: Storage) -> Storage:
    return any_storage


def answered(
    message_id: str = "m-1",
    digest: str = "d-1",
    station_id: str = "CP-1",
    action: str = "StartTransaction",
    answer: dict[str, object] | None = None,
) -> CallAnswered:
    return CallAnswered(station_id, action, message_id, digest, answer or {"transactionId": 7})


def unit(answer: CallAnswered) -> list[WriteOp]:
    """The answer and the event its CALL's effects report."""
    event = Event.new("transaction.started", answer.station_id, "1.6", T0, T0, {"n": 1})
    return [EventAppended(event), answer]


async def commit_all(storage: Storage, units: Sequence[Sequence[WriteOp]]) -> list[object]:
    """Commit ``units`` concurrently (so they share batches); results in unit order."""
    return await asyncio.gather(*(storage.commit(u) for u in units), return_exceptions=True)


async def event_count(storage: Storage) -> int:
    return len(await storage.outbox_list(1000, pending_only=False))


class TestCallAnswered:
    async def test_an_answer_commits_with_its_unit(self, storage: Storage) -> None:
        """The last answer per station and action is kept as committed."""
        await storage.commit(unit(answered()))
        assert await storage.find_call_answer("CP-1", "StartTransaction") == answered()
        assert await storage.find_call_answer("CP-1", "MeterValues") is None
        assert await event_count(storage) == 1

    async def test_the_same_call_again_is_refused_with_its_answer(self, storage: Storage) -> None:
        """Same id and digest: nothing of the unit applies; the stored answer comes back."""
        await storage.commit(unit(answered()))
        with pytest.raises(AlreadyAnsweredError) as refused:
            await storage.commit(unit(answered(answer={"transactionId": 8})))
        assert refused.value.answer == {"transactionId": 7}
        assert await event_count(storage) == 1
        assert await storage.find_call_answer("CP-1", "StartTransaction") == answered()

    @pytest.mark.parametrize(
        "again", [answered(message_id="m-2"), answered(digest="d-2")], ids=["new_id", "new_payload"]
    )
    async def test_another_call_of_the_action_replaces_the_answer(
        self, storage: Storage, again: CallAnswered
    ) -> None:
        """A new message id, or an old id with another payload, is a new CALL."""
        await storage.commit(unit(answered()))
        await storage.commit(unit(again))
        assert await storage.find_call_answer("CP-1", "StartTransaction") == again
        assert await event_count(storage) == 2

    async def test_a_resend_in_a_batch_fails_alone(self, storage: Storage) -> None:
        """The resend's unit is refused; the units batched with it commit."""
        await storage.commit(unit(answered(station_id="CP-0")))
        fresh = [unit(answered(station_id=f"CP-{i}")) for i in range(1, 21)]
        resend = unit(answered(station_id="CP-0", answer={"other": True}))
        results = await commit_all(storage, [*fresh[:10], resend, *fresh[10:]])
        assert isinstance(results[10], AlreadyAnsweredError)
        assert results[10].answer == {"transactionId": 7}
        assert results[:10] + results[11:] == [None] * 20
        assert await event_count(storage) == 21

    async def test_old_answers_are_pruned(self, storage: Storage) -> None:
        """Answers committed before the cutoff go, in bounded rounds; the CALL is new again."""
        for i in range(3):
            await storage.commit(unit(answered(station_id=f"CP-{i}")))
        later = datetime.now(UTC) + timedelta(seconds=1)
        assert await storage.prune_call_answers(datetime.now(UTC) - timedelta(hours=1)) == 0
        assert await storage.prune_call_answers(later, limit=2) == 2
        assert await storage.prune_call_answers(later, limit=2) == 1
        await storage.commit(unit(answered(station_id="CP-0")))
        assert await event_count(storage) == 4

    async def test_deleting_a_station_drops_its_answers(self, storage: Storage) -> None:
        """A station registered again under the id starts without the old answers."""
        await storage.register_station("CP-1", at=T0)
        await storage.commit(unit(answered()))
        assert await storage.delete_station("CP-1")
        assert await storage.find_call_answer("CP-1", "StartTransaction") is None
