"""The relay's hand-written content header frame says what pamqp would (no broker needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pamqp.frame
import pamqp.header
import pytest

from csms.adapters.amqp.confirm_link import CHANNEL
from csms.adapters.amqp.publisher import content_header_frame, properties
from csms.core.events import Event


def event(station_id: str, kind: str = "meter.values") -> Event:
    moment = datetime.now(UTC)
    return Event.new(kind, station_id, "1.6", moment, moment, {"n": 1})


class TestContentHeaderFrame:
    @pytest.mark.parametrize(
        ("station_id", "kind", "body_size"),
        [
            ("CP-1", "meter.values", 321),
            ("", "station.booted", 0),
            ("Ladesäule-Nord/7 ⚡", "transaction.ended", 2**33),
            ("x" * 300, "security.event", 131_072),
        ],
    )
    def test_the_bytes_are_pamqps_for_the_contract_properties(
        self, station_id: str, kind: str, body_size: int
    ) -> None:
        """Byte for byte what pamqp marshals for ``properties(event)``, any station id."""
        subject = event(station_id, kind)
        expected = pamqp.frame.marshal(
            pamqp.header.ContentHeader(0, body_size, properties(subject)), CHANNEL
        )
        assert content_header_frame(subject, body_size) == expected

    def test_pamqp_reads_back_the_contract_properties(self) -> None:
        """A consumer's codec sees persistent JSON with message_id, type and station_id."""
        subject = event("CP-9")
        _, channel, header = pamqp.frame.unmarshal(content_header_frame(subject, 42))
        assert isinstance(header, pamqp.header.ContentHeader)
        assert (channel, header.body_size) == (CHANNEL, 42)
        props = header.properties
        assert (props.content_type, props.delivery_mode, props.app_id) == (
            "application/json",
            2,
            "csms",
        )
        assert (props.message_id, props.message_type) == (subject.event_id, subject.type)
        assert props.headers == {"station_id": "CP-9"}
