"""The operator edge's rules: one verdict per value, whichever model reads it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from csms.core.errors import InvalidRequestError
from csms.services.commands import NEUTRAL_COMMANDS, NeutralCommand
from csms.services.operator import requests as rq
from csms.services.operator.errors import OperatorError
from csms.services.operator.limits import MAX_PASSWORD, MAX_QUEUE_EXPIRY, MIN_PASSWORD
from csms.services.operator.rules import (
    PASSWORD,
    QUERY_KIND,
    QUERY_STATUS,
    TIME,
    read,
)

ZONES: list[tzinfo | None] = [None, timezone(timedelta(hours=5))]
# A valid value of each command's required fields, so that one field is judged at a time.
REQUIRED: dict[str, dict[str, object]] = {
    "start": {"id_token": "TAG"},
    "stop": {"transaction_id": "7"},
    "reset": {"type": "soft"},
    "unlock": {"evse_id": 1},
    "change-availability": {"operative": True},
    "trigger-message": {"message": "Heartbeat"},
}
SETTINGS = settings(derandomize=True, max_examples=200, deadline=None)


def verdict(model: type[BaseModel], value: object, status: int, kind: str) -> int | None:
    """None when ``model`` takes ``value``, else the status it answers (with ``kind``)."""
    try:
        read(model, value, status=status, kind=kind)
    except OperatorError as exc:
        refusal = exc
    else:
        return None
    assert (refusal.body["error"], bool(refusal.body["message"])) == (kind, True)
    return refusal.status


class TestPassword:
    @SETTINGS
    @given(st.text(max_size=MAX_PASSWORD + 10))
    def test_registration_rotation_and_the_cli_rule_agree(self, password: str) -> None:
        """A password is taken by all three readers exactly when it has 1-40 characters."""
        allowed = MIN_PASSWORD <= len(password) <= MAX_PASSWORD
        body = {"password": password}
        assert (verdict(rq.PasswordRotation, body, 422, "invalid_body") is None) == allowed
        assert (verdict(rq.StationRegistration, body, 422, "invalid_value") is None) == allowed
        try:
            PASSWORD.validate_python(password)
        except ValueError:
            assert not allowed
        else:
            assert allowed

    def test_the_readme_example_is_a_valid_password(self) -> None:
        """Every `--password '...'` the README shows passes the rule."""
        readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
        examples = re.findall(r"--password '([^']+)'", readme)
        assert examples
        assert [PASSWORD.validate_python(p) for p in examples] == examples


class TestQueryValues:
    @SETTINGS
    @given(st.text(max_size=12))
    def test_a_bad_boolean_and_a_bad_date_get_the_same_status(self, text: str) -> None:
        """Whatever the type, a value the query string cannot hold is 400 invalid_query."""
        for model, name in (
            (rq.StationQuery, "connected"),
            (rq.TransactionQuery, "active"),
            (rq.TransactionQuery, "started_after"),
            (rq.QueueQuery, "expires_at"),
            (rq.PageQuery, "limit"),
        ):
            answer = verdict(model, {name: text, "queue": "true"}, QUERY_STATUS, QUERY_KIND)
            assert answer in (None, QUERY_STATUS)

    @pytest.mark.parametrize("value", ["maybe", "2", ""])
    def test_booleans_and_dates_refused_alike(self, value: str) -> None:
        """?active=maybe and ?started_after=maybe are both refused with 400."""
        assert verdict(rq.TransactionQuery, {"active": value}, 400, QUERY_KIND) == 400
        assert verdict(rq.TransactionQuery, {"started_after": value}, 400, QUERY_KIND) == 400


class TestExpiry:
    @SETTINGS
    @given(st.floats(min_value=-10, max_value=MAX_QUEUE_EXPIRY.total_seconds() * 2))
    def test_query_and_body_bound_expires_in_alike(self, seconds: float) -> None:
        """expires_in is more than 0 and at most 30 days in the query and in a body."""
        allowed = 0 < seconds <= MAX_QUEUE_EXPIRY.total_seconds()
        query = {"queue": "true", "expires_in": str(seconds)}
        assert (verdict(rq.QueueQuery, query, 400, QUERY_KIND) is None) == allowed
        window = {"expires_in": seconds}
        assert (verdict(rq.QueueWindow, window, 422, "invalid_queue") is None) == allowed

    def test_an_expiry_without_queue_is_refused(self) -> None:
        """?expires_in= alone (no queue=true) is a query error."""
        assert verdict(rq.QueueQuery, {"expires_in": "60"}, 400, QUERY_KIND) == 400

    def test_a_window_means_queue_until_its_deadline(self) -> None:
        """{"expires_in": 60} queues for a minute; true queues with the default expiry."""
        now = datetime(2030, 1, 1, tzinfo=UTC)
        window = rq.QUEUE.validate_python({"expires_in": 60})
        assert rq.queue_of(window, now) == (True, now + timedelta(seconds=60))
        assert rq.queue_of(rq.QUEUE.validate_python(True), now) == (True, None)
        assert rq.queue_of(rq.QUEUE.validate_python(None), now) == (False, None)


class TestTimes:
    @SETTINGS
    @given(
        st.datetimes(
            min_value=datetime(1971, 1, 1),
            timezones=st.sampled_from(ZONES),
        )
    )
    def test_a_date_time_is_read_as_the_same_instant_in_utc(self, moment: datetime) -> None:
        """An ISO 8601 time with an offset keeps its instant; one without is UTC."""
        read_back = TIME.validate_python(moment.isoformat())
        assert read_back.tzinfo == UTC
        expected = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
        assert read_back == expected


# Values at the edges of what the neutral fields take (None, booleans, OCPP integer bounds...).
NEUTRAL_VALUES: list[object] = [
    None, True, False, -1, 0, 1, 2**31 - 1, 2**31, 0.0, 1.5, "", "hard", "soft", "Heartbeat", "7",
]  # fmt: skip


class TestNeutralFields:
    def test_the_documented_fields_take_what_the_command_parser_takes(self) -> None:
        """A documented neutral field is valid exactly when NeutralCommand takes it."""
        fields = sorted(set(rq.NeutralFields.model_fields) - {"queue"})
        disagree = []
        for name in NEUTRAL_COMMANDS:
            for key in fields:
                for value in NEUTRAL_VALUES:
                    documented = (
                        verdict(rq.NeutralFields, {key: value}, 422, "invalid_command") is None
                    )
                    parsed = parses(name, {**REQUIRED[name], key: value})
                    if parsed is not None and parsed != documented:
                        disagree.append((name, key, value))
        assert disagree == []


def parses(name: str, body: dict[str, object]) -> bool | None:
    """Whether NeutralCommand takes ``body``; None when it refuses for another reason
    than the field's value (a field ``name`` does not take, a required one left out)."""
    try:
        NeutralCommand.parse(name, body)
    except InvalidRequestError as exc:
        return None if " takes " in str(exc) or " needs " in str(exc) else False
    return True
