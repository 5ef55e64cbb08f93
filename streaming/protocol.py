"""The seed wire format's request bodies and SSE events as Pydantic models (docs/api.md)."""

from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    TypeAdapter,
    model_validator,
)

# Also the URL converter of session ids in paths (agent_runtime.converters).
SESSION_ID_PATTERN = r"[A-Za-z0-9\-_.:@]{1,128}"
SessionId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=rf"^{SESSION_ID_PATTERN}$")
]
ClientKey = Annotated[str, StringConstraints(min_length=1, max_length=128)]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


# The pattern only documents the rule in the OpenAPI document (at least one non-space).
NonBlank = Annotated[str, AfterValidator(_not_blank), Field(json_schema_extra={"pattern": r"\S"})]

EventType = Literal["assistant_message", "tool_call", "tool_result", "error"]
OnDisconnect = Literal["cancel", "continue"]


class _StreamRequestBase(BaseModel):
    # Unknown fields are ignored (docs/api.md); the parsed request is immutable.
    model_config = ConfigDict(extra="ignore", frozen=True)

    session_id: SessionId
    role: Literal["user"] = "user"
    message_id: ClientKey | None = None
    on_disconnect: OnDisconnect | None = Field(
        default=None,
        description="What the client's leaving does to the turn: `cancel` stops it, "
        "`continue` lets it run to its end. Default: AGENT_RUNTIME__ON_DISCONNECT.",
    )


class UserMessageRequest(_StreamRequestBase):
    type: Literal["user_message"] = "user_message"
    content: NonBlank


class ToolResultRequest(_StreamRequestBase):
    """A client-side tool's outcome: ``result`` (any JSON) or ``error`` (a string)."""

    type: Literal["tool_result"]
    call_id: ClientKey
    result: Any = None
    error: str | None = None

    @model_validator(mode="after")
    def _one_outcome(self) -> "ToolResultRequest":
        if self.error is not None and self.result is not None:
            raise ValueError("send either result or error, not both")
        return self


#: The longest ``reason`` a tool approval decision may give, in characters (every wire format).
MAX_REASON_CHARS = 10_000


class ToolApprovalRequest(_StreamRequestBase):
    """The user's decision on a call that waits for approval (docs/api.md, Tool approval)."""

    type: Literal["tool_approval"]
    call_id: ClientKey
    approved: bool = Field(strict=True)
    reason: str | None = Field(default=None, max_length=MAX_REASON_CHARS)


class RegenerateRequest(_StreamRequestBase):
    """Answer the session's last user message again; the earlier answer is superseded."""

    type: Literal["regenerate"]


def request_kind(value: Any) -> str:
    """The flat request's ``type`` (``user_message`` when absent), for the discriminator."""
    kind = (
        value.get("type", "user_message")
        if isinstance(value, dict)
        else getattr(value, "type", None)
    )
    return kind if isinstance(kind, str) else "invalid"


StreamRequest = Annotated[
    Annotated[UserMessageRequest, Tag("user_message")]
    | Annotated[ToolResultRequest, Tag("tool_result")]
    | Annotated[ToolApprovalRequest, Tag("tool_approval")]
    | Annotated[RegenerateRequest, Tag("regenerate")],
    Discriminator(
        request_kind,
        custom_error_type="invalid_type",
        custom_error_message=(
            "type must be 'user_message', 'tool_result', 'tool_approval' or 'regenerate'"
        ),
    ),
]
AnyStreamRequest = UserMessageRequest | ToolResultRequest | ToolApprovalRequest | RegenerateRequest
stream_request_adapter: TypeAdapter[AnyStreamRequest] = TypeAdapter(StreamRequest)


class StreamEvent(BaseModel):
    """One SSE ``data:`` payload."""

    model_config = ConfigDict(frozen=True)

    token: str
    is_final: bool
    type: EventType
    metadata: dict[str, Any] | None = Field(default=None)

    def to_json(self) -> bytes:
        body: dict[str, Any] = {"token": self.token, "is_final": self.is_final, "type": self.type}
        if self.metadata is not None:
            body["metadata"] = self.metadata
        return orjson.dumps(body)


class ResumeQuery(BaseModel):
    """``GET /agent/sessions/{session_id}/stream?after=``; ``Last-Event-ID`` wins over it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    after: int | None = Field(
        default=None, ge=0, description="The id of the last event seen; absent: from the start."
    )


class CancelResult(BaseModel):
    """``POST /agent/sessions/{session_id}/cancel`` ."""

    session_id: str
    cancelled: bool = Field(description="False when no turn was running.")
    turn_id: str | None = Field(description="The turn asked to stop, if any.")
