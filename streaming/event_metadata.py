"""The shapes of ``StreamEvent.metadata``, one per kind of event (``docs/api.md``).

``StreamEvent.metadata`` stays a plain dict on the hot path; these models document each shape
in the OpenAPI document (as components) and may be used to build the dicts.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Metadata(BaseModel):
    # New optional fields are compatible extensions of the contract.
    model_config = ConfigDict(extra="allow")


class Usage(_Metadata):
    """Token counts as the model server reported them (absent when it reported none)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class AssistantFinalMetadata(_Metadata):
    """The last event of a completed turn (``type: assistant_message``, ``is_final: true``)."""

    finish_reason: str | None = None
    usage: Usage | dict[str, Any] = Field(default_factory=dict)
    replayed: bool | None = Field(
        default=None, description="True when a repeated message_id replays a stored answer."
    )


class ToolCallMetadata(_Metadata):
    """The model called a tool (``type: tool_call``)."""

    call_id: str
    tool_name: str
    arguments: Any = Field(description="The arguments the model sent, parsed when valid JSON.")
    executor: Literal["server", "client"]


class PendingToolCallsMetadata(_Metadata):
    """The turn ended waiting for client-side tool results (``type: tool_call``, final)."""

    pending_call_ids: list[str]


class ToolResultMetadata(_Metadata):
    """A server-side tool finished (``type: tool_result``): ``result`` or ``error``."""

    call_id: str
    tool_name: str
    result: Any = None
    error: str | None = None


class ErrorEventMetadata(_Metadata):
    """The turn failed after streaming began (``type: error``, final)."""

    code: str = Field(description="e.g. upstream_unavailable, upstream_timeout")
    message: str


StreamEventMetadata = (
    AssistantFinalMetadata
    | ToolCallMetadata
    | PendingToolCallsMetadata
    | ToolResultMetadata
    | ErrorEventMetadata
)
