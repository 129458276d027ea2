"""The transactional outbox as the relay sees it: events committed with the
state they report, published by one relay at a time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from csms.core.events import Event
from csms.core.records import record


@record
class OutboxRow:
    seq: int
    event: Event
    delivered_at: datetime | None


@record
class OutboxStats:
    pending: int
    delivered: int
    oldest_pending_at: datetime | None


@record
class OutboxBacklog:
    """What waits to be published; ``pending`` is counted up to a cap."""

    pending: int
    oldest_pending_at: datetime | None


class OutboxStore(Protocol):
    """Rows are appended by units of work (``EventAppended``); this port reads and retires them."""

    async def outbox_pending(
        self, limit: int, skip: Sequence[tuple[int, int]] = ()
    ) -> list[OutboxRow]:
        """Undelivered events, oldest first (by commit sequence), leaving out
        those whose seq lies in one of the inclusive ``skip`` ranges (rows the
        relay has in flight).

        Reads every undelivered row, not "after the last seq seen": a row
        whose transaction committed late (a lower seq) must not be skipped.
        """
        ...

    async def outbox_mark_delivered(self, seqs: Sequence[int], at: datetime) -> None:
        """Mark rows the broker confirmed; a row already marked keeps its time."""
        ...

    async def outbox_prune(self, delivered_before: datetime, limit: int = 10_000) -> int:
        """Delete up to ``limit`` rows delivered before ``delivered_before``
        (never a pending one); return how many went. Call again while it
        returns ``limit``: one bounded batch keeps each statement short."""
        ...

    async def outbox_backlog(self, cap: int = 1_000_000) -> OutboxBacklog:
        """Pending rows (counted up to ``cap``) and the oldest one's ``recorded_at``.

        Cheap: reads only pending rows (a partial index), so a relay may
        call it every few seconds whatever the size of the delivered history.
        """
        ...

    async def outbox_stats(self) -> OutboxStats:
        """Pending and delivered counts and the oldest pending time.

        Counts the whole table, delivered history included: for an operator's
        occasional look (``csms events stats``), not for a loop.
        """
        ...

    async def outbox_list(self, limit: int, pending_only: bool) -> list[OutboxRow]:
        """The newest ``limit`` rows (pending only when asked), newest first."""
        ...

    def outbox_subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` on the event loop after each commit that appended
        outbox rows in this process, so a relay wakes without polling for them."""
        ...

    async def outbox_lead(self) -> bool:
        """Become, or confirm that this process still is, the one relay that
        publishes; False while another holds that role.

        Processes sharing a database compete for it: PostgreSQL with an
        advisory lock on a dedicated connection (released when that
        connection ends), SQLite with an exclusive lock on a file next to the
        database (released when the process ends). Cheap enough to call
        every second.
        """
        ...

    async def outbox_resign(self) -> None:
        """Give the relay role up (idempotent), so a standby may take it."""
        ...
