"""The OpenAPI 3.1 document of the REST API, generated from its route table
and the typed models of csms.services.operator: nothing in it is written
twice. Served at /api/v1/openapi.json and shown at /api/v1/docs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from csms.services.operator.resources import ErrorBody

Schema = dict[str, Any]
Answer = tuple[str, type[BaseModel] | Schema | None]
"""A response: its description and its body (a model, a raw schema, or none)."""

REF = "#/components/schemas/{model}"
ERROR_ANSWERS: dict[int, str] = {
    401: "missing or wrong bearer token",
    403: "no CSMS_API_TOKEN configured and the client is not on loopback",
    503: "the database is unavailable",
}


@dataclass(frozen=True, slots=True)
class Route:
    """One operation: where it is, what it takes and what it answers."""

    method: Literal["get", "post", "put", "delete"]
    path: str
    handler: str  # the Api method that serves it
    summary: str
    description: str = ""
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    answers: dict[int, Answer] = field(default_factory=dict)
    content_type: str = "application/json"  # of the 200 answer
    location: bool = False  # a Location header names the command's record

    @property
    def operation_id(self) -> str:
        head, *rest = self.handler.split("_")
        return head + "".join(word.title() for word in rest)

    @property
    def path_names(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


def openapi(
    routes: list[Route], *, path_parameters: dict[str, tuple[str, Schema]], info: Schema
) -> Schema:
    """The document for ``routes``; ``path_parameters`` describe each ``{name}``."""
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
    for route in routes:
        if route.body is not None:
            wanted.append((route.body, "validation"))
        if route.query is not None:
            wanted.append((route.query, "validation"))
        for _, model in route.answers.values():
            if isinstance(model, type):
                wanted.append((model, "serialization"))
    refs, defs = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF)
    schemas: dict[str, Schema] = defs.get("$defs", {})
    queries = {r.query for r in routes if r.query is not None}
    parameters = {q: _query_parameters(schemas[q.__name__]) for q in queries}
    for query in queries:
        schemas.pop(query.__name__)

    def body_of(model: type[BaseModel] | Schema, mode: JsonSchemaMode) -> Schema:
        schema = refs[(model, mode)] if isinstance(model, type) else model
        return {"schema": schema}

    paths: dict[str, dict[str, Schema]] = {}
    for route in routes:
        operation: Schema = {"summary": route.summary, "operationId": route.operation_id}
        if route.description:
            operation["description"] = route.description
        params = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": path_parameters[name][1],
                "description": path_parameters[name][0],
            }
            for name in route.path_names
        ]
        if route.query is not None:
            params.extend(parameters[route.query])
        if params:
            operation["parameters"] = params
        if route.body is not None:
            content = {"application/json": body_of(route.body, "validation")}
            operation["requestBody"] = {"required": True, "content": content}
        responses: Schema = {}
        for status, (description, model) in sorted(
            {**route.answers, **{s: (d, ErrorBody) for s, d in ERROR_ANSWERS.items()}}.items()
        ):
            answer: Schema = {"description": description}
            if model is not None:
                kind = route.content_type if status < 300 else "application/json"
                answer["content"] = {kind: body_of(model, "serialization")}
            if route.location and 200 <= status < 300:
                answer["headers"] = {"Location": {"schema": {"type": "string"}}}
            responses[str(status)] = answer
        operation["responses"] = responses
        paths.setdefault(route.path, {})[route.method] = operation
    return {
        "openapi": "3.1.0",
        "info": info,
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        },
    }


def _query_parameters(model_schema: Schema) -> list[Schema]:
    """A query model's fields as OpenAPI parameters (a query has no null)."""
    required = set(model_schema.get("required", ()))
    out = []
    for name, prop in model_schema.get("properties", {}).items():
        schema = {k: v for k, v in prop.items() if k not in ("title", "description")}
        branches = [b for b in schema.pop("anyOf", []) if b != {"type": "null"}]
        if len(branches) == 1:
            schema.update(branches[0])
        elif branches:
            schema["anyOf"] = branches
        if schema.get("default", 0) is None:
            del schema["default"]
        parameter: Schema = {"name": name, "in": "query", "required": name in required}
        parameter["schema"] = schema
        if "description" in prop:
            parameter["description"] = prop["description"]
        out.append(parameter)
    return out
