"""One log line per change of a link's state, not one per failed attempt.

A 20 s broker outage used to log a warning for every reconnect attempt of the
relay and the command consumer, and a database outage an error per refused
CALL (issue 22). Now each component logs the first failure as a warning, the
retries at debug, and its recovery at info with how long the far side was
away and how many attempts failed meanwhile.
"""

from __future__ import annotations

import time
from typing import Any


class Outage:
    """Whether one component's link (to the broker, to the database) is down,
    since when, and how many attempts failed since."""

    __slots__ = ("_retries", "_since")

    def __init__(self) -> None:
        self._since: float | None = None
        self._retries = 0

    @property
    def down(self) -> bool:
        return self._since is not None

    @property
    def retries(self) -> int:
        """Failed attempts since the failure that began the outage."""
        return self._retries

    def failed(self) -> bool:
        """Record a failed attempt or a lost link; True if it began an outage."""
        if self._since is None:
            self._since, self._retries = time.monotonic(), 0
            return True
        self._retries += 1
        return False

    def recovered(self) -> dict[str, Any] | None:
        """The outage's figures if the link just came back from one, else None."""
        if self._since is None:
            return None
        figures = {
            "down_seconds": round(time.monotonic() - self._since, 1),
            "retries": self._retries,
        }
        self._since, self._retries = None, 0
        return figures


# The process's database: its group commits mark it down and up; a refused
# CALL is logged loudly only when it is not part of a known outage.
DATABASE = Outage()
