"""The official OCPP JSON schemas (shipped by the ``ocpp`` package), compiled
once, and the one table that maps a schema failure to the OCPP-J error code
the spec names.

Each schema is compiled twice. A payload jsonschema-rs (Rust) accepts passes:
1.5 us where fastjsonschema takes 15-26 us. fastjsonschema judges only what
jsonschema-rs refused, and its verdict and error (rule, path, message) are
the ones answered: the CSMS accepts what either accepts. Both agree with the
reference validator on a corpus of every schema's valid and broken payloads;
the few date-times fastjsonschema lets through and the reference does not
are pinned down there (tests/unit/test_schema_verdicts.py). Outside it they
differ on edge URIs: jsonschema-rs accepts ``http:``, which fastjsonschema
refused (docs/benchmarks.md)."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.resources import files
from typing import Any

import fastjsonschema
import jsonschema_rs

from csms.transport.rpc import ErrorCodes, RpcError

Validator = Callable[[Any], Any]

# The failed JSON-schema keyword -> the OCPP-J error code. "formation" and
# "occurrence" are spelled per version (see ErrorCodes).
_RULE_CODES = {
    "type": "TypeConstraintViolation",
    "maxLength": "TypeConstraintViolation",
    "minLength": "TypeConstraintViolation",
    "format": "TypeConstraintViolation",
    "enum": "PropertyConstraintViolation",
    "const": "PropertyConstraintViolation",
    "minimum": "PropertyConstraintViolation",
    "maximum": "PropertyConstraintViolation",
    "exclusiveMinimum": "PropertyConstraintViolation",
    "exclusiveMaximum": "PropertyConstraintViolation",
    "multipleOf": "PropertyConstraintViolation",
    "pattern": "PropertyConstraintViolation",
}
_OCCURRENCE_RULES = frozenset({"required", "minItems", "maxItems", "minProperties"})

# OCPP defines "integer" as 32-bit signed (1.6 and 2.0.1 alike). The schema
# files leave most integers unbounded, and 2.0.1's draft-06 even accepts
# 1e21 as an integer: a station's 2**70 would reach a database column.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def error_code(rule: str | None, codes: ErrorCodes) -> str:
    if rule in _OCCURRENCE_RULES:
        return codes.occurrence
    return _RULE_CODES.get(rule or "", codes.formation)


def bound_integers(schema: Any) -> Any:
    """Give every ``integer`` in ``schema`` the int32 range it lacks (in place):
    an out-of-range integer is then a PropertyConstraintViolation, before any
    handler sees it."""
    if isinstance(schema, dict):
        if schema.get("type") == "integer":
            schema.setdefault("minimum", INT32_MIN)
            schema.setdefault("maximum", INT32_MAX)
        for value in schema.values():
            bound_integers(value)
    elif isinstance(schema, list):
        for item in schema:
            bound_integers(item)
    return schema


class SchemaSet:
    """Request and response validators of one OCPP version, compiled lazily
    (once per action) from the schema files."""

    def __init__(self, version_dir: str, request_suffix: str, codes: ErrorCodes) -> None:
        self._dir = files("ocpp") / version_dir / "schemas"
        self._request_suffix = request_suffix
        self._codes = codes
        self._cache: dict[str, Validator | None] = {}
        self._schemas: dict[str, dict[str, Any]] = {}

    def actions(self) -> set[str]:
        """Every action with a request schema in this version."""
        names = (p.name for p in self._dir.iterdir() if p.name.endswith(".json"))
        suffix = self._request_suffix + ".json"
        return {
            n[: -len(suffix)]
            for n in names
            if n.endswith(suffix) and not n.endswith("Response.json")
        }

    def request(self, action: str) -> Validator | None:
        return self._load(action + self._request_suffix)

    def response(self, action: str) -> Validator | None:
        return self._load(action + "Response")

    def request_schema(self, action: str) -> dict[str, Any] | None:
        """The request schema as validated (integers bounded), for repairs."""
        if self.request(action) is None:
            return None
        return self._schemas[action + self._request_suffix]

    def _load(self, name: str) -> Validator | None:
        try:
            return self._cache[name]
        except KeyError:
            pass
        path = self._dir / (name + ".json")
        validator: Validator | None = None
        if path.is_file():
            schema = bound_integers(json.loads(path.read_text(encoding="utf-8")))
            validator = _compile(schema)
            self._schemas[name] = schema
        self._cache[name] = validator
        return validator

    def check(self, validator: Validator, payload: dict[str, Any], unique_id: str) -> None:
        """Raise the CALLERROR the spec names if ``payload`` fails ``validator``."""
        try:
            validator(payload)
        except fastjsonschema.JsonSchemaValueException as exc:
            path = ".".join(exc.path[1:]) if exc.path else ""
            raise RpcError(
                error_code(exc.rule, self._codes),
                exc.message.replace("data.", "", 1).replace("data ", "payload ", 1),
                {"path": path, "rule": exc.rule},
                unique_id=unique_id,
            ) from None


def _compile(schema: dict[str, Any]) -> Validator:
    """A validator that raises fastjsonschema's error for an invalid payload.

    use_default=False: validation must not write schema defaults into the
    station's payload (it is stored as received)."""
    explain = fastjsonschema.compile(schema, use_default=False)
    accepts = jsonschema_rs.validator_for(schema, validate_formats=True).is_valid

    def validate(payload: Any) -> Any:
        try:
            valid = accepts(payload)
        except Exception:  # whatever it is (a recursion limit?), fastjsonschema decides
            valid = False
        return payload if valid else explain(payload)

    return validate
