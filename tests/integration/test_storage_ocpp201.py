"""Storage of what OCPP 2.0.1 adds: TransactionEvent seqNos and the device model."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from csms.core.domain import DeviceModelEntry
from csms.core.errors import StorageError
from csms.core.ports import DeviceModelReported, Storage, TransactionEventRecorded


@pytest.fixture
def storage(any_storage: Storage) -> Storage:
    """The contract holds for the in-memory storage as for the databases."""
    return any_storage


AT = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def seen(seq_no: int, tx: str = "TX-1") -> TransactionEventRecorded:
    return TransactionEventRecorded("CP-2", tx, seq_no, "Updated", "MeterValuePeriodic", AT, False)


class TestTransactionSeqNos:
    async def test_seq_nos_are_kept_per_transaction(self, storage: Storage) -> None:
        """Recorded seqNos come back as a set, separated by transaction."""
        await storage.commit([seen(0), seen(1)])
        await storage.commit([seen(5), seen(0, tx="TX-2")])
        assert await storage.list_transaction_seq_nos("CP-2", "TX-1") == {0, 1, 5}
        assert await storage.list_transaction_seq_nos("CP-2", "TX-2") == {0}
        assert await storage.list_transaction_seq_nos("CP-2", "TX-3") == set()

    async def test_a_repeated_seq_no_fails_its_unit(self, storage: Storage) -> None:
        """The database refuses a seqNo twice for one transaction."""
        await storage.commit([seen(3)])
        with pytest.raises(StorageError):
            await storage.commit([seen(3)])


class TestDeviceModel:
    async def test_entries_are_upserted_by_identity(self, storage: Storage) -> None:
        """A later report of the same attribute replaces its value; others are kept."""
        heartbeat = DeviceModelEntry(
            "OCPPCommCtrlr",
            None,
            None,
            None,
            "HeartbeatInterval",
            None,
            "Actual",
            "300",
            "ReadWrite",
            {"dataType": "integer"},
        )
        connector = DeviceModelEntry(
            "Connector",
            None,
            1,
            1,
            "Available",
            None,
            "Actual",
            "true",
            "ReadOnly",
        )
        await storage.commit([DeviceModelReported("CP-2", (heartbeat, connector), AT)])
        newer = DeviceModelEntry(
            "OCPPCommCtrlr",
            None,
            None,
            None,
            "HeartbeatInterval",
            None,
            "Actual",
            "60",
            "ReadWrite",
            {"dataType": "integer"},
        )
        await storage.commit([DeviceModelReported("CP-2", (newer,), AT)])
        entries = {e.key: e for e in await storage.list_device_model("CP-2")}
        assert entries[heartbeat.key].value == "60"
        assert entries[heartbeat.key].characteristics == {"dataType": "integer"}
        assert entries[connector.key] == connector
        assert await storage.list_device_model("OTHER") == []
