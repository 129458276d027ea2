"""How the relay's publisher reads a batch's confirmations (no broker needed)."""

from __future__ import annotations

import asyncio

from pamqp import commands as spec

from csms.events.amqp import _confirmed_prefix


def confirmation(outcome: object) -> asyncio.Future[object]:
    future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    if outcome == "cancelled":
        future.cancel()
    elif isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
    return future


async def test_all_acks_confirm_the_whole_batch() -> None:
    outcome = await _confirmed_prefix([confirmation(spec.Basic.Ack()) for _ in range(3)])
    assert (outcome.confirmed, outcome.error) == (3, None)


async def test_a_nack_ends_the_confirmed_prefix() -> None:
    futures = [
        confirmation(spec.Basic.Ack()),
        confirmation(spec.Basic.Nack()),
        confirmation(spec.Basic.Ack()),
    ]
    outcome = await _confirmed_prefix(futures)
    assert outcome.confirmed == 1
    assert outcome.error is not None


async def test_a_connection_closed_by_aiormq_is_a_broker_loss_not_a_cancellation() -> None:
    """aiormq fails pending confirmations with CancelledError when it drops the
    connection itself (a missed heartbeat); the relay must see a lost broker
    and resend, not end as if it had been cancelled."""
    futures = [
        confirmation(spec.Basic.Ack()),
        confirmation("cancelled"),
        confirmation(spec.Basic.Ack()),
    ]
    outcome = await _confirmed_prefix(futures)
    assert outcome.confirmed == 1
    assert outcome.error == "the broker connection closed"
