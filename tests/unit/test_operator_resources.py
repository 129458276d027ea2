"""The answers the operator edge builds fit the schema the OpenAPI document shows for them."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from csms.core.domain import (
    Command,
    CommandStatus,
    ConnectorStatus,
    IdToken,
    MeterSample,
    Reservation,
    Transaction,
)
from csms.core.events import iso
from csms.services.operator import resources as rs

# jsonschema is a dev dependency and ships no type hints: import it as Any.
jsonschema: Any = importlib.import_module("jsonschema")

SETTINGS = settings(derandomize=True, max_examples=100, deadline=None)
TIMES = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
TEXT = st.text(max_size=8)
MAYBE_TEXT = st.none() | TEXT
NUMBER = st.none() | st.floats(allow_nan=False, allow_infinity=False, width=32)
JSON = st.dictionaries(TEXT, st.none() | st.booleans() | st.integers() | TEXT, max_size=3)


@cache
def validator(model: type[rs.Resource]) -> Any:
    return jsonschema.Draft202012Validator(
        model.model_json_schema(mode="serialization"),
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def fits(resource: rs.Resource) -> dict[str, Any]:
    """The resource's JSON body, checked against its model's serialisation schema."""
    body = resource.dump()
    validator(type(resource)).validate(body)
    return body


def strategy(build: Callable[..., Any], **fields: st.SearchStrategy[Any]) -> Any:
    return st.builds(build, **fields)


class TestResourcesFitTheirSchema:
    @SETTINGS
    @given(
        strategy(
            Transaction,
            station_id=TEXT,
            transaction_id=TEXT,
            evse_id=st.integers(0, 9),
            connector_id=st.integers(0, 9),
            id_token=MAYBE_TEXT,
            meter_start_wh=NUMBER,
            started_at=TIMES,
            ocpp_version=st.sampled_from(["1.6", "2.0.1"]),
            meter_stop_wh=NUMBER,
            energy_wh=NUMBER,
            ended_at=st.none() | TIMES,
            stop_reason=MAYBE_TEXT,
            seq_no=st.none() | st.integers(0, 2**31),
            anomalies=st.lists(TEXT, max_size=2).map(tuple),
        ),
        st.lists(
            strategy(
                MeterSample,
                timestamp=TIMES,
                measurand=TEXT,
                value=st.floats(allow_nan=False, allow_infinity=False),
                unit=MAYBE_TEXT,
                phase=MAYBE_TEXT,
                context=MAYBE_TEXT,
                location=MAYBE_TEXT,
            ),
            max_size=3,
        ),
    )
    def test_a_transaction_with_samples(self, tx: Transaction, samples: list[MeterSample]) -> None:
        """Every key present, times as the events write them, the billed energy as stored."""
        body = fits(rs.TransactionDetail.with_samples(tx, samples))
        assert body["started_at"] == iso(tx.started_at)
        assert (body["energy_wh"], body["active"]) == (tx.energy_wh, tx.ended_at is None)
        assert len(body["meter_samples"]) == len(samples)

    @SETTINGS
    @given(
        strategy(
            Command,
            id=TEXT,
            station_id=TEXT,
            name=MAYBE_TEXT,
            action=MAYBE_TEXT,
            ocpp_version=MAYBE_TEXT,
            request=JSON,
            status=st.sampled_from(CommandStatus),
            source=st.sampled_from(["api", "amqp"]),
            created_at=TIMES,
            payload=st.none() | JSON,
            response=st.none() | JSON,
            error=st.none() | JSON,
            expires_at=st.none() | TIMES,
            sent_at=st.none() | TIMES,
            completed_at=st.none() | TIMES,
        )
    )
    def test_a_command_record(self, command: Command) -> None:
        """A command record keeps its name as `command` and its status as a word."""
        body = fits(rs.CommandResource.of(command))
        assert (body["command"], body["status"]) == (command.name, command.status.value)

    @SETTINGS
    @given(
        st.lists(
            strategy(
                ConnectorStatus,
                station_id=st.just("CP"),
                evse_id=st.integers(0, 3),
                connector_id=st.integers(0, 3),
                status=TEXT,
                error_code=MAYBE_TEXT,
                info=MAYBE_TEXT,
                vendor_id=MAYBE_TEXT,
                vendor_error_code=MAYBE_TEXT,
                updated_at=TIMES,
            ),
            max_size=5,
        ),
        strategy(IdToken, id_token=TEXT, expires_at=st.none() | TIMES, group_id=MAYBE_TEXT),
        strategy(
            Reservation,
            station_id=TEXT,
            reservation_id=st.integers(0, 99),
            evse_id=st.integers(0, 3),
            id_token=TEXT,
            expires_at=TIMES,
            status=TEXT,
            updated_at=st.none() | TIMES,
        ),
    )
    def test_evses_tokens_and_reservations(
        self, connectors: list[ConnectorStatus], token: IdToken, reservation: Reservation
    ) -> None:
        """Connectors come grouped by EVSE in id order; tokens and reservations fit too."""
        evses = [fits(e) for e in rs.EvseResource.all_of(connectors)]
        assert [e["evse_id"] for e in evses] == sorted({c.evse_id for c in connectors})
        assert sum(len(e["connectors"]) for e in evses) == len(connectors)
        assert fits(rs.IdTokenResource.of(token))["status"] == token.status.value
        fits(rs.ReservationResource.read(reservation))
