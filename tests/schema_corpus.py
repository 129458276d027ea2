"""A corpus of payloads for every official OCPP schema: for each, a full and a
minimal valid instance, and mutations of both at every place in them (wrong
types, values at and past each bound, malformed times, missing and unknown
members). Deterministic; the validators' verdicts on it are compared in
tests/unit/test_schema_verdicts.py."""

from __future__ import annotations

import copy
import importlib.resources
from collections.abc import Iterator
from typing import Any

import orjson

Json = Any
Path = tuple[str | int, ...]

VERSION_DIRS = {"1.6": "v16", "2.0.1": "v201"}

# Values every place is tried with: each JSON type, integers and floats at and
# past the int32 range, floats that are and are not whole, strings that are
# empty, long, or times that are nearly right.
REPLACEMENTS: tuple[Json, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1.0,
    0.3,
    2**31 - 1,
    2**31,
    -(2**31) - 1,
    1e21,
    "",
    "x" * 2001,
    "1",
    "2026-11-26T12:00:00",
    "2026-11-26t12:00:00z",
    "2026-02-30T12:00:00Z",
    "2026-11-26T12:00:00.123+05:30",
    "26.11.2026 12:00",
    "https://example.com/a b",
    [],
    {},
)


def schema_names(version: str) -> list[str]:
    folder = importlib.resources.files("ocpp") / VERSION_DIRS[version] / "schemas"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def load_schema(version: str, name: str) -> dict[str, Json]:
    folder = importlib.resources.files("ocpp") / VERSION_DIRS[version] / "schemas"
    schema: dict[str, Json] = orjson.loads((folder / f"{name}.json").read_bytes())
    return schema


def valid_examples(schema: dict[str, Json]) -> list[Json]:
    """A full instance of ``schema`` (every property) and a minimal one (the required)."""
    return [_example(schema, schema, full) for full in (True, False)]


def payloads(schema: dict[str, Json]) -> Iterator[Json]:
    """The valid instances of ``schema`` and every mutation of them."""
    for valid in valid_examples(schema):
        yield valid
        for path in list(_paths(valid)):
            for value in _replacements(schema, path):
                yield _with(valid, path, value)
            if path and isinstance(path[-1], str):
                yield _without(valid, path)
            node = _get(valid, path)
            if isinstance(node, dict):
                yield _with(valid, (*path, "unknownMember"), 1)
            if isinstance(node, list) and node:
                yield _with(valid, path, node * 60)


def _example(node: dict[str, Json], root: dict[str, Json], full: bool) -> Json:
    node = _resolve(node, root)
    kind = node.get("type")
    if "enum" in node:
        return node["enum"][-1 if full else 0]
    if kind == "object":
        names = node.get("properties", {}) if full else node.get("required", [])
        return {
            name: _example(node["properties"][name], root, full)
            for name in names
            if name in node.get("properties", {})
        }
    if kind == "array":
        count = max(node.get("minItems", 1), 1)
        return [_example(node.get("items", {}), root, full) for _ in range(count)]
    if kind == "string":
        if node.get("format") == "date-time":
            return "2026-11-26T12:00:00Z"
        if node.get("format") == "uri":
            return "https://example.com/x"
        return "a" * min(node.get("maxLength", 5), 5)
    if kind == "integer":
        return node.get("minimum", 1)
    if kind == "number":
        return round(node.get("multipleOf", 0.5) * 3, 10)  # 0.1 * 3 is 0.30000000000000004
    if kind == "boolean":
        return True
    return "anything"


def _resolve(node: dict[str, Json], root: dict[str, Json]) -> dict[str, Json]:
    while "$ref" in node:
        target: Json = root
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _replacements(schema: dict[str, Json], path: Path) -> Iterator[Json]:
    yield from REPLACEMENTS
    node = _schema_at(schema, path)
    if node is None:
        return
    for enum_value in node.get("enum", ())[:2]:
        yield enum_value.lower()
        yield enum_value + " "
    if "maxLength" in node:
        yield "é" * node["maxLength"]
        yield "a" * (node["maxLength"] + 1)
    for bound, step in (("minimum", -1), ("maximum", 1)):
        if bound in node:
            yield node[bound]
            yield node[bound] + step
            yield float(node[bound])
    if "multipleOf" in node:
        yield round(node["multipleOf"] * 214, 10)  # 21.4 for 0.1: float division says no
        yield node["multipleOf"] * 7
        yield node["multipleOf"] / 2


def _schema_at(schema: dict[str, Json], path: Path) -> dict[str, Json] | None:
    node = _resolve(schema, schema)
    for part in path:
        if isinstance(part, int):
            node = _resolve(node.get("items", {}), schema)
        else:
            properties = node.get("properties", {})
            if part not in properties:
                return None
            node = _resolve(properties[part], schema)
    return node


def _paths(value: Json, path: Path = ()) -> Iterator[Path]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list) and value:
        yield from _paths(value[0], (*path, 0))


def _get(value: Json, path: Path) -> Json:
    for part in path:
        value = value[part]
    return value


def _with(value: Json, path: Path, replacement: Json) -> Json:
    if not path:
        return copy.deepcopy(replacement)
    changed = copy.deepcopy(value)
    _get(changed, path[:-1])[path[-1]] = replacement
    return changed


def _without(value: Json, path: Path) -> Json:
    changed = copy.deepcopy(value)
    del _get(changed, path[:-1])[path[-1]]
    return changed
