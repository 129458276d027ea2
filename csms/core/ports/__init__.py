"""The ports the services depend on; storage and events implement them.

Storage is split into narrow stores, one module each, so that a service
declares only what it reads and writes (docs/storage.md):

- ``UnitOfWork`` (writes.py): ``commit`` of a unit of write ops, the only
  way services write, with the write ops themselves;
- ``StationStore`` (stations.py): the station registry;
- ``TokenStore`` (tokens.py): the id token registry;
- ``TransactionStore`` (transactions.py): transactions, meter samples, seqNos;
- ``StationStateStore`` (station_state.py): connectors, configuration,
  device model, reservations, charging profiles, notifications;
- ``CommandStore`` (commands.py): the commands sent to stations;
- ``OutboxStore`` (outbox.py): the transactional outbox the relay reads;
- ``CallAnswerStore`` (answers.py): the durable answers to stations' CALLs;
- ``StorageHealth`` (health.py): ping, pool use, close;
- ``PresenceStore`` (presence.py): node leases and open connections, the
  cluster's view of which process holds which station.

Besides storage, ``StationLink`` (station_link.py) is the line to connected
stations on any process; ``LocalLink`` is this process's WebSocket server,
``NodeBus`` (node_bus.py) the line between the processes of a cluster.

``Storage`` is their union: what the SQLite, PostgreSQL and in-memory
adapters implement and the composition root passes around.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from csms.core.ports.answers import CallAnswerStore
from csms.core.ports.commands import CommandFilter, CommandQueueStore, CommandStore
from csms.core.ports.health import PoolStats, StorageHealth
from csms.core.ports.node_bus import NodeBus, NodeHandler
from csms.core.ports.outbox import OutboxBacklog, OutboxRow, OutboxStats, OutboxStore
from csms.core.ports.presence import Presence, PresenceStore
from csms.core.ports.station_link import ConnectListener, LinkOpened, LocalLink, StationLink
from csms.core.ports.station_state import StationStateStore
from csms.core.ports.stations import UNCHANGED, Sealer, StationStore
from csms.core.ports.tokens import TokenStore
from csms.core.ports.transactions import TransactionFilter, TransactionStore
from csms.core.ports.writes import (
    CallAnswered,
    ChargingProfilesCleared,
    ChargingProfileSet,
    CommandRecorded,
    ConfigurationChanged,
    ConnectionClosed,
    ConnectionOpened,
    ConnectorStatusChanged,
    DeviceModelReported,
    DeviceModelValuesSet,
    EventAppended,
    HeartbeatIntervalSet,
    LocalListVersionSet,
    MeterSamplesRecorded,
    ReservationChanged,
    StationBooted,
    StationNotified,
    StationSeen,
    TransactionChanged,
    TransactionEventRecorded,
    TransactionStarted,
    UnitOfWork,
    WriteOp,
)

__all__ = [
    "UNCHANGED",
    "CallAnswerStore",
    "CallAnswered",
    "ChargingProfileSet",
    "ChargingProfilesCleared",
    "Clock",
    "CommandFilter",
    "CommandQueueStore",
    "CommandRecorded",
    "CommandStore",
    "ConfigurationChanged",
    "ConnectListener",
    "ConnectionClosed",
    "ConnectionOpened",
    "ConnectorStatusChanged",
    "DeviceModelReported",
    "DeviceModelValuesSet",
    "EventAppended",
    "HeartbeatIntervalSet",
    "LinkOpened",
    "LocalLink",
    "LocalListVersionSet",
    "MeterSamplesRecorded",
    "NodeBus",
    "NodeHandler",
    "OutboxBacklog",
    "OutboxRow",
    "OutboxStats",
    "OutboxStore",
    "PoolStats",
    "Presence",
    "PresenceStore",
    "ReservationChanged",
    "Sealer",
    "StationBooted",
    "StationLink",
    "StationNotified",
    "StationSeen",
    "StationStateStore",
    "StationStore",
    "Storage",
    "StorageHealth",
    "TokenStore",
    "TransactionChanged",
    "TransactionEventRecorded",
    "TransactionFilter",
    "TransactionStarted",
    "TransactionStore",
    "UnitOfWork",
    "WriteOp",
]


class Storage(
    UnitOfWork,
    StationStore,
    TokenStore,
    TransactionStore,
    StationStateStore,
    CommandStore,
    OutboxStore,
    CallAnswerStore,
    StorageHealth,
    PresenceStore,
    Protocol,
):
    """Everything the CSMS keeps: the union of the narrow stores."""


class Clock(Protocol):
    def __call__(self) -> datetime: ...
