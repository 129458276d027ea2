"""The link to connected stations: send a CALL, ask who is connected, disconnect."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from csms.core.ports.presence import Presence
from csms.core.records import record


class StationLink(Protocol):
    """The CSMS's line to the stations connected to any process, keyed by id.

    The cluster link (csms.services.cluster) implements it over this
    process's listener (``LocalLink``) and the other nodes. ``call`` raises a
    ``StationLinkError``: ``StationNotConnectedError`` (not sent; no process
    holds it), ``StationDisconnectedError`` (sent, the connection closed
    before the answer), ``CallTimeoutError``, ``CallErrorReceived``,
    ``ClusterUnavailableError`` (held elsewhere, the broker down). Never
    ``CancelledError`` for the station's doing.
    """

    def is_connected(self, station_id: str) -> bool:
        """Is the station connected to this process?"""
        ...

    async def locate(self, station_id: str) -> Presence | None:
        """The station's current connection on any process; None if none."""
        ...

    async def call(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        answer_timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send a CALL and return the CALLRESULT payload; one CALL at a time per
        station (a second caller waits its turn)."""
        ...

    async def disconnect(self, station_id: str, reason: str) -> bool:
        """Close the station's connection wherever it is and wait until its
        disconnection is recorded; False if it had none."""
        ...


class LocalLink(Protocol):
    """The stations connected to this process: the WebSocket server."""

    def is_connected(self, station_id: str) -> bool: ...

    def presence_of(self, station_id: str) -> Presence | None:
        """The record of the station's connection here, once written."""
        ...

    async def call(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        answer_timeout: float | None = None,
    ) -> dict[str, Any]: ...

    async def disconnect(self, station_id: str, reason: str) -> bool: ...

    async def supersede(self, station_id: str, epoch: int) -> bool:
        """Close the station's connection here if older than ``epoch``."""
        ...


@record
class LinkOpened:
    """A station's connection is set up (registered and recorded)."""

    station_id: str
    ocpp_version: str
    # It was admitted with its previous password: a rotated one waits for it.
    uses_previous_password: bool
    # The connection's record; older connections of the station still open
    # on other nodes (they are to be closed: the newest one is served).
    presence: Presence | None = None
    superseded: tuple[Presence, ...] = ()


ConnectListener = Callable[[LinkOpened], Coroutine[Any, Any, None]]
