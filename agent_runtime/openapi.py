"""The OpenAPI 3.1 document, generated from the endpoint registry and the Pydantic models.

Nothing here is written by hand per endpoint: paths come from ``agent_runtime.api.ENDPOINTS``,
schemas from pydantic's JSON Schema (draft 2020-12, which OpenAPI 3.1 uses as is), and the
error responses from the error classes in ``agent_runtime.errors``.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.urls import Resolver404, resolve
from pydantic import BaseModel, TypeAdapter

from agent_runtime.api import ENDPOINTS, EXTRA_COMPONENTS, Body, Endpoint
from agent_runtime.errors import ErrorBody, client_error_codes

REF = "#/components/schemas/{model}"
SECURITY_SCHEME = "internalAuth"
_PARAM = re.compile(r"\{(\w+)\}")

# The component name of each error status's response.
ERROR_RESPONSE_NAMES = {
    400: "BadRequest",
    401: "Unauthorized",
    404: "NotFound",
    405: "MethodNotAllowed",
    408: "RequestTimeout",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "InvalidRequest",
    500: "InternalError",
    503: "Unavailable",
}
ERROR_DESCRIPTIONS = {
    400: "The request is malformed (e.g. an unknown Host).",
    401: "X-Internal-Auth is missing or wrong.",
    404: "Unknown session or path.",
    405: "Wrong method; `Allow` lists the right ones.",
    408: "The body arrived too slowly (`AGENT_RUNTIME__REQUEST_BODY_IDLE_TIMEOUT_SECONDS`, "
    "`AGENT_RUNTIME__REQUEST_BODY_TIMEOUT_SECONDS`).",
    409: "A turn is already running in this session, a tool call already has its result, or "
    "a `message_id` was already used with a different content.",
    413: "The body or the content is over the configured limit.",
    415: "The body is not `application/json`.",
    422: "Malformed JSON, or missing or invalid fields (each listed in `errors`).",
    500: "Internal error.",
    503: "The database cannot be reached.",
}
REQUEST_ID_HEADER = {
    "description": "The request's id: the client's `X-Request-ID` when it is 1-128 characters "
    "of `A-Za-z0-9._:-`, otherwise a new one. Every log line of the request carries it.",
    "required": True,
    "schema": {"type": "string"},
}


class _Schemas:
    """Collects component schemas; a name is only ever given to one schema."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def add(self, name: str, schema: dict[str, Any]) -> None:
        existing = self.components.setdefault(name, schema)
        if existing != schema:
            raise ValueError(f"two different schemas are both named {name!r}")

    def ref(self, tp: Any, *, name: str | None = None, mode: str = "validation") -> dict[str, Any]:
        """A ``$ref`` to ``tp``'s schema (registered as a component), or the schema inline."""
        schema = TypeAdapter(tp).json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
        for def_name, definition in schema.pop("$defs", {}).items():
            self.add(def_name, definition)
        if set(schema) == {"$ref"}:
            return schema
        if name is None and isinstance(tp, type) and issubclass(tp, BaseModel):
            name = tp.__name__
        if name is None:
            return schema
        self.add(name, schema)
        return {"$ref": REF.format(model=name)}


def is_routed(endpoint: Endpoint) -> bool:
    """Whether the URLconf serves the endpoint's path (not the catch-all 404 view)."""
    sample = _PARAM.sub("x", endpoint.path)
    try:
        match = resolve(sample)
    except Resolver404:
        return False
    return match.url_name != "not-found"


def _parameters(schemas: _Schemas, model: type[BaseModel] | None, where: str) -> list[dict]:
    """One parameter per field of ``model`` (path or query)."""
    if model is None:
        return []
    schema = model.model_json_schema(ref_template=REF)
    for def_name, definition in schema.pop("$defs", {}).items():
        schemas.add(def_name, definition)
    required = set(schema.get("required", ()))
    parameters = []
    for name, property_schema in schema["properties"].items():
        # A parameter is absent or a string, never null: drop pydantic's "or null" branch.
        branches = property_schema.get("anyOf")
        if branches and {"type": "null"} in branches and len(branches) == 2:
            [kept] = [b for b in branches if b != {"type": "null"}]
            property_schema = {
                **kept,
                **{k: v for k, v in property_schema.items() if k != "anyOf"},
            }
            if property_schema.get("default", ...) is None:
                del property_schema["default"]
        parameter: dict[str, Any] = {
            "name": name,
            "in": where,
            "required": where == "path" or name in required,
            "schema": property_schema,
        }
        if "description" in property_schema:
            parameter["description"] = property_schema["description"]
        parameters.append(parameter)
    return parameters


def _body(schemas: _Schemas, body: Body) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": body.description,
        "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
    }
    if body.model is None:
        return response
    if body.media_type == "text/event-stream":
        content = {
            "schema": _sse_event(schemas.ref(body.model, name=body.name, mode="serialization"))
        }
    else:
        content = {"schema": schemas.ref(body.model, name=body.name, mode="serialization")}
    response["content"] = {body.media_type: content}
    return response


def _sse_event(data_schema: dict[str, Any]) -> dict[str, Any]:
    """One Server-Sent Event: ``id``, and ``data`` holding JSON for ``data_schema`` or the final
    ``[DONE]``. (OpenAPI 3.1 has no keyword for the items of a stream; as 3.2's ``itemSchema``
    does, the schema here describes one event.)"""
    return {
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "event": {"type": "string"},
            "data": {
                "oneOf": [
                    {"const": "[DONE]"},
                    {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": data_schema,
                    },
                ]
            },
        },
        "required": ["data"],
    }


def _error_responses(schemas: _Schemas) -> dict[str, Any]:
    error_ref = schemas.ref(ErrorBody, mode="serialization")
    responses = {}
    for status, codes in client_error_codes().items():
        responses[ERROR_RESPONSE_NAMES[status]] = {
            "description": ERROR_DESCRIPTIONS[status],
            "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
            "content": {
                "application/json": {
                    "schema": {
                        "allOf": [error_ref],
                        "properties": {"code": {"enum": codes}},
                    }
                }
            },
        }
    return responses


def _operation(schemas: _Schemas, endpoint: Endpoint) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": endpoint.operation_id,
        "summary": endpoint.summary,
    }
    if endpoint.description:
        operation["description"] = endpoint.description
    if endpoint.tags:
        operation["tags"] = list(endpoint.tags)
    parameters = _parameters(schemas, endpoint.path_params, "path") + _parameters(
        schemas, endpoint.query, "query"
    )
    if parameters:
        operation["parameters"] = parameters
    if endpoint.request is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": schemas.ref(endpoint.request, name=endpoint.request_name)
                }
            },
        }
    responses = {str(status): _body(schemas, body) for status, body in endpoint.responses.items()}
    errors = set(endpoint.errors) | (set() if endpoint.public else {401})
    for status in sorted(errors):
        responses[str(status)] = {"$ref": f"#/components/responses/{ERROR_RESPONSE_NAMES[status]}"}
    operation["responses"] = dict(sorted(responses.items()))
    if endpoint.public:
        operation["security"] = []
    return operation


def _limits(document: dict[str, Any]) -> None:
    """Fill in the limits that come from settings (``content``'s length)."""
    user_message = document["components"]["schemas"].get("UserMessageRequest")
    if user_message is not None:
        user_message["properties"]["content"]["maxLength"] = settings.MAX_MESSAGE_CHARS


def openapi_document(endpoints: list[Endpoint] | None = None) -> dict[str, Any]:
    """The whole document; endpoints whose path has no route yet are left out."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in ENDPOINTS if endpoints is None else endpoints:
        if not is_routed(endpoint):
            continue
        paths.setdefault(endpoint.path, {})[endpoint.method] = _operation(schemas, endpoint)
    error_responses = _error_responses(schemas)
    for name, tp in EXTRA_COMPONENTS.items():
        schemas.ref(tp, name=name, mode="serialization")
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "Agent Runtime",
            "version": settings.VERSION,
            "description": (
                "Relays OpenAI-compatible model streams as Server-Sent Events and stores each "
                "conversation. Every non-2xx response is an `ErrorBody`. Send `X-Request-ID` "
                "to choose a request's id (it is echoed back)."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "responses": error_responses,
            "headers": {"X-Request-ID": REQUEST_ID_HEADER},
            "securitySchemes": {
                SECURITY_SCHEME: {"type": "apiKey", "in": "header", "name": "X-Internal-Auth"}
            },
        },
        "security": [{SECURITY_SCHEME: []}],
    }
    _limits(document)
    return document
