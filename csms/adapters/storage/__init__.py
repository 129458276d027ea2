"""Storage adapters behind ``csms.core.ports.Storage``: SQLite (embedded) and
PostgreSQL, sharing their SQL and row codecs (rows.py, shared.py); memory.py
holds the same stores in memory, for tests (docs/storage.md).

``CSMS_DATABASE_URL`` picks one: ``sqlite:///relative/path``,
``sqlite:////absolute/path`` or ``postgresql://...`` (``postgres://`` too).
"""

from __future__ import annotations

from csms.adapters.storage.postgres import PostgresStorage
from csms.adapters.storage.sqlite import SqliteStorage
from csms.adapters.storage.urls import DatabaseUrl, mask_password, parse_database_url
from csms.core.ports import Storage

__all__ = ["DatabaseUrl", "mask_password", "migrate", "open_storage", "parse_database_url"]


async def open_storage(url: str, *, migrate: bool = True) -> Storage:
    """Connect to ``url`` and, unless told not to, apply pending migrations.

    Raises ``ConfigurationError`` for a bad URL and ``StorageUnavailableError``
    (one-line message) when the database cannot be reached.
    """
    storage = await _connect(parse_database_url(url))
    if migrate:
        try:
            await storage.migrate()
        except BaseException:
            await storage.close()
            raise
    return storage


async def migrate(url: str) -> list[str]:
    """Apply pending migrations to ``url``; return the names applied (idempotent)."""
    storage = await _connect(parse_database_url(url), pool_size=1)
    try:
        return await storage.migrate()
    finally:
        await storage.close()


async def _connect(target: DatabaseUrl, *, pool_size: int = 10) -> SqliteStorage | PostgresStorage:
    if target.dialect == "postgresql":
        return await PostgresStorage.open(target.location, pool_size=pool_size)
    return await SqliteStorage.open(target.location)
