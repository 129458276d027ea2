"""Versioned SQL migrations, shipped inside the ``migrations`` package.

Files are ``migrations/<dialect>/<version>_<name>.sql``; they are read with
``importlib.resources`` so they are found from any working directory once
the project is installed. Both dialects carry the same versions and names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

Dialect = Literal["sqlite", "postgresql"]

# The directory name of each dialect inside the ``migrations`` package.
_DIRECTORIES: dict[Dialect, str] = {"sqlite": "sqlite", "postgresql": "postgres"}
_FILE_NAME = re.compile(r"^(?P<version>\d+)_(?P<slug>\w+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str  # the file name without ".sql", e.g. "0001_init"
    sql: str


def load_migrations(dialect: Dialect) -> list[Migration]:
    """Every migration of ``dialect``, ordered by version.

    Raises ``RuntimeError`` when two files claim one version: that is a
    packaging bug, not something an operator can fix.
    """
    directory = resources.files("migrations").joinpath(_DIRECTORIES[dialect])
    found: dict[int, Migration] = {}
    for entry in directory.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        version = int(match["version"])
        if version in found:
            raise RuntimeError(
                f"migrations/{_DIRECTORIES[dialect]}: version {version} is claimed by "
                f"{found[version].name!r} and {entry.name!r}"
            )
        found[version] = Migration(version, entry.name[: -len(".sql")], entry.read_text("utf-8"))
    return [found[version] for version in sorted(found)]
