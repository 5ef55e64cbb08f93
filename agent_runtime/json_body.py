"""Parsing a JSON request body into a Pydantic model, with the runtime's error codes."""

from typing import Any, TypeVar

from django.conf import settings
from django.http import HttpRequest
from pydantic import BaseModel, TypeAdapter, ValidationError

from agent_runtime.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType

T = TypeVar("T")


#: The tags of the request unions, which pydantic puts in an error's location.
_UNION_TAGS = frozenset(
    (
        "user_message",
        "tool_result",
        "tool_approval",
        "regenerate",
        "envelope",
        "hitl_decision",
        "switch_agent",
        "resolved",
        "cancelled",
    )
)


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors as ``[{"field", "message", "type"}]``, without the union tags."""
    errors = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [str(part) for part in error["loc"] if part not in _UNION_TAGS]
        if error["type"] == "invalid_type":  # a union's discriminator: the type field
            loc.append("type")
        field = ".".join(loc) or "body"
        errors.append({"field": field, "message": error["msg"], "type": error["type"]})
    return errors


def parse_json_body(request: HttpRequest, adapter: TypeAdapter[T]) -> T:
    """Validate ``request.body`` as JSON for ``adapter``: 415, 413 or 422 when it is not."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType()
    length = request.META.get("CONTENT_LENGTH")  # request.headers' value, read more cheaply
    if length is not None and length.isdigit() and int(length) > settings.MAX_BODY_BYTES:
        raise PayloadTooLarge()
    return parse_json_bytes(request.body, adapter)  # RequestDataTooBig past the upload limit


def parse_json_bytes(body: bytes, adapter: TypeAdapter[T]) -> T:
    """Validate a JSON body for ``adapter``: 413 or 422 when it is not acceptable."""
    if len(body) > settings.MAX_BODY_BYTES:
        raise PayloadTooLarge()
    try:
        parsed = adapter.validate_json(body)
    except ValidationError as exc:
        errors = validation_errors(exc)
        if any(e["type"] == "json_invalid" for e in errors):
            raise InvalidRequest("Body is not valid JSON.", errors=errors) from None
        raise InvalidRequest("Invalid request body.", errors=errors) from None
    # PostgreSQL cannot store U+0000 in text or jsonb: refuse it (422) on every database, before
    # anything is written. Only bodies that spell the escape need the walk.
    if b"\\u0000" in body:
        field = _nul_field(parsed.model_dump() if isinstance(parsed, BaseModel) else parsed)
        if field is not None:
            raise InvalidRequest(
                "Invalid request body.",
                errors=[
                    {
                        "field": field or "body",
                        "message": "must not contain the NUL character (U+0000)",
                        "type": "string_nul_character",
                    }
                ],
            )
    return parsed


def _nul_field(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string (or key) holding U+0000, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return here
            found = _nul_field(item, here)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _nul_field(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None
