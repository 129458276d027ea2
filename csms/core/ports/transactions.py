"""Charging sessions as stored: transactions, their meter samples and seqNos."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from csms.core.domain import MeterSample, Transaction
from csms.core.records import record


@record
class TransactionFilter:
    station_id: str | None = None
    transaction_id: str | None = None
    id_token: str | None = None
    active: bool | None = None
    started_after: datetime | None = None
    started_before: datetime | None = None
    limit: int = 100
    offset: int = 0


class TransactionStore(Protocol):
    """Transactions are written by units of work; this port reads them."""

    async def find_transaction(
        self, station_id: str, transaction_id: str
    ) -> Transaction | None: ...

    async def find_transaction_by_ocpp16_id(self, transaction_id: int) -> Transaction | None:
        """1.6 transaction ids are unique across the CSMS, not per station."""
        ...

    async def find_open_transaction_like(
        self, station_id: str, evse_id: int, id_token: str, started_at: datetime
    ) -> Transaction | None:
        """A transaction already started with these facts (a resent StartTransaction)."""
        ...

    async def list_open_transactions(
        self, station_id: str, evse_id: int | None = None
    ) -> list[Transaction]:
        """The station's transactions not ended, on one EVSE when given, oldest
        first (an indexed read: the active transactions per connector)."""
        ...

    async def next_transaction_number(self) -> int:
        """A fresh, never reused 1.6 transaction id (a positive int32)."""
        ...

    async def list_transactions(self, where: TransactionFilter) -> list[Transaction]:
        """Newest start first."""
        ...

    async def count_active_transactions(self) -> int: ...

    async def list_meter_samples(self, station_id: str, transaction_id: str) -> list[MeterSample]:
        """A transaction's samples in the order they were recorded."""
        ...

    async def list_transaction_seq_nos(self, station_id: str, transaction_id: str) -> set[int]:
        """The TransactionEvent seqNos recorded for a transaction."""
        ...
