"""The seq ranges a relay skips while batches are on the wire."""

from __future__ import annotations

from csms.adapters.amqp.relay import _seq_ranges


def test_seq_ranges_merge_runs_and_keep_gaps() -> None:
    """Consecutive seqs become one inclusive range; a gap (a row committed
    late, or a seq never used) starts a new one, so it is read again."""
    assert _seq_ranges([5, 6, 7, 9, 10, 20]) == [(5, 7), (9, 10), (20, 20)]
    assert _seq_ranges([12, 3, 4, 11]) == [(3, 4), (11, 12)]
    assert _seq_ranges([]) == []
