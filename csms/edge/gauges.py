"""Gauges read at each scrape of /metrics: what the database knows, which no
single process could count (other instances, restarts)."""

from __future__ import annotations

from datetime import UTC, datetime

from csms.core.ports import Storage
from csms.telemetry import metrics


async def refresh(storage: Storage, *, outbox: bool) -> None:
    """Active transactions and the connection pool; the outbox backlog too when
    ``outbox`` (no relay runs to keep those gauges fresh, as without a broker)."""
    metrics.TRANSACTIONS_ACTIVE.set(await storage.count_active_transactions())
    pool = storage.pool_stats()
    if pool is not None:
        metrics.DB_POOL_CONNECTIONS.labels("open").set(pool.size)
        metrics.DB_POOL_CONNECTIONS.labels("idle").set(pool.idle)
        metrics.DB_POOL_CONNECTIONS.labels("max").set(pool.max_size)
    if outbox:
        backlog = await storage.outbox_backlog()
        metrics.OUTBOX_PENDING.set(backlog.pending)
        oldest = backlog.oldest_pending_at
        age = 0.0 if oldest is None else (datetime.now(UTC) - oldest).total_seconds()
        metrics.OUTBOX_OLDEST_PENDING_SECONDS.set(max(0.0, age))
