"""One log line per change of a broker link's state, not one per failed attempt.

A 20 s outage used to log a warning for every reconnect attempt of the relay
and the command consumer, plus the AMQP libraries' own errors (issue 22).
Now each component logs the first failure as a warning, the retries at
debug, and its recovery at info with how long the broker was away.
"""

from __future__ import annotations

import time
from typing import Any


class BrokerOutage:
    """Whether one component's broker link is down, since when, how many retries failed."""

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
