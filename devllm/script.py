"""What a test can ask the development LLM to answer next (``POST /__dev__/script``)."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ScriptedToolCall(BaseModel):
    name: str
    #: A JSON string is sent as is (it may be invalid on purpose); anything else is dumped.
    arguments: str | dict[str, Any] = Field(default_factory=dict)
    id: str | None = None
    #: How many pieces the arguments string is streamed in.
    fragments: int = Field(default=1, ge=1, le=1000)


class Fault(BaseModel):
    """A failure to act out instead of (or in the middle of) a reply.

    - ``status``: answer HTTP ``status`` (with ``Retry-After`` if given) and no stream.
    - ``drop``: stream ``after_tokens`` tokens, then cut the connection without ``[DONE]``.
    - ``malformed``: stream ``after_tokens`` tokens, then a chunk that is not JSON.
    - ``stall``: stream ``after_tokens`` tokens, then send nothing for ``stall_ms``.
    """

    kind: Literal["status", "drop", "malformed", "stall"]
    status: int = 500
    retry_after: str | None = None
    after_tokens: int = 0
    stall_ms: int = 3_600_000


class Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Serve only a request whose last user message contains this text.
    match: str | None = None
    content: str | None = None
    tokens: list[str] | None = None
    tool_calls: list[ScriptedToolCall] = Field(default_factory=list)
    token_delay_ms: float | None = None
    first_byte_delay_ms: float = 0
    fault: Fault | None = None
    finish_reason: str | None = None
    #: How many requests this reply serves before it is used up.
    times: int = Field(default=1, ge=1)


class ScriptBody(BaseModel):
    replies: list[Reply]
