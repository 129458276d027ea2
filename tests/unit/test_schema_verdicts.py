"""What the CSMS accepts is what the official schemas accept.

The CSMS accepts what jsonschema-rs accepts and leaves the rest to
fastjsonschema, which also explains a refusal (protocols/schemas.py). On a
corpus of every schema's valid payloads and their mutations
(tests/schema_corpus.py, about 68,000 payloads), each of the three gives the
same verdict as the reference validator, ``jsonschema``. The few date-times
where fastjsonschema, and so the CSMS, is more lenient than the reference
are pinned down below."""

from __future__ import annotations

import importlib
import re
from typing import Any

import fastjsonschema
import jsonschema_rs
import pytest

from protocols import ocpp16, ocpp201
from protocols.schemas import SchemaSet, bound_integers
from tests.ocpp_samples import decimal_multiple_of
from tests.schema_corpus import load_schema, payloads, schema_names, valid_examples

# jsonschema is a dev dependency and ships no type hints: import it as Any.
jsonschema: Any = importlib.import_module("jsonschema")

# What the CSMS runs: the adapters' own schema sets.
SCHEMA_SETS: dict[str, SchemaSet] = {
    "1.6": ocpp16.adapter().schemas,
    "2.0.1": ocpp201.adapter().schemas,
}
# RFC 3986: an absolute URI starts with a scheme. jsonschema checks "uri" only
# with the rfc3987 package installed, which this project does not need.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]*$")


def reference(schema: dict[str, Any]) -> Any:
    base = jsonschema.validators.validator_for(schema)
    checker = jsonschema.FormatChecker(base.FORMAT_CHECKER.checkers)
    checker.checks("uri")(lambda value: not isinstance(value, str) or bool(_URI.match(value)))
    validator = jsonschema.validators.extend(base, {"multipleOf": decimal_multiple_of})
    return validator(schema, format_checker=checker)


def csms_validator(version: str, name: str) -> Any:
    schemas = SCHEMA_SETS[version]
    if name.endswith("Response"):
        validator = schemas.response(name.removesuffix("Response"))
    else:
        validator = schemas.request(name.removesuffix("Request"))
    assert validator is not None
    return validator


def verdict(validate: Any, payload: Any) -> bool:
    try:
        validate(payload)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


CASES = [(v, n) for v in ("1.6", "2.0.1") for n in schema_names(v)]


@pytest.mark.parametrize(("version", "name"), CASES, ids=[f"{v}-{n}" for v, n in CASES])
def test_every_validator_gives_the_reference_verdict(version: str, name: str) -> None:
    schema = bound_integers(load_schema(version, name))
    ours = csms_validator(version, name)
    fast = fastjsonschema.compile(schema, use_default=False)
    rust = jsonschema_rs.validator_for(schema, validate_formats=True)
    ref = reference(schema)
    for valid in valid_examples(schema):  # else every mutation is refused anyway
        assert ref.is_valid(valid), valid
    tried = accepted = 0
    for payload in payloads(schema):
        expected = ref.is_valid(payload)
        assert verdict(ours, payload) == expected, payload
        assert verdict(fast, payload) == expected, payload
        assert rust.is_valid(payload) == expected, payload
        tried += 1
        accepted += expected
    # The corpus has both kinds for every schema.
    assert 0 < accepted < tried


@pytest.mark.parametrize(
    "timestamp",
    [
        "2026-11-26T12:00:00+0530",  # an offset without its colon
        "\u0662\u0660\u0662\u0666-11-26T12:00:00Z",  # Arabic-Indic digits
        "2026-11-26T23:59:60Z",  # a leap second on a day without one
        "0000-01-01T00:00:00Z",  # the year 0
    ],
)
def test_date_times_the_reference_refuses_are_fastjsonschemas_to_judge(timestamp: str) -> None:
    """fastjsonschema's date-time check, the one the CSMS has always applied,
    lets these through (jsonschema-rs the last two as well); the reference
    refuses them. The CSMS
    keeps fastjsonschema's verdict (a station's quirky clock is not refused
    now where it was accepted before), and reading the time decides: what
    Python cannot read becomes a TypeConstraintViolation there."""
    schema = bound_integers(load_schema("1.6", "MeterValues"))
    payload = {
        "connectorId": 1,
        "meterValue": [{"timestamp": timestamp, "sampledValue": [{"value": "1"}]}],
    }
    assert not reference(schema).is_valid(payload)
    assert verdict(fastjsonschema.compile(schema, use_default=False), payload)
    assert verdict(csms_validator("1.6", "MeterValues"), payload)


def test_a_refusal_is_explained_by_the_rule_and_path_that_failed() -> None:
    meter_values = SCHEMA_SETS["1.6"].request("MeterValues")
    assert meter_values is not None
    payload: dict[str, Any] = {
        "connectorId": 1,
        "meterValue": [{"timestamp": "2026-11-26T12:00:00Z", "sampledValue": [{"value": "1"}]}],
    }
    meter_values(payload)
    payload["meterValue"][0]["sampledValue"][0]["unit"] = "Kwh"
    with pytest.raises(fastjsonschema.JsonSchemaValueException) as caught:
        meter_values(payload)
    assert caught.value.rule == "enum"
    assert caught.value.path == ["data", "meterValue", "0", "sampledValue", "0", "unit"]
