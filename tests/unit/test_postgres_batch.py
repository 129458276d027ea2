"""The PostgreSQL batch document: rows csms_apply_batch can apply set-based."""

from __future__ import annotations

from datetime import UTC, datetime

from csms.adapters.storage.batching import group_ops
from csms.adapters.storage.postgres import _batch_document, _last_by_key
from csms.core.domain import ConnectorStatus
from csms.core.ports import ConnectorStatusChanged, StationSeen

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_last_by_key_keeps_the_last_row_of_each_key_sorted_by_key() -> None:
    """One row per key (an upsert may touch a row once per statement), the last
    one, in key order (overlapping batches lock rows in one order)."""
    rows = [("B", 1, "first"), ("A", 2, "x"), ("B", 1, "last"), ("A", 1, "y")]
    assert _last_by_key(rows, 2) == [("A", 1, "y"), ("A", 2, "x"), ("B", 1, "last")]
    assert _last_by_key([("B", 0), ("B", 1)], 1) == [("B", 1)]
    assert _last_by_key([("Z", 0)], 1) == [("Z", 0)]


def test_document_holds_only_the_kinds_present() -> None:
    """Absent kinds are left out, so the function skips their statements."""
    status = ConnectorStatus("CP-1", 1, 1, "Available", None, None, None, None, T0)
    ops = group_ops([[ConnectorStatusChanged(status), StationSeen("CP-1", "1.6", T0)]])
    document = _batch_document(ops, T0)
    assert sorted(document) == ["seen", "statuses"]
    assert document["seen"] == [("CP-1", "1.6", T0)]
