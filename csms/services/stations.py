"""Stations: admission at the handshake, boot, liveness, connector status."""

from __future__ import annotations

import asyncio
import enum
import random
from datetime import datetime, timedelta
from typing import Any

from csms.core import catalog, interop
from csms.core.domain import ConnectorStatus, DeviceModelEntry, Station
from csms.core.events import EventType
from csms.core.interop import InteropProfiles, Tolerance
from csms.core.ports import (
    Clock,
    ConnectionClosed,
    ConnectionOpened,
    ConnectorStatusChanged,
    DeviceModelReported,
    Presence,
    StationBooted,
    StationNotified,
    StationSeen,
    StationStore,
    UnitOfWork,
    WriteOp,
)
from csms.core.records import record
from csms.core.security import PasswordVerifier, hash_password
from csms.services.outbox import report
from csms.services.replies import Reply

# A Heartbeat refreshes last_seen_at in the database at most this often; the
# live value is in memory (the connection itself proves liveness).
SEEN_WRITE_INTERVAL = timedelta(seconds=60)
STRICT = InteropProfiles()


# Seconds a Pending or Rejected station waits before it boots again (+/- 20 %).
BOOT_RETRY_INTERVAL = 60


class Refusal(enum.StrEnum):
    """Why a handshake is refused; also the metric label and the log's reason."""

    UNKNOWN_STATION = "unknown_station"
    MISSING_PASSWORD = "missing_password"  # noqa: S105 - a reason, not a secret
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 - a reason, not a secret
    WRONG_USER = "wrong_user"  # Basic-auth user is not the station id
    NO_PASSWORD_REGISTERED = "no_password_registered"  # noqa: S105 - profile 2 needs one
    TLS_REQUIRED = "tls_required"  # profile 2 or 3 over plain ws://
    CLIENT_CERTIFICATE_REQUIRED = "client_certificate_required"  # profile 3, none shown
    CLIENT_CERTIFICATE_MISMATCH = "client_certificate_mismatch"  # CN names another station


@record
class Credentials:
    """What a station showed at its handshake, as the transport verified it."""

    user: str | None = None
    password: str | None = None
    over_tls: bool = False
    # The subject CN of a client certificate the TLS layer (or a trusted
    # proxy) verified against CSMS_TLS_CLIENT_CA; None without one.
    certificate_cn: str | None = None


@record
class Admission:
    station: Station | None
    refusal: Refusal | None = None
    # The station logged in with the password a rotation replaced: it has not
    # received the new one yet.
    uses_previous_password: bool = False

    @property
    def station_id(self) -> str:
        """The registered id (it may differ in case from the URL's, a tolerance)."""
        assert self.station is not None
        return self.station.id


@record
class BootInfo:
    vendor: str | None
    model: str | None
    serial_number: str | None
    firmware_version: str | None
    reason: str | None
    extra: dict[str, Any]


@record
class BootDecision:
    status: str
    interval: int
    current_time: datetime


class StationService:
    """Admission, boot, liveness, status: the registry is a ``StationStore``, writes go
    through a ``UnitOfWork``."""

    def __init__(
        self,
        stations: StationStore,
        writes: UnitOfWork,
        clock: Clock,
        *,
        heartbeat_interval: int,
        accept_unknown: bool,
        interop: InteropProfiles = STRICT,
    ) -> None:
        self._stations = stations
        self._writes = writes
        self._clock = clock
        self._interval = heartbeat_interval
        self._accept_unknown = accept_unknown
        self.interop = interop
        self._passwords = PasswordVerifier()
        self._seen_written: dict[str, datetime] = {}

    async def admit(self, station_id: str, credentials: Credentials) -> Admission:
        """Decide a handshake: is the station registered (or may it register
        itself), and did it prove who it is as its security profile demands?

        Profile 1: the password when one is registered. Profile 2: TLS and the
        password. Profile 3: TLS and a client certificate naming the station
        (a password does not replace it). Whatever the profile, a verified
        client certificate must name the station it connects as.
        """
        station = await self._find(station_id)
        if station is None:
            if not self._accept_unknown:
                return Admission(None, Refusal.UNKNOWN_STATION)
            station = await self._stations.register_station(station_id, at=self._clock())
        cn = credentials.certificate_cn
        if cn is not None and not self._names(cn, station, station_id):
            return Admission(station, Refusal.CLIENT_CERTIFICATE_MISMATCH)
        if station.security_profile >= 2 and not credentials.over_tls:
            return Admission(station, Refusal.TLS_REQUIRED)
        if station.security_profile >= 3:
            if cn is None:
                return Admission(station, Refusal.CLIENT_CERTIFICATE_REQUIRED)
            return Admission(station)
        if station.password_hash is None:
            if station.security_profile == 2:
                return Admission(station, Refusal.NO_PASSWORD_REGISTERED)
            return Admission(station)
        return await self._check_password(station, station_id, credentials)

    async def _find(self, station_id: str) -> Station | None:
        station = await self._stations.find_station(station_id)
        if station is None and self.interop.is_global(Tolerance.STATION_ID_CASE):
            station = await self._stations.find_station_ignoring_case(station_id)
            if station is not None:
                interop.applied(
                    Tolerance.STATION_ID_CASE, station_id=station.id, requested_id=station_id
                )
        return station

    def _names(self, name: str, station: Station, requested_id: str) -> bool:
        """Does a certificate CN or Basic-auth user name this station?"""
        if name in (station.id, requested_id):
            return True
        return (
            self.interop.is_global(Tolerance.STATION_ID_CASE)
            and name.casefold() == station.id.casefold()
        )

    async def _check_password(
        self, station: Station, requested_id: str, credentials: Credentials
    ) -> Admission:
        assert station.password_hash is not None
        station_id, password = station.id, credentials.password
        if password is None:
            return Admission(station, Refusal.MISSING_PASSWORD)
        user_named_it = self._names(credentials.user or "", station, requested_id)
        if not user_named_it:
            tolerances = self.interop.for_station(
                station.vendor, station.model, station.firmware_version
            )
            if Tolerance.BASIC_AUTH_USER not in tolerances:
                return Admission(station, Refusal.WRONG_USER)
        if await self._passwords.verify(station_id, password, station.password_hash):
            if station.previous_password_hash is not None:
                # The station has the rotated password: the old one is retired.
                await self._stations.retire_previous_password(station_id)
            admission = Admission(station)
        elif station.previous_password_hash is not None and await self._passwords.verify(
            station_id, password, station.previous_password_hash
        ):
            admission = Admission(station, uses_previous_password=True)
        else:
            return Admission(station, Refusal.WRONG_PASSWORD)
        if not user_named_it:
            # Logged without the user: it may be a password typed in the wrong field.
            interop.applied(Tolerance.BASIC_AUTH_USER, station_id=station_id)
        return admission

    async def rotate_password(self, station_id: str, password: str) -> bool:
        """Store a new password; the old one stays valid until the station
        reconnects with the new one. False for an unknown station."""
        digest = await asyncio.get_running_loop().run_in_executor(None, hash_password, password)
        return await self._stations.rotate_station_password(station_id, digest)

    async def connected(self, opened: Presence, remote: str | None) -> None:
        """Record a connection (its presence row and ``station.connected``)."""
        station_id, ocpp_version, now = opened.station_id, opened.ocpp_version, opened.opened_at
        self._seen_written[station_id] = now
        await self._writes.commit(
            [
                StationSeen(station_id, ocpp_version, now),
                ConnectionOpened(opened),
                report(
                    self._clock,
                    EventType.STATION_CONNECTED,
                    station_id,
                    ocpp_version,
                    now,
                    catalog.station_connected(remote, opened.epoch, opened.node_id),
                ),
            ]
        )

    async def disconnected(
        self,
        opened: Presence,
        code: int | None,
        reason: str,
        *,
        at: datetime | None = None,
        detected_late: bool = False,
    ) -> None:
        """Record the close of the connection ``opened`` (its row only: a newer
        connection of the station elsewhere keeps its own) and
        ``station.disconnected``. A close ``detected_late`` (its process
        stopped) must still find the row: of two processes finding the same
        dead connection, one reports it (the other gets ConflictError)."""
        station_id, ocpp_version = opened.station_id, opened.ocpp_version
        now = self._clock()
        unit: list[WriteOp] = [
            # Conditional always: of two closes of one record (a late one by another
            # process, this process's own), one reports it.
            ConnectionClosed(station_id, opened.epoch, must_exist=True),
            report(
                self._clock,
                EventType.STATION_DISCONNECTED,
                station_id,
                ocpp_version,
                at or now,
                catalog.station_disconnected(
                    code, reason, opened.epoch, opened.node_id, detected_late=detected_late
                ),
            ),
        ]
        if not detected_late:
            self._seen_written.pop(station_id, None)
            unit.insert(0, StationSeen(station_id, ocpp_version, at or now))
        await self._writes.commit(unit)

    async def booted(
        self,
        station_id: str,
        ocpp_version: str,
        boot: BootInfo,
    ) -> BootDecision:
        """Record the boot; answer what the registration says. A Pending or
        Rejected station retries after a jittered interval, so a fleet held
        back does not come back all at once."""
        now = self._clock()
        station = await self._stations.find_station(station_id)
        status = station.boot_status if station is not None else "Accepted"
        if status == "Accepted":
            # The interval it accepted through the CSMS, if any: the boot answer must not undo it.
            own = station.heartbeat_interval if station is not None else None
            decision = BootDecision(status, own or self._interval, now)
        else:
            retry = round(BOOT_RETRY_INTERVAL * random.uniform(0.8, 1.2))  # noqa: S311 - jitter
            decision = BootDecision(status, retry, now)
        unit: list[WriteOp] = [
            StationBooted(
                station_id,
                ocpp_version,
                boot.vendor,
                boot.model,
                boot.serial_number,
                boot.firmware_version,
                boot.extra,
                now,
            ),
            report(
                self._clock,
                EventType.STATION_BOOTED,
                station_id,
                ocpp_version,
                now,
                catalog.station_booted(
                    boot.vendor,
                    boot.model,
                    boot.serial_number,
                    boot.firmware_version,
                    boot.reason,
                ),
            ),
        ]
        await self._writes.commit(unit)
        return decision

    async def heartbeat(self, station_id: str, ocpp_version: str) -> datetime:
        now = self._clock()
        last = self._seen_written.get(station_id)
        if last is None or now - last >= SEEN_WRITE_INTERVAL:
            self._seen_written[station_id] = now
            await self._writes.commit([StationSeen(station_id, ocpp_version, now)])
        return now

    async def status_changed(
        self,
        status: ConnectorStatus,
        ocpp_version: str,
        occurred_at: datetime | None,
        reply: Reply[None] | None = None,
    ) -> None:
        unit: list[WriteOp] = [
            ConnectorStatusChanged(status),
            report(
                self._clock,
                EventType.STATION_STATUS_CHANGED,
                status.station_id,
                ocpp_version,
                occurred_at or status.updated_at,
                catalog.status_changed(status),
            ),
        ]
        if reply is not None:
            unit.append(reply.answered(None))
        await self._writes.commit(unit)

    async def notified(
        self,
        station_id: str,
        ocpp_version: str,
        action: str,
        payload: dict[str, Any],
        event: tuple[str, dict[str, Any], datetime | None] | None = None,
        reply: Reply[None] | None = None,
    ) -> None:
        """Keep a notification as received; optionally report it as an event
        (type, data, occurred_at)."""
        now = self._clock()
        unit: list[WriteOp] = [StationNotified(station_id, action, payload, now)]
        if event is not None:
            kind, data, occurred_at = event
            unit.append(report(self._clock, kind, station_id, ocpp_version, occurred_at, data))
        if reply is not None:
            unit.append(reply.answered(None))
        await self._writes.commit(unit)

    async def device_model_reported(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        entries: tuple[DeviceModelEntry, ...],
        reply: Reply[None] | None = None,
    ) -> None:
        """Keep a report part as received and upsert its entries into the model."""
        now = self._clock()
        unit: list[WriteOp] = [
            StationNotified(station_id, action, payload, now),
            DeviceModelReported(station_id, entries, now),
        ]
        if reply is not None:
            unit.append(reply.answered(None))
        await self._writes.commit(unit)
