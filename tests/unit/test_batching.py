"""GroupCommitter: natural batching, failure isolation, clean shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from csms.adapters.storage.batching import GroupCommitter, LookupBatcher, group_ops
from csms.core.domain import Transaction
from csms.core.errors import StorageError, StorageUnavailableError
from csms.core.events import Event
from csms.core.ports import EventAppended, StationSeen, TransactionChanged, TransactionStarted


class FakeDatabase:
    """Records each batch; a unit named "bad" makes its whole transaction fail."""

    def __init__(self, error: type[StorageError] = StorageError) -> None:
        self.batches: list[list[str]] = []
        self.committed: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.error = error

    async def apply(self, units: Sequence[str]) -> None:
        self.batches.append(list(units))
        await self.gate.wait()
        if "bad" in units:
            raise self.error("constraint violated")
        self.committed.extend(units)


async def test_idle_unit_is_flushed_alone_at_once() -> None:
    """With nothing in flight, a unit is committed in a batch of its own."""
    db = FakeDatabase()
    committer = GroupCommitter(db.apply)
    await committer.submit("a")
    assert db.batches == [["a"]]
    await committer.close()


async def test_units_arriving_during_a_flush_share_the_next_one() -> None:
    """Units submitted while a transaction runs are committed together next."""
    db = FakeDatabase()
    committer = GroupCommitter(db.apply)
    db.gate.clear()
    first = asyncio.create_task(committer.submit("a"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the flush of "a" is now waiting on the gate
    rest = [asyncio.create_task(committer.submit(name)) for name in "bcd"]
    await asyncio.sleep(0)
    db.gate.set()
    await asyncio.gather(first, *rest)
    assert db.batches == [["a"], ["b", "c", "d"]]
    await committer.close()


async def test_batches_respect_max_size() -> None:
    """No batch holds more than max_batch units; order is kept."""
    db = FakeDatabase()
    committer = GroupCommitter(db.apply, max_batch=2)
    await asyncio.gather(*(committer.submit(name) for name in "abcde"))
    assert db.batches == [["a", "b"], ["c", "d"], ["e"]]
    await committer.close()


async def test_bad_unit_fails_only_its_caller() -> None:
    """After a failed batch each unit is retried alone; only the bad one fails."""
    db = FakeDatabase()
    committer = GroupCommitter(db.apply)
    results = await asyncio.gather(
        *(committer.submit(name) for name in ("a", "bad", "c")), return_exceptions=True
    )
    assert results[0] is None
    assert isinstance(results[1], StorageError)
    assert results[2] is None
    assert db.committed == ["a", "c"]
    await committer.close()


async def test_unavailable_database_fails_the_batch_without_retries() -> None:
    """When the database is gone, every unit of the batch fails at once."""
    db = FakeDatabase(StorageUnavailableError)
    committer = GroupCommitter(db.apply)
    results = await asyncio.gather(
        *(committer.submit(name) for name in ("a", "bad")), return_exceptions=True
    )
    assert all(isinstance(r, StorageUnavailableError) for r in results)
    assert db.batches == [["a", "bad"]]
    await committer.close()


async def test_adapter_bug_reaches_caller_and_loop_survives() -> None:
    """An unexpected exception fails its caller; later units still commit."""

    async def apply(units: Sequence[str]) -> None:
        if "boom" in units:
            raise ZeroDivisionError

    committer = GroupCommitter(apply)
    with pytest.raises(ZeroDivisionError):
        await committer.submit("boom")
    await committer.submit("fine")
    await committer.close()


async def test_close_flushes_pending_then_refuses() -> None:
    """close() commits what is pending, ends the loop task, then refuses new units."""
    db = FakeDatabase()
    committer = GroupCommitter(db.apply)
    tasks = [asyncio.create_task(committer.submit(name)) for name in "ab"]
    await asyncio.sleep(0)
    await committer.close()
    assert [t.result() for t in tasks] == [None, None]
    assert db.committed == ["a", "b"]
    with pytest.raises(StorageError):
        await committer.submit("c")


async def test_cancelled_close_fails_waiting_callers() -> None:
    """Cancelling close() mid-flush leaves no caller waiting forever."""
    db = FakeDatabase()
    committer = GroupCommitter(db.apply)
    db.gate.clear()
    waiting = asyncio.create_task(committer.submit("a"))
    await asyncio.sleep(0)
    closing = asyncio.create_task(committer.close())
    await asyncio.sleep(0)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    with pytest.raises(StorageError):
        await waiting


async def test_cancelled_caller_does_not_stop_others() -> None:
    """A caller cancelled while waiting leaves the loop serving the rest."""
    db = FakeDatabase()
    committer = GroupCommitter(db.apply)
    db.gate.clear()
    cancelled = asyncio.create_task(committer.submit("a"))
    await asyncio.sleep(0)
    cancelled.cancel()
    other = asyncio.create_task(committer.submit("b"))
    await asyncio.sleep(0)
    db.gate.set()
    await other
    assert cancelled.cancelled()
    await committer.close()


async def test_with_two_in_flight_the_next_batch_goes_while_the_first_commits() -> None:
    """max_in_flight=2: a second batch is applied before the first is done; a
    third waits for one of them, then takes everything that queued meanwhile."""
    db = FakeDatabase()
    committer = GroupCommitter(db.apply, max_in_flight=2, overlap_at=1)
    db.gate.clear()
    first = asyncio.create_task(committer.submit("a"))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(committer.submit("b"))
    await asyncio.sleep(0.01)
    assert db.batches == [["a"], ["b"]]  # both in the database at once
    rest = [asyncio.create_task(committer.submit(name)) for name in "cd"]
    await asyncio.sleep(0.01)
    assert db.batches == [["a"], ["b"]]  # no third transaction while two run
    db.gate.set()
    await asyncio.gather(first, second, *rest)
    assert db.batches == [["a"], ["b"], ["c", "d"]]
    assert sorted(db.committed) == ["a", "b", "c", "d"]
    await committer.close()


async def test_a_second_batch_overlaps_only_once_enough_units_wait() -> None:
    """Below overlap_at waiting units the next batch waits for the one in flight."""
    db = FakeDatabase()
    committer = GroupCommitter(db.apply, max_in_flight=2, overlap_at=3)
    db.gate.clear()
    first = asyncio.create_task(committer.submit("a"))
    await asyncio.sleep(0.01)
    few = [asyncio.create_task(committer.submit(name)) for name in "bc"]
    await asyncio.sleep(0.01)
    assert db.batches == [["a"]]  # two waiting: not worth a second transaction
    more = asyncio.create_task(committer.submit("d"))
    await asyncio.sleep(0.01)
    assert db.batches == [["a"], ["b", "c", "d"]]
    db.gate.set()
    await asyncio.gather(first, *few, more)
    await committer.close()


async def two_in_flight(
    db: FakeDatabase, committer: GroupCommitter[str], *names: str
) -> list[asyncio.Task[None]]:
    """Submit ``names`` one by one, so that the first two are batches of their own in
    flight at once (the database held) and the rest wait behind them."""
    tasks = []
    for name in names:
        tasks.append(asyncio.create_task(committer.submit(name)))
        await asyncio.sleep(0.01)
    assert db.batches[:2] == [[names[0]], [names[1]]]
    return tasks


async def test_with_two_in_flight_a_bad_batch_fails_only_its_caller() -> None:
    db = FakeDatabase()
    committer = GroupCommitter(db.apply, max_in_flight=2, overlap_at=1)
    db.gate.clear()
    tasks = await two_in_flight(db, committer, "a", "bad", "c")
    db.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] is None
    assert isinstance(results[1], StorageError)
    assert results[2] is None
    await committer.close()


async def test_with_two_in_flight_close_waits_for_every_batch() -> None:
    db = FakeDatabase()
    committer = GroupCommitter(db.apply, max_in_flight=2, overlap_at=1)
    db.gate.clear()
    tasks = await two_in_flight(db, committer, "a", "b", "c")
    closing = asyncio.create_task(committer.close())
    await asyncio.sleep(0.01)
    assert not closing.done()
    db.gate.set()
    await closing
    assert [t.result() for t in tasks] == [None, None, None]
    assert sorted(db.committed) == ["a", "b", "c"]


async def test_with_two_in_flight_a_cancelled_close_fails_every_waiting_caller() -> None:
    db = FakeDatabase()
    committer = GroupCommitter(db.apply, max_in_flight=2, overlap_at=1)
    db.gate.clear()
    waiting = await two_in_flight(db, committer, "a", "b", "c")  # c queued behind both
    closing = asyncio.create_task(committer.close())
    await asyncio.sleep(0.01)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    for task in waiting:
        with pytest.raises(StorageError):
            await task


def test_group_ops_orders_kinds_and_keeps_latest_seen() -> None:
    """Ops are grouped by kind in unit order; StationSeen keeps the latest per station."""
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    later = t0 + timedelta(seconds=5)
    tx = Transaction("CP-1", "tx-1", 1, 1, "TOKEN", 0.0, t0, "2.0.1")
    e1, e2 = (Event.new("station.connected", "CP-1", "2.0.1", t0, t0, {"n": n}) for n in (1, 2))
    grouped = group_ops(
        [
            [TransactionChanged(tx), StationSeen("CP-1", "1.6", later), EventAppended(e1)],
            [TransactionStarted(tx), StationSeen("CP-1", "1.6", t0), EventAppended(e2)],
        ]
    )
    assert grouped.seen == [StationSeen("CP-1", "1.6", later)]
    assert [op.event for op in grouped.events] == [e1, e2]
    assert [op.transaction for op in grouped.started + grouped.changed] == [tx, tx]


class FakeTable:
    """Answers lookups of many keys at once; a gate holds a query open."""

    def __init__(self, rows: dict[str, int]) -> None:
        self.rows = rows
        self.queries: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def fetch(self, keys: Sequence[str]) -> dict[str, int]:
        self.queries.append(list(keys))
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return {k: self.rows[k] for k in keys if k in self.rows}


async def test_lookups_made_during_a_query_share_the_next_one() -> None:
    table = FakeTable({"a": 1, "b": 2, "c": 3})
    lookups: LookupBatcher[str, int] = LookupBatcher(table.fetch)
    table.gate.clear()
    first = asyncio.create_task(lookups.get("a"))
    await asyncio.sleep(0.01)
    rest = [asyncio.create_task(lookups.get(key)) for key in ("b", "c", "b", "zzz")]
    await asyncio.sleep(0.01)
    table.gate.set()
    assert await first == 1
    assert [await task for task in rest] == [2, 3, 2, None]
    assert table.queries == [["a"], ["b", "c", "zzz"]]
    await lookups.close()


async def test_a_failed_lookup_query_fails_its_callers_and_the_next_one_runs() -> None:
    table = FakeTable({"a": 1})
    lookups: LookupBatcher[str, int] = LookupBatcher(table.fetch)
    table.fail = StorageUnavailableError("database down")
    with pytest.raises(StorageUnavailableError):
        await lookups.get("a")
    table.fail = None
    assert await lookups.get("a") == 1
    await lookups.close()


async def test_closing_fails_waiting_lookups() -> None:
    table = FakeTable({"a": 1})
    lookups: LookupBatcher[str, int] = LookupBatcher(table.fetch)
    table.gate.clear()
    waiting = asyncio.create_task(lookups.get("a"))
    await asyncio.sleep(0.01)
    await lookups.close()
    with pytest.raises(StorageError):
        await waiting
    with pytest.raises(StorageError):
        await lookups.get("a")
