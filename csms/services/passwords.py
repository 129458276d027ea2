"""Delivering a rotated Basic-auth password to its station.

The new password waits in the database, sealed (``Sealer``: a secret is
not written in clear; see docs/security.md "Passwords"), until the station
logs in with it: sent at once when the station is connected to any process
of the cluster, else by whichever process it next connects to with its
previous password. The copy is dropped when the station logs in with the
new one (StationStore.retire_previous_password).
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from csms.core.errors import StationLinkError
from csms.core.ports import LinkOpened, Sealer, StationLink, StationStore
from csms.services.versions import OcppVersion

log = structlog.get_logger("csms.passwords")


class PasswordDelivery:
    """Sends rotated passwords; ``on_connect`` is a StationLink connect listener."""

    def __init__(
        self,
        link: StationLink,
        versions: Mapping[str, OcppVersion],
        store: StationStore,
        sealer: Sealer,
    ) -> None:
        self._link = link
        self._by_version = {v.ocpp_version: v for v in versions.values()}
        self._store = store
        self._sealer = sealer

    async def change(self, station_id: str, password: str) -> str | None:
        """Keep the password for the station and send it if the station is
        connected; its answer (Accepted, Rejected...), None when it waits for
        the station. Raises StationLinkError when the CALL gets no CALLRESULT
        (it keeps waiting), StorageError when it could not be kept.

        The station keeps being admitted with its old password until it
        reconnects with the new one (see StationService.rotate_password).
        """
        await self._store.set_pending_password(station_id, self._sealer.seal(station_id, password))
        if await self._link.locate(station_id) is None:
            return None
        return await self._send(station_id, password)

    async def on_connect(self, opened: LinkOpened) -> None:
        """A station that still uses its previous password gets the new one."""
        if not opened.uses_previous_password:
            return
        station_id = opened.station_id
        sealed = await self._store.find_pending_password(station_id)
        if sealed is None:
            return
        password = self._sealer.unseal(station_id, sealed)
        if password is None:
            log.error("password_not_unsealed", station_id=station_id)
            return
        try:
            await self._send(station_id, password)
        except StationLinkError as exc:
            log.warning("password_not_delivered", station_id=station_id, error=repr(exc))

    async def _send(self, station_id: str, password: str) -> str | None:
        held = await self._link.locate(station_id)
        version = self._by_version.get(held.ocpp_version) if held is not None else None
        if version is None:  # it left meanwhile
            return None
        action, payload = version.set_password(password)
        answer = await self._link.call(station_id, action, payload)
        status = version.password_status(answer)
        log.info("password_sent", station_id=station_id, status=status)
        return status
