"""Hypothesis strategies for hostile OCPP input.

``valid_payloads(schema)`` draws payloads that the official JSON schema
accepts; ``bent_payloads(schema)`` draws one of those and bends it in one
place (a value replaced by a wrong type, a huge number, a NUL character,
deep nesting, a bad date; a key deleted or invented). ``to_json`` writes a
payload with the standard library, which (unlike orjson) writes integers of
any size, lone surrogates and deep nesting, as a hostile station would.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files
from typing import Any

from hypothesis import strategies as st

JsonSchema = dict[str, Any]
Path = tuple[str | int, ...]

# version -> (directory in the ocpp package, request schema suffix)
_SCHEMA_DIRS = {"1.6": ("v16", ""), "2.0.1": ("v201", "Request")}

INT32 = (-(2**31), 2**31 - 1)

HUGE_NUMBERS = st.sampled_from(
    [
        2**31,
        -(2**31) - 1,
        2**53 + 1,
        2**63,
        2**64,
        2**70,
        -(2**70),
        1e308,
        -1e308,
        5e-324,
        1e21,
        -0.0,
    ]
)
TRICKY_STRINGS = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "\ud800",  # a lone surrogate: not valid UTF-8 once encoded
        "\u202e\u0301",
        "\U0001d11e" * 20,
        "x" * 4000,
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
        "1970-01-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T12:00:00",
        "2024-01-01T12:00:00+02",
        "NaN",
        "Infinity",
        "-1e999",
        "1e308",
        "Charging ",
        "SuspendedEv",
    ]
)
JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
RANDOM_JSON = st.recursive(
    JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _deep(depth: int, kind: str) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


DEEP_NESTING = st.builds(
    _deep, st.sampled_from([40, 254, 255, 300, 600]), st.sampled_from(["list", "dict"])
)
HOSTILE_VALUES = HUGE_NUMBERS | TRICKY_STRINGS | RANDOM_JSON | DEEP_NESTING


@cache
def load_schema(version: str, action: str) -> JsonSchema:
    """The official request schema of ``action`` in OCPP ``version``."""
    directory, suffix = _SCHEMA_DIRS[version]
    path = files("ocpp") / directory / "schemas" / f"{action}{suffix}.json"
    schema: JsonSchema = json.loads(path.read_text(encoding="utf-8"))
    return schema


def to_json(value: Any) -> str:
    """JSON text of anything a station might send (big ints, deep nesting, surrogates)."""
    return json.dumps(value, ensure_ascii=True, allow_nan=False)


def _resolve(schema: JsonSchema, root: JsonSchema) -> JsonSchema:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = root["definitions"][name]
    return schema


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _strategy(schema: JsonSchema, root: JsonSchema) -> st.SearchStrategy[Any]:
    schema = _resolve(schema, root)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: _strategy(v, root) for k, v in properties.items() if k in required},
            optional={k: _strategy(v, root) for k, v in properties.items() if k not in required},
        )
    if kind == "array":
        low = schema.get("minItems", 0)
        high = max(low, min(schema.get("maxItems", 3), 3))
        return st.lists(_strategy(schema.get("items", {}), root), min_size=low, max_size=high)
    if kind == "string":
        if schema.get("format") == "date-time":
            return st.datetimes(
                min_value=datetime(2020, 1, 1),
                max_value=datetime(2030, 1, 1),
                timezones=st.just(UTC),
            ).map(_iso)
        high = min(schema.get("maxLength", 20), 20)
        return st.text(
            st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=high
        )
    if kind == "integer":
        return st.integers(schema.get("minimum", 0), min(schema.get("maximum", 1000), 1000))
    if kind == "number":
        if "multipleOf" in schema:
            return st.integers(0, 10_000).map(lambda n: n / 10)
        return st.floats(-1e6, 1e6, allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    return JSON_LEAVES


def valid_payloads(schema: JsonSchema) -> st.SearchStrategy[dict[str, Any]]:
    """Payloads the schema accepts (optional fields sometimes present)."""
    return _strategy(schema, schema)


def _paths(value: Any, prefix: Path = ()) -> list[Path]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _parent(payload: Any, path: Path) -> Any:
    node = payload
    for step in path[:-1]:
        node = node[step]
    return node


@st.composite
def bent_payloads(draw: st.DrawFn, schema: JsonSchema) -> Any:
    """A valid payload with one place bent: replaced, deleted, or a key added."""
    payload = draw(valid_payloads(schema))
    path = draw(st.sampled_from(_paths(payload)))
    how = draw(st.sampled_from(["replace", "delete", "add"]))
    if not path:  # the payload itself
        if how == "replace":
            return draw(HOSTILE_VALUES)
        if how == "add":
            payload[draw(st.text(max_size=12))] = draw(HOSTILE_VALUES)
        return payload
    parent = _parent(payload, path)
    if how == "replace":
        parent[path[-1]] = draw(HOSTILE_VALUES)
    elif how == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=12))] = draw(HOSTILE_VALUES)
    else:
        parent.append(draw(HOSTILE_VALUES))
    return payload
