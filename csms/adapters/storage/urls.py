"""Parsing ``CSMS_DATABASE_URL`` and keeping passwords out of messages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from csms.adapters.storage.migrations import Dialect
from csms.core.errors import ConfigurationError

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


_USERINFO_PASSWORD = re.compile(r"(//[^/@:]*:)[^/]*@")  # greedy: a raw "@" in the password
_PARAMETER_PASSWORD = re.compile(r"(password=)[^&\s]*", re.IGNORECASE)


def mask_password(url: str) -> str:
    """``url`` with any password (user info or ``password=`` parameter) as ``***``."""
    return _PARAMETER_PASSWORD.sub(r"\1***", _USERINFO_PASSWORD.sub(r"\1***@", url))
