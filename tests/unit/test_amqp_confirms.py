"""How the relay's publisher reads the broker's confirms (no broker needed).

The broker numbers a channel's publishes 1, 2, ... and confirms them by tag,
one at a time or all up to a tag (multiple), acks and nacks, in whatever
order; ``ConfirmBook`` turns those frames into each batch's confirmed prefix.
"""

from __future__ import annotations

from csms.adapters.amqp.publisher import BatchConfirms, ConfirmBook, _confirmed_prefix

ACK, NACK = True, False


async def outcome(batch: BatchConfirms) -> tuple[int, str | None]:
    published = await _confirmed_prefix(batch)
    return published.confirmed, published.error


class TestConfirmBook:
    async def test_one_multiple_ack_confirms_the_whole_batch(self) -> None:
        """An ack of "all up to the batch's last tag" confirms every message."""
        book = ConfirmBook()
        batch = book.expect(3)
        book.confirm(3, True, ACK)
        assert await outcome(batch) == (3, None)

    async def test_single_acks_in_any_order_confirm_the_batch(self) -> None:
        """Acks that arrive out of order still confirm the whole batch once all came."""
        book = ConfirmBook()
        batch = book.expect(3)
        book.confirm(3, False, ACK)
        book.confirm(1, False, ACK)
        assert not batch.done.done()  # tag 2 may still be nacked
        book.confirm(2, False, ACK)
        assert await outcome(batch) == (3, None)

    async def test_a_multiple_ack_spans_batches_in_tag_order(self) -> None:
        """The second batch's tags follow the first's; one ack can settle both."""
        book = ConfirmBook()
        first, second = book.expect(2), book.expect(3)
        book.confirm(4, True, ACK)
        assert await outcome(first) == (2, None)
        assert not second.done.done()
        book.confirm(5, False, ACK)
        assert await outcome(second) == (3, None)

    async def test_a_nack_ends_the_confirmed_prefix_once_all_before_it_settled(self) -> None:
        """The relay marks the acked prefix delivered and resends from the nacked one."""
        book = ConfirmBook()
        batch = book.expect(4)
        book.confirm(3, False, NACK)
        assert not batch.done.done()  # 1 and 2 may still be acked
        book.confirm(2, True, ACK)
        confirmed, error = await outcome(batch)
        assert confirmed == 2
        assert error is not None
        assert "nack" in error

    async def test_a_multiple_ack_after_a_nack_leaves_the_nack_standing(self) -> None:
        """An ack of "all up to N" covers only tags not yet settled."""
        book = ConfirmBook()
        batch = book.expect(3)
        book.confirm(2, False, NACK)
        book.confirm(3, True, ACK)
        confirmed, error = await outcome(batch)
        assert confirmed == 1
        assert error is not None

    async def test_a_lost_link_reports_what_was_confirmed_before(self) -> None:
        """When the connection closes, the prefix acked so far stands, the rest is resent."""
        book = ConfirmBook()
        first, second = book.expect(2), book.expect(2)
        book.confirm(3, True, ACK)
        book.fail("the broker connection was lost")
        assert await outcome(first) == (2, None)
        assert await outcome(second) == (1, "the broker connection was lost")

    async def test_confirms_after_giving_up_are_ignored(self) -> None:
        """Once the relay stopped waiting, late confirms change nothing."""
        book = ConfirmBook()
        batch = book.expect(2)
        batch.abandon()
        book.confirm(2, True, ACK)
        assert batch.confirmed == 0
        later = book.expect(1)
        book.confirm(3, False, ACK)
        assert await outcome(later) == (1, None)

    async def test_an_empty_batch_is_confirmed_at_once(self) -> None:
        """Nothing to publish means nothing to wait for."""
        assert await outcome(ConfirmBook().expect(0)) == (0, None)
