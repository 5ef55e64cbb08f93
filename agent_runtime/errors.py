"""The runtime's one error format: an exception with a ``code`` and an HTTP status.

Every non-2xx response is ``{"detail": ..., "code": ..., ["errors": [...]]}``; the mapping
to JSON lives in :func:`error_response` and nowhere else.
"""

import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import JsonResponse
from pydantic import BaseModel, Field

logger = logging.getLogger(__name__)


class AgentRuntimeError(Exception):
    """Base of every error the runtime reports to a client."""

    code = "internal_error"
    status = 500
    detail = "Internal error."

    def __init__(self, detail: str | None = None, *, errors: list[dict[str, Any]] | None = None):
        self.detail = detail or self.detail
        self.errors = errors
        super().__init__(self.detail)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"detail": self.detail, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


class BadRequest(AgentRuntimeError):
    code, status, detail = "bad_request", 400, "Bad request."


class Unauthorized(AgentRuntimeError):
    code, status, detail = "unauthorized", 401, "Missing or invalid X-Internal-Auth header."


class NotFound(AgentRuntimeError):
    code, status, detail = "not_found", 404, "Not found."


class MethodNotAllowed(AgentRuntimeError):
    code, status, detail = "method_not_allowed", 405, "Method not allowed."


class Conflict(AgentRuntimeError):
    code, status, detail = "conflict", 409, "Conflict."


class SessionBusy(Conflict):
    code, detail = "session_busy", "A turn is already running in this session."


class ToolCallNotFound(NotFound):
    code, detail = "tool_call_not_found", "No pending tool call has this call_id."


class ToolCallAnswered(Conflict):
    code, detail = "tool_call_answered", "This tool call already has a result."


class IdempotencyConflict(Conflict):
    """A ``message_id`` already used for a different message; replaying its answer would lie."""

    code, detail = (
        "idempotency_conflict",
        "This message_id was already used with a different content or type.",
    )


class NothingToRegenerate(Conflict):
    code, detail = "nothing_to_regenerate", "The session has no user message to answer again."


class TurnStillRunning(SessionBusy):
    """A retry of a ``message_id`` whose turn has not ended; waiting would not help."""

    detail = "The turn for this message_id is still running."


class PayloadTooLarge(AgentRuntimeError):
    code, status, detail = "payload_too_large", 413, "Request body is too large."


class RequestTimeout(AgentRuntimeError):
    code, status, detail = "request_timeout", 408, "The request body arrived too slowly."


class UnsupportedMediaType(AgentRuntimeError):
    code, status, detail = "unsupported_media_type", 415, "Body must be application/json."


class InvalidRequest(AgentRuntimeError):
    code, status, detail = "invalid_request", 422, "Invalid request."


def nothing_to_answer(detail: str) -> InvalidRequest:
    """A chat posted to a frontend protocol's route holds nothing new for the runtime: a valid
    body by its schema (which cannot say what is new), refused with ``nothing_to_answer``."""
    return InvalidRequest(
        f"Nothing new to answer: {detail}",
        errors=[{"field": "messages", "message": detail, "type": "nothing_to_answer"}],
    )


class Unavailable(AgentRuntimeError):
    code, status, detail = "unavailable", 503, "The database cannot be reached."


class BrokerUnavailable(Unavailable):
    detail = "The event broker cannot be reached."


def error_response(error: AgentRuntimeError) -> JsonResponse:
    response = JsonResponse(error.as_dict(), status=error.status)
    # Set here, not only by CommonMiddleware: a refusal by an outer middleware (the key
    # check's 401) or from CommonMiddleware's own host check (400) never passes through it.
    response["Content-Length"] = str(len(response.content))
    return response


def error_body(error: AgentRuntimeError) -> bytes:
    """The bytes of :func:`error_response`'s body, for responses sent without Django."""
    return error_response(error).content


def error_for_exception(exception: Exception) -> "AgentRuntimeError | None":
    """The error a client is told of for an exception a request raised; None: a bug (500)."""
    if isinstance(exception, AgentRuntimeError):
        return exception
    if isinstance(exception, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exception, OperationalError | InterfaceError):
        logger.warning("database unavailable: %s", type(exception).__name__)
        return Unavailable()
    if isinstance(exception, DatabaseError):
        logger.exception("database error")
    return None


def error_for_status(status: int) -> "AgentRuntimeError | None":
    """The generic error of an HTTP status (``bad_request`` for 400...); None for a status
    the runtime has no error of its own for."""
    if status >= 500:
        return AgentRuntimeError()
    generic = {
        cls.status: cls
        for cls in (BadRequest, Unauthorized, NotFound, MethodNotAllowed, PayloadTooLarge)
    }
    return generic[status]() if status in generic else None


class FieldError(BaseModel):
    """One invalid field of a rejected request."""

    field: str = Field(description="Dotted path of the field, or `body`.")
    message: str
    type: str = Field(description="Pydantic's error type, e.g. `string_pattern_mismatch`.")


class ErrorBody(BaseModel):
    """The body of every non-2xx response (the OpenAPI document is generated from this)."""

    detail: str = Field(description="For a human.")
    code: str = Field(description="For a program; stable.")
    errors: list[FieldError] | None = Field(
        default=None, description="Each invalid field; validation failures only."
    )


def client_error_codes() -> dict[int, list[str]]:
    """The codes each HTTP status can carry, from the error classes (upstream errors excluded:
    they reach a client as an SSE ``error`` event, never as a status)."""
    codes: dict[int, list[str]] = {}
    pending = [AgentRuntimeError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if issubclass(cls, UpstreamError):
            continue
        if cls.code not in codes.setdefault(cls.status, []):
            codes[cls.status].append(cls.code)
    return {status: sorted(values) for status, values in sorted(codes.items())}


class UpstreamError(AgentRuntimeError):
    """The language model server failed; reported in an ``error`` event once streaming began."""

    code, status, detail = "upstream_error", 502, "The language model server failed."
    #: Whether trying again may help (only ever done before the first token).
    retryable = False

    def __init__(self, detail: str | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class UpstreamUnavailable(UpstreamError):
    code, detail, retryable = (
        "upstream_unavailable",
        "The language model server is unreachable.",
        True,
    )


class UpstreamTimeout(UpstreamError):
    code, detail = "upstream_timeout", "The language model server stopped responding."


class UpstreamRateLimited(UpstreamError):
    code, detail, retryable = (
        "upstream_rate_limited",
        "The language model server is rate limiting.",
        True,
    )


class UpstreamHTTPError(UpstreamError):
    code = "upstream_http_error"

    def __init__(self, status_code: int, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.status_code = status_code
        self.retryable = status_code >= 500


class UpstreamProtocolError(UpstreamError):
    code, detail = "upstream_protocol_error", "The language model server sent a malformed stream."


class UpstreamDisconnected(UpstreamError):
    code, detail = "upstream_disconnected", "The language model server closed the stream early."
