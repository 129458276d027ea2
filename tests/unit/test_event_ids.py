"""Event ids: random version-4 UUIDs, never repeated, not even by a forked child."""

from __future__ import annotations

import os
import uuid

from csms.core.events import new_event_id


def test_an_event_id_is_a_canonical_random_uuid() -> None:
    for _ in range(1000):  # more than one 4 KiB draw of random bytes
        text = new_event_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_ids_do_not_repeat() -> None:
    ids = {new_event_id() for _ in range(50_000)}
    assert len(ids) == 50_000


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    new_event_id()  # the parent holds random bytes it has not used yet
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next id and leave at once
        os.write(writer, new_event_id().encode())
        os._exit(0)
    os.close(writer)
    child_id = os.read(reader, 100).decode()
    os.close(reader)
    os.waitpid(pid, 0)
    assert uuid.UUID(child_id).version == 4
    assert child_id != new_event_id()
