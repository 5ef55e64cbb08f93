"""Tool arguments described by a JSON schema instead of a Pydantic model (MCP tools).

An instance stands where a tool's Pydantic arguments model would: ``model_json_schema()`` gives
the schema offered to the model, and ``model_validate_json()`` checks a call's raw arguments
against it, raising pydantic's ``ValidationError`` like a model would, so that an invalid call
is the same ``invalid_arguments`` tool error whatever kind of tool it was made to.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
from jsonschema import exceptions as jsonschema_exceptions
from jsonschema import validators
from pydantic import ValidationError
from pydantic_core import PydanticCustomError

#: A schema that accepts any object (a server that sends no usable schema).
ANY_OBJECT: dict[str, Any] = {"type": "object"}


class SchemaArguments:
    """Validates arguments against a JSON schema; the validated value is the decoded object."""

    def __init__(self, schema: dict[str, Any] | None, *, title: str = "arguments") -> None:
        schema = copy.deepcopy(schema) if schema else dict(ANY_OBJECT)
        schema.setdefault("type", "object")
        try:
            validator_class = validators.validator_for(schema)
            validator_class.check_schema(schema)
        except jsonschema_exceptions.SchemaError as exc:
            raise ValueError(f"invalid JSON schema: {exc.message}") from exc
        self.schema = schema
        self.title = title
        self._validator = validator_class(schema)

    def model_json_schema(self) -> dict[str, Any]:
        return copy.deepcopy(self.schema)

    def model_validate_json(self, raw: str | bytes) -> dict[str, Any]:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise self._error([((), "json_invalid", f"Invalid JSON: {exc}", raw)]) from exc
        if not isinstance(value, dict):
            raise self._error([((), "object_type", "Arguments must be a JSON object", value)])
        problems = sorted(self._validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        if problems:
            raise self._error(
                [(tuple(e.absolute_path), "json_schema", e.message, e.instance) for e in problems]
            )
        return value

    def _error(self, problems: list[tuple[tuple[Any, ...], str, str, Any]]) -> ValidationError:
        return ValidationError.from_exception_data(
            self.title,
            [
                {
                    # The message is data, not a format string: braces must stay as they are.
                    "type": PydanticCustomError(kind, "{message}", {"message": message}),
                    "loc": loc,
                    "input": value,
                }
                for loc, kind, message, value in problems
            ],
        )
