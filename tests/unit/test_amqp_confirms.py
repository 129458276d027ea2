"""How the relay's publisher reads a batch's confirmations (no broker needed).

aiormq settles each delivery tag's entry as it would a future: set_result(frame)
for an ack, set_exception(DeliveryError) for a nack, in whatever order the
broker's (possibly multiple) acks arrive.
"""

from __future__ import annotations

import asyncio
import functools
from collections import OrderedDict
from types import SimpleNamespace
from typing import Any

import aiormq
from aiormq.exceptions import DeliveryError
from pamqp import commands as spec

from csms.adapters.amqp.publisher import BatchConfirms, _Confirmation, _confirmed_prefix


def batch(count: int) -> tuple[BatchConfirms, list[_Confirmation]]:
    confirms = BatchConfirms(count, asyncio.get_running_loop().create_future())
    return confirms, [_Confirmation(confirms, i) for i in range(count)]


async def test_all_acks_confirm_the_whole_batch_in_any_order() -> None:
    confirms, entries = batch(3)
    for i in (2, 0, 1):
        entries[i].set_result(spec.Basic.Ack(delivery_tag=i + 1, multiple=True))
    outcome = await _confirmed_prefix(confirms)
    assert (outcome.confirmed, outcome.error) == (3, None)


async def test_a_nack_ends_the_confirmed_prefix_once_all_before_it_settled() -> None:
    confirms, entries = batch(4)
    entries[2].set_exception(DeliveryError(None, spec.Basic.Nack(delivery_tag=3)))
    assert not confirms.done.done()  # 0 and 1 may still be acked
    entries[0].set_result(spec.Basic.Ack(delivery_tag=1))
    entries[1].set_result(spec.Basic.Ack(delivery_tag=2))
    outcome = await _confirmed_prefix(confirms)
    assert outcome.confirmed == 2
    assert outcome.error is not None
    assert "DeliveryError" in outcome.error


async def test_a_connection_closed_by_aiormq_is_a_broker_loss_not_a_cancellation() -> None:
    """aiormq fails what waits on a connection it drops itself (a missed
    heartbeat) with CancelledError; the relay must see a lost broker and
    resend, not end as if it had been cancelled."""
    confirms, entries = batch(3)
    entries[0].set_result(spec.Basic.Ack(delivery_tag=1))
    confirms.done.cancel()
    outcome = await _confirmed_prefix(confirms)
    assert outcome.confirmed == 1
    assert outcome.error == "the broker connection closed"


async def test_a_closed_channel_reports_what_was_confirmed() -> None:
    """The channel's close fails the batch's future: the prefix so far stands."""
    confirms, entries = batch(3)
    entries[0].set_result(spec.Basic.Ack(delivery_tag=1))
    confirms.done.set_exception(ConnectionError("channel closed"))
    outcome = await _confirmed_prefix(confirms)
    assert outcome.confirmed == 1
    assert outcome.error is not None
    assert "channel closed" in outcome.error


async def test_confirms_after_giving_up_are_ignored() -> None:
    """Once the relay stopped waiting, late confirms change nothing and aiormq
    sees the entries as cancelled (it logs them at debug level only)."""
    confirms, entries = batch(2)
    confirms.abandon()
    entries[0].set_result(spec.Basic.Ack(delivery_tag=1))
    assert confirms.confirmed == 0
    assert entries[1].done()
    assert entries[1].cancelled()


async def test_aiormq_settles_the_entries_through_its_own_confirm_handling() -> None:
    """aiormq's own ack handling (this version's code, run on a stand-in channel
    holding only what it reads): multiple acks, a single ack and a nack settle
    the batch's entries, and every entry leaves the channel's table. Guards the
    entries against an aiormq that calls more of a future than they offer."""
    loop = asyncio.get_running_loop()
    channel: Any = SimpleNamespace(publisher_confirms=True, confirmations=OrderedDict(), loop=loop)
    channel._confirm_delivery = functools.partial(aiormq.Channel._confirm_delivery, channel)
    confirms = BatchConfirms(5, loop.create_future())
    for tag in range(1, 6):
        channel.confirmations[tag] = _Confirmation(confirms, tag - 1)
    await aiormq.Channel._on_confirm_frame(channel, spec.Basic.Ack(delivery_tag=2, multiple=True))
    await aiormq.Channel._on_confirm_frame(channel, spec.Basic.Ack(delivery_tag=3))
    await aiormq.Channel._on_confirm_frame(channel, spec.Basic.Nack(delivery_tag=4))
    await aiormq.Channel._on_confirm_frame(channel, spec.Basic.Ack(delivery_tag=5))
    outcome = await _confirmed_prefix(confirms)
    assert outcome.confirmed == 3
    assert outcome.error is not None
    assert not channel.confirmations
