"""What the SQLite and PostgreSQL adapters share above their drivers: the
entry into group commit, the outbox listeners, and every read, written once
over the SQL and row codecs of rows.py.

An adapter supplies how one batch is applied (``_apply_batch`` behind its
``GroupCommitter``), how one statement runs (``_one``, ``_all``: its driver,
its error translation, its placeholders) and how its driver returns values
(``decoding``); everything else is the same in both dialects.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from csms.adapters.storage import rows
from csms.adapters.storage.batching import GroupCommitter, GroupedOps, record_committed
from csms.adapters.storage.rows import Decode, Decoding, Row
from csms.core.domain import (
    ChargingProfile,
    Command,
    ConfigurationKey,
    ConnectorStatus,
    DeviceModelEntry,
    IdToken,
    MeterSample,
    Reservation,
    Station,
    Transaction,
)
from csms.core.ports import (
    UNCHANGED,
    CallAnswered,
    CommandFilter,
    OutboxRow,
    Presence,
    StationNotified,
    TransactionFilter,
    WriteOp,
)

T = TypeVar("T")


def _first(r: Any, _: Decoding) -> Any:
    return r[0]


class SqlStorage(ABC):
    """The shared part of a SQL adapter; subclasses apply batches and run statements."""

    decoding: Decoding
    _committer: GroupCommitter[Sequence[WriteOp]]
    _outbox_listeners: list[Callable[[], None]]

    _closed: bool

    async def close(self) -> None:
        """Flush pending commits, give the relay role up, then release the database; once."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._committer.close()
        finally:
            await self.outbox_resign()
            await self._release()

    @abstractmethod
    async def _release(self) -> None:
        """Release the connections (last step of ``close``)."""

    @abstractmethod
    async def outbox_resign(self) -> None:
        """Give the relay role up (idempotent), so a standby may take it."""

    # --- hot path ----------------------------------------------------------

    async def commit(self, unit: Sequence[WriteOp]) -> None:
        if unit:
            await self._committer.submit(unit)

    def _committed(self, ops: GroupedOps) -> None:
        """After a batch committed: wake the outbox listeners if it appended events, count it."""
        if ops.events:
            for listener in self._outbox_listeners:
                listener()
        record_committed(ops)

    def outbox_subscribe(self, listener: Callable[[], None]) -> None:
        self._outbox_listeners.append(listener)

    # --- registry ----------------------------------------------------------

    async def register_station(
        self,
        station_id: str,
        *,
        password_hash: str | None = UNCHANGED,
        security_profile: int = UNCHANGED,
        at: datetime,
    ) -> Station:
        keep_password = password_hash is UNCHANGED
        keep_profile = security_profile is UNCHANGED
        params = (
            station_id,
            None if keep_password else password_hash,
            1 if keep_profile else security_profile,
            at,
            keep_password,
            keep_profile,
        )
        return await self._register_station(station_id, params)

    @abstractmethod
    async def _register_station(self, station_id: str, params: Row) -> Station:
        """Run rows.REGISTER_STATION with ``params`` and return the station as stored."""

    # --- statements --------------------------------------------------------

    @abstractmethod
    async def _one(
        self, action: str, sql: str, params: Sequence[Any], decode: Decode[T]
    ) -> T | None:
        """The first row of ``sql`` decoded, None without one; ``action`` names it in errors."""

    @abstractmethod
    async def _all(
        self, action: str, sql: str, params: Sequence[Any], decode: Decode[T]
    ) -> list[T]:
        """Every row of ``sql`` decoded, in the order the statement gives."""

    async def find_pending_password(self, station_id: str) -> str | None:
        return await self._one(
            f"read the pending password of {station_id!r}",
            rows.FIND_PENDING_PASSWORD,
            (station_id,),
            _first,
        )

    async def secret(self, name: str, candidate: str) -> str:
        await self._offer_secret(name, candidate)
        value = await self._one(f"read secret {name!r}", rows.FIND_SHARED_KEY, (name,), _first)
        assert value is not None  # offered just before; secrets are never deleted
        return str(value)

    @abstractmethod
    async def _offer_secret(self, name: str, candidate: str) -> None:
        """Run rows.SHARED_KEY_OFFERED (keeps an existing secret)."""

    # --- presence (the PresenceStore reads) ----------------------------------

    async def find_presence(self, station_id: str, alive_since: datetime) -> Presence | None:
        return await self._one(
            f"find the connection of station {station_id!r}",
            rows.FIND_PRESENCE,
            (station_id, alive_since),
            rows.presence,
        )

    async def presences(self, alive_since: datetime) -> dict[str, Presence]:
        found = await self._all(
            "list open connections", rows.LIST_PRESENCES, (alive_since,), rows.presence
        )
        return {p.station_id: p for p in found}  # by epoch: the newest stays

    async def connections_of(self, node_id: str) -> list[Presence]:
        return await self._all(
            "list this process's connections", rows.NODE_CONNECTIONS, (node_id,), rows.presence
        )

    async def stale_connections(
        self, alive_since: datetime, node_id: str | None = None
    ) -> list[Presence]:
        return await self._all(
            "find connections of stopped processes",
            rows.STALE_CONNECTIONS,
            (alive_since, node_id),
            rows.presence,
        )

    # --- registry ----------------------------------------------------------

    async def find_station_ignoring_case(self, station_id: str) -> Station | None:
        # lower() folds ASCII only (PostgreSQL's too, in the C locale); ids are ASCII.
        found = await self._all(
            f"find station {station_id!r} ignoring case",
            rows.FIND_STATION_IGNORING_CASE,
            (station_id,),
            rows.station,
        )
        return found[0] if len(found) == 1 else None

    async def list_stations(self) -> list[Station]:
        return await self._all("list stations", rows.LIST_STATIONS, (), rows.station)

    async def find_local_list_version(self, station_id: str) -> int | None:
        version = await self._one(
            "find local list version", rows.FIND_LOCAL_LIST_VERSION, (station_id,), rows.first
        )
        return None if version is None else int(version)

    async def find_id_token(self, id_token: str) -> IdToken | None:
        return await self._one("find id token", rows.FIND_ID_TOKEN, (id_token,), rows.id_token)

    async def list_id_tokens(self) -> list[IdToken]:
        return await self._all("list id tokens", rows.LIST_ID_TOKENS, (), rows.id_token)

    # --- charging state ----------------------------------------------------

    async def list_connectors(self, station_id: str) -> list[ConnectorStatus]:
        return await self._all(
            "list connectors", rows.LIST_CONNECTORS, (station_id,), rows.connector
        )

    async def find_transaction(self, station_id: str, transaction_id: str) -> Transaction | None:
        params = (station_id, transaction_id)
        return await self._one("find transaction", rows.FIND_TRANSACTION, params, rows.transaction)

    async def find_transaction_by_ocpp16_id(self, transaction_id: int) -> Transaction | None:
        params = (str(transaction_id),)
        return await self._one(
            "find transaction", rows.FIND_OCPP16_TRANSACTION, params, rows.transaction
        )

    async def find_open_transaction_like(
        self, station_id: str, evse_id: int, id_token: str, started_at: datetime
    ) -> Transaction | None:
        params = (station_id, evse_id, id_token, started_at)
        return await self._one(
            "find transaction", rows.FIND_OPEN_TRANSACTION_LIKE, params, rows.transaction
        )

    async def list_open_transactions(
        self, station_id: str, evse_id: int | None = None
    ) -> list[Transaction]:
        params: list[Any] = [station_id]
        if evse_id is None:
            sql = rows.LIST_OPEN_TRANSACTIONS
        else:
            sql = rows.LIST_OPEN_TRANSACTIONS_ON_EVSE
            params.append(evse_id)
        return await self._all("list open transactions", sql, params, rows.transaction)

    async def list_transactions(self, where: TransactionFilter) -> list[Transaction]:
        sql, params = rows.transactions_query(where)
        return await self._all("list transactions", sql, params, rows.transaction)

    async def count_active_transactions(self) -> int:
        count = await self._one(
            "count active transactions", rows.COUNT_ACTIVE_TRANSACTIONS, (), rows.first
        )
        return int(count or 0)

    async def list_meter_samples(self, station_id: str, transaction_id: str) -> list[MeterSample]:
        params = (station_id, transaction_id)
        readings = await self._all(
            "list meter samples", rows.LIST_METER_READINGS, params, rows.first
        )
        decoding = self.decoding
        return [sample for column in readings for sample in rows.samples(column, decoding)]

    async def list_transaction_seq_nos(self, station_id: str, transaction_id: str) -> set[int]:
        params = (station_id, transaction_id)
        found = await self._all("list transaction seqNos", rows.LIST_SEQ_NOS, params, rows.first)
        return {int(seq_no) for seq_no in found}

    async def list_device_model(self, station_id: str) -> list[DeviceModelEntry]:
        return await self._all(
            "list device model", rows.LIST_DEVICE_MODEL, (station_id,), rows.device_model_entry
        )

    async def list_notifications(
        self, station_id: str, action: str | None = None
    ) -> list[StationNotified]:
        sql, params = rows.notifications_query(station_id, action)
        return await self._all("list notifications", sql, params, rows.notified)

    async def list_configuration(self, station_id: str) -> list[ConfigurationKey]:
        return await self._all(
            "list configuration", rows.LIST_CONFIGURATION, (station_id,), rows.configuration_key
        )

    async def list_reservations(self, station_id: str) -> list[Reservation]:
        return await self._all(
            "list reservations", rows.LIST_RESERVATIONS, (station_id,), rows.reservation
        )

    async def list_charging_profiles(self, station_id: str) -> list[ChargingProfile]:
        return await self._all(
            "list charging profiles",
            rows.LIST_CHARGING_PROFILES,
            (station_id,),
            rows.charging_profile,
        )

    # --- commands ------------------------------------------------------------

    async def find_command(self, command_id: str) -> Command | None:
        return await self._one("find command", rows.FIND_COMMAND, (command_id,), rows.command)

    async def list_commands(self, where: CommandFilter) -> list[Command]:
        sql, params = rows.commands_query(where)
        return await self._all("list commands", sql, params, rows.command)

    async def list_queued_commands(self, station_id: str, limit: int = 100) -> list[Command]:
        params = (station_id, limit)
        return await self._all(
            "list queued commands", rows.LIST_QUEUED_COMMANDS, params, rows.command
        )

    async def list_expired_commands(self, now: datetime, limit: int = 100) -> list[Command]:
        params = (now, limit)
        return await self._all(
            "list expired commands", rows.LIST_EXPIRED_COMMANDS, params, rows.command
        )

    async def list_stations_with_queued_commands(self) -> list[str]:
        found = await self._all(
            "list stations with queued commands",
            rows.LIST_STATIONS_WITH_QUEUED_COMMANDS,
            (),
            rows.first,
        )
        return [str(station_id) for station_id in found]

    # --- answers -----------------------------------------------------------

    async def find_call_answer(self, station_id: str, action: str) -> CallAnswered | None:
        params = (station_id, action)
        return await self._one(
            "find call answer", rows.FIND_CALL_ANSWER, params, rows.call_answered
        )

    # --- outbox ------------------------------------------------------------

    async def outbox_list(self, limit: int, pending_only: bool) -> list[OutboxRow]:
        sql = rows.outbox_list_query(pending_only)
        return await self._all("list the outbox", sql, (limit,), rows.outbox_row)
