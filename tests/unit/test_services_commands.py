"""CommandService on the in-memory storage: a command's life as stored, each
move conditional on the status it had, its effects committed with it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from csms.adapters.storage.memory import MemoryStorage
from csms.core.domain import CommandStatus, ConfigurationKey, Reservation
from csms.core.errors import ConflictError
from csms.core.events import EventType
from csms.services import Services
from csms.services.commands import Effects
from tests.unit.services_fixture import T0, FakeClock, build_services


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def services(storage: MemoryStorage) -> Services:
    return build_services(storage, FakeClock())


async def queued(services: Services) -> None:
    command = services.commands.new(
        "CP-1",
        name="reset",
        action=None,
        ocpp_version="1.6",
        request={"type": "soft"},
        source="api",
    )
    await services.commands.queue(command)


class TestCommandLife:
    async def test_a_queued_command_is_sent_once(
        self, services: Services, storage: MemoryStorage
    ) -> None:
        """Two writers sending one queued command: the second gets ConflictError."""
        await queued(services)
        (command,) = await storage.list_queued_commands("CP-1")
        commands = services.commands
        sent = await commands.sending(
            command, action="Reset", ocpp_version="1.6", payload={}, recorded=True
        )
        with pytest.raises(ConflictError):
            await commands.sending(
                command, action="Reset", ocpp_version="1.6", payload={}, recorded=True
            )
        stored = await storage.find_command(command.id)
        assert stored == sent
        assert await storage.list_queued_commands("CP-1") == []

    async def test_an_answer_lands_with_its_effects_and_one_event(
        self, services: Services, storage: MemoryStorage
    ) -> None:
        """A completed command stores the configuration it changed and reports itself once."""
        await queued(services)
        (command,) = await storage.list_queued_commands("CP-1")
        sent = await services.commands.sending(
            command, action="Reset", ocpp_version="1.6", payload={}, recorded=True
        )
        effects = Effects(configuration=(ConfigurationKey("HeartbeatInterval", "60", False),))
        done = await services.commands.completed(sent, {"status": "Accepted"}, effects)
        assert done.status == CommandStatus.COMPLETED
        assert [(k.key, k.value) for k in await storage.list_configuration("CP-1")] == [
            ("HeartbeatInterval", "60")
        ]
        events = [row.event.type for row in await storage.outbox_pending(10)]
        assert events == [EventType.COMMAND_COMPLETED]

    async def test_a_cancellation_marks_the_stored_reservation(
        self, services: Services, storage: MemoryStorage
    ) -> None:
        """CancelReservation accepted: the reservation the station held reads Cancelled."""
        reservation = Reservation("CP-1", 7, 1, "TAG-1", T0 + timedelta(hours=1), "Reserved")
        await queued(services)
        (command,) = await storage.list_queued_commands("CP-1")
        sent = await services.commands.sending(
            command, action="ReserveNow", ocpp_version="1.6", payload={}, recorded=True
        )
        await services.commands.completed(sent, {}, Effects(reservation=reservation))
        await queued(services)
        (cancel,) = await storage.list_queued_commands("CP-1")
        sent = await services.commands.sending(
            cancel, action="CancelReservation", ocpp_version="1.6", payload={}, recorded=True
        )
        await services.commands.completed(sent, {}, Effects(reservation_cancelled=7))
        (stored,) = await storage.list_reservations("CP-1")
        assert stored.status == "Cancelled"
