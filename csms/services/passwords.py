"""Delivering a rotated Basic-auth password to its station.

The new password waits in memory (a secret is not written to disk in
clear; see README "Passwords") until the station accepts it: sent at once
when the station is connected, else when it next connects with its
previous password.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from csms.core.errors import StationLinkError
from csms.core.ports import LinkOpened, StationLink
from csms.services.versions import OcppVersion

log = structlog.get_logger("csms.passwords")


class PasswordDelivery:
    """Sends rotated passwords; ``on_connect`` is a StationLink connect listener."""

    def __init__(self, link: StationLink, versions: Mapping[str, OcppVersion]) -> None:
        self._link = link
        self._by_version = {v.ocpp_version: v for v in versions.values()}
        self._pending: dict[str, str] = {}

    async def change(self, station_id: str, password: str) -> str | None:
        """Send the password if the station is connected and return its answer
        (Accepted, Rejected...); None when it waits for the station. Raises
        StationLinkError when the CALL gets no CALLRESULT (it keeps waiting).

        The station keeps being admitted with its old password until it
        reconnects with the new one (see StationService.rotate_password).
        """
        self._pending[station_id] = password
        if await self._link.locate(station_id) is None:
            return None
        return await self._send(station_id)

    async def on_connect(self, opened: LinkOpened) -> None:
        """A station that still uses its previous password gets the new one."""
        if not opened.uses_previous_password or opened.station_id not in self._pending:
            return
        try:
            await self._send(opened.station_id)
        except StationLinkError as exc:
            log.warning("password_not_delivered", station_id=opened.station_id, error=repr(exc))

    async def _send(self, station_id: str) -> str | None:
        held = await self._link.locate(station_id)
        version = self._by_version.get(held.ocpp_version) if held is not None else None
        if version is None:  # it left meanwhile
            return None
        action, payload = version.set_password(self._pending[station_id])
        answer = await self._link.call(station_id, action, payload)
        status = version.password_status(answer)
        if status == "Accepted":
            self._pending.pop(station_id, None)
        log.info("password_sent", station_id=station_id, status=status)
        return status
