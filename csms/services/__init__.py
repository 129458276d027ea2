"""Use cases of the CSMS. Import domain, ports and errors only: never a
driver, a protocol library or a socket."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from csms.core.interop import InteropProfiles, Tolerance
from csms.core.ports import Clock, Storage
from csms.services.authorization import AuthorizationService
from csms.services.commands import CommandService
from csms.services.connections import ConnectionService
from csms.services.replies import CallInHand
from csms.services.stations import STRICT, StationService
from csms.services.transactions import ABANDON_AFTER, TransactionService


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Services:
    """What protocol adapters may use; built once by the composition root."""

    stations: StationService
    authorization: AuthorizationService
    transactions: TransactionService
    commands: CommandService
    connections: ConnectionService
    clock: Clock

    @classmethod
    def build(
        cls,
        storage: Storage,
        *,
        heartbeat_interval: int,
        accept_unknown_stations: bool,
        clock: Clock = utc_now,
        interop: InteropProfiles = STRICT,
        node_id: str = "csms",
        single_process: bool = False,
        abandon_after: timedelta = ABANDON_AFTER,
    ) -> Services:
        """``node_id`` names this process in the cluster; ``single_process``
        (SQLite) makes every connection left open at start stale."""
        # The one storage object serves as each narrow store a service declares.
        authorization = AuthorizationService(storage, clock)
        stations = StationService(
            storage,
            storage,
            clock,
            heartbeat_interval=heartbeat_interval,
            accept_unknown=accept_unknown_stations,
            interop=interop,
        )
        return cls(
            stations=stations,
            authorization=authorization,
            transactions=TransactionService(
                storage,
                storage,
                clock,
                authorization,
                storage,
                storage,
                abandon_after=abandon_after,
            ),
            commands=CommandService(storage, storage, clock),
            connections=ConnectionService(
                storage, stations, clock, node_id, single_process=single_process
            ),
            clock=clock,
        )


@dataclass(slots=True)
class StationContext:
    """One connected station as a handler sees it."""

    station_id: str
    ocpp_version: str
    services: Services
    # The interoperability tolerances of this station (its vendor/model).
    tolerances: frozenset[Tolerance] = frozenset()
    # The CALL being handled: its answer commits with its effects (services.replies).
    call: CallInHand | None = None
