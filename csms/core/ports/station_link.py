"""The link to connected stations: send a CALL, ask who is connected, disconnect."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from csms.core.ports.presence import Presence
from csms.core.records import record


class StationLink(Protocol):
    """The CSMS's line to connected stations, keyed by station id.

    The WebSocket server implements it for its own sockets; a cluster
    implements it across processes. ``call`` raises a ``StationLinkError``:
    ``StationNotConnectedError`` (not sent), ``StationDisconnectedError``
    (sent, the connection closed before the answer), ``CallTimeoutError``,
    ``CallErrorReceived``. Never ``CancelledError`` for the station's doing.
    """

    def is_connected(self, station_id: str) -> bool: ...

    def ocpp_version(self, station_id: str) -> str | None:
        """The version spoken on the station's open connection; None if none."""
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
        """Close the station's connection and wait until its disconnection is
        recorded; False if it had none."""
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
