"""Storage adapters behind ``csms.ports.Storage``: SQLite (embedded) and PostgreSQL.

``CSMS_DATABASE_URL`` picks one: ``sqlite:///relative/path``,
``sqlite:////absolute/path`` or ``postgresql://...`` (``postgres://`` too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from csms.errors import ConfigurationError
from csms.ports import Storage
from csms.storage.migrations import Dialect
from csms.storage.postgres import PostgresStorage
from csms.storage.sqlite import SqliteStorage

__all__ = ["DatabaseUrl", "migrate", "open_storage", "parse_database_url"]

_FORMS = (
    "use sqlite:///relative/path, sqlite:////absolute/path "
    "or postgresql://user:password@host:5432/database"
)


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    """A parsed ``CSMS_DATABASE_URL``.

    ``location`` is the SQLite file path (relative to the working directory
    unless absolute) or the PostgreSQL DSN as given.
    """

    dialect: Dialect
    location: str

    @property
    def redacted(self) -> str:
        """The URL fit for logs and messages (no password)."""
        if self.dialect == "sqlite":
            return f"sqlite:///{self.location}"
        return mask_password(self.location)


def parse_database_url(url: str) -> DatabaseUrl:
    """Parse ``url``; raise ``ConfigurationError`` (one line, password masked) if unsupported."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - validates the port, which urlsplit parses lazily
    except ValueError as exc:
        raise _invalid(text, str(exc)) from None
    if parts.scheme == "sqlite":
        return DatabaseUrl("sqlite", _sqlite_path(text, parts))
    if parts.scheme in ("postgresql", "postgres"):
        return DatabaseUrl("postgresql", text)
    reason = "empty" if not text else "unsupported scheme"
    raise _invalid(text, reason)


def _sqlite_path(text: str, parts: SplitResult) -> str:
    # "sqlite:///x" splits into netloc "" and path "/x": the path after the
    # third slash is the file, relative unless it starts with a fourth one.
    if parts.netloc or not text.startswith("sqlite:///"):
        raise _invalid(text, "a SQLite URL has three slashes and no host")
    if parts.query or parts.fragment:
        raise _invalid(text, "a SQLite URL takes no query or fragment")
    path = parts.path[1:]
    if not path or path.endswith("/"):
        raise _invalid(text, "a SQLite URL needs a file name")
    if path == ":memory:":
        raise _invalid(text, "an in-memory database would lose every write")
    return path


def _invalid(url: str, reason: str) -> ConfigurationError:
    return ConfigurationError(f"CSMS_DATABASE_URL={mask_password(url)!r}: {reason}; {_FORMS}")


_USERINFO_PASSWORD = re.compile(r"(//[^/@:]*:)[^@/]*@")
_PARAMETER_PASSWORD = re.compile(r"(password=)[^&\s]*", re.IGNORECASE)


def mask_password(url: str) -> str:
    """``url`` with any password (user info or ``password=`` parameter) as ``***``."""
    return _PARAMETER_PASSWORD.sub(r"\1***", _USERINFO_PASSWORD.sub(r"\1***@", url))


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
