"""`csms events`: the outbox as an operator sees it."""

from __future__ import annotations

from datetime import UTC, datetime

from csms.adapters.storage import open_storage
from csms.core.events import Event
from csms.core.ports import EventAppended
from tests.integration.test_process import run_cli

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


async def fill_outbox(database_url: str) -> list[int]:
    """Three events of two stations, the first one delivered; returns their seqs."""
    storage = await open_storage(database_url)
    try:
        await storage.commit(
            [
                EventAppended(Event.new("station.booted", "CP-1", "1.6", T0, T0, {})),
                EventAppended(Event.new("station.connected", "CP-2", "1.6", T0, T0, {})),
                EventAppended(Event.new("meter.values", "CP-1", "2.0.1", T0, T0, {})),
            ]
        )
        seqs = [row.seq for row in await storage.outbox_pending(10)]
        await storage.outbox_mark_delivered(seqs[:1], T0)
    finally:
        await storage.close()
    return seqs


class TestEventsCommands:
    async def test_list_shows_newest_first_and_pending_only_on_request(
        self, database_url: str
    ) -> None:
        """`events list` prints seq, type, station, recorded_at and delivered or pending."""
        seqs = await fill_outbox(database_url)
        listed = run_cli(database_url, "events", "list")
        assert listed.returncode == 0, listed.stderr
        header, *rows = listed.stdout.splitlines()
        assert header.split() == ["seq", "type", "station", "recorded_at", "delivered"]
        assert [row.split() for row in rows] == [
            [str(seqs[2]), "meter.values", "CP-1", "2024-05-01T12:00:00.000Z", "pending"],
            [str(seqs[1]), "station.connected", "CP-2", "2024-05-01T12:00:00.000Z", "pending"],
            [
                str(seqs[0]),
                "station.booted",
                "CP-1",
                "2024-05-01T12:00:00.000Z",
                "2024-05-01T12:00:00.000Z",
            ],
        ]
        pending = run_cli(database_url, "events", "list", "--pending", "--limit", "1")
        assert [row.split()[0] for row in pending.stdout.splitlines()[1:]] == [str(seqs[2])]

    async def test_stats_counts_pending_and_delivered(self, database_url: str) -> None:
        """`events stats` prints the pending and delivered counts and the oldest pending time."""
        await fill_outbox(database_url)
        stats = run_cli(database_url, "events", "stats")
        assert stats.returncode == 0, stats.stderr
        lines = {
            key: value.strip()
            for key, value in (line.split("  ", 1) for line in stats.stdout.splitlines())
        }
        assert lines["pending"] == "2"
        assert lines["delivered"] == "1"
        assert lines["oldest pending"].startswith("2024-05-01T12:00:00.000Z (")

    def test_a_bad_limit_is_a_usage_error(self, database_url: str) -> None:
        """--limit takes a positive number."""
        assert run_cli(database_url, "events", "list", "--limit", "0").returncode == 2
