"""The error every operator edge answers (no pydantic: the dispatcher raises it too)."""

from __future__ import annotations

from typing import Any


class OperatorError(Exception):
    """A request an edge refuses: ``status`` (HTTP, and the AMQP reply's) and
    ``body`` ``{"error": kind, "message": text, ...}``."""

    def __init__(self, status: int, kind: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": kind, "message": message, **extra}
