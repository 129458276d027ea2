"""The line between the processes of a cluster: a request to one node, its reply."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

NodeHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]
"""Answers one request from another node; None sends no reply."""


class NodeBus(Protocol):
    """Requests between nodes (csms.services.cluster); RabbitMQ implements it.

    ``request`` raises ``NodeUnreachableError`` when no process of that node
    id listens (the request went nowhere), ``ClusterUnavailableError`` when
    the bus itself is down, ``TimeoutError`` when no reply came within ``expires_in`` seconds (a
    request not taken by then is dropped, never delivered late).
    """

    @property
    def node_id(self) -> str: ...

    def serve(self, handler: NodeHandler) -> None:
        """Hand every request addressed to this node to ``handler``."""
        ...

    async def request(
        self, node_id: str, message: dict[str, Any], expires_in: float
    ) -> dict[str, Any]: ...

    async def tell(self, node_id: str, message: dict[str, Any]) -> None:
        """Send without waiting for a reply; NodeUnreachableError, ClusterUnavailableError."""
        ...
