"""What the Vercel AI SDK's ``DefaultChatTransport`` posts to ``POST /agent/ai-sdk/chat``.

The body is ``{id, messages, trigger, messageId}`` (docs/api.md). The runtime owns the history:
of the posted messages only what is new is read, as engine inputs: the last user message, the
outputs of client-side calls that wait for them (``addToolOutput``), and the user's decisions
on calls that wait for approval (``addToolApprovalResponse``).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent_runtime.errors import InvalidRequest, nothing_to_answer
from streaming.engine.start import Regenerate, ToolDecision, ToolOutput, TurnInput, UserInput
from streaming.protocol import MAX_REASON_CHARS, OnDisconnect, SessionId

#: The tool part states of a result the client has (``addToolOutput``).
_OUTPUT_STATES = ("output-available", "output-error")
#: The tool part state of a call the user approved or denied (``addToolApprovalResponse``).
_DECIDED_STATE = "approval-responded"


class ToolApproval(BaseModel):
    """A tool part's ``approval``: its id (the call id, as the runtime sends it) and, once the
    user answered, the decision."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str
    approved: bool | None = None
    reason: str | None = Field(default=None, max_length=MAX_REASON_CHARS)


class UIMessagePart(BaseModel):
    """One part of a UI message: the fields of the part types the runtime reads."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str
    text: str | None = None
    state: str | None = None
    tool_call_id: str | None = Field(default=None, alias="toolCallId")
    output: Any = None
    error_text: str | None = Field(default=None, alias="errorText")
    approval: ToolApproval | None = None

    @property
    def is_tool(self) -> bool:
        return self.type.startswith("tool-") or self.type == "dynamic-tool"


class UIMessage(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(max_length=128)
    role: Literal["system", "user", "assistant"]
    parts: list[UIMessagePart] = Field(default_factory=list)


class ChatRequest(BaseModel):
    """The body ``DefaultChatTransport`` sends: the chat ``id`` is the session id.

    ``onDisconnect`` (sent with the transport's ``body`` option) says what a dropped
    connection does to the turn; ``continue`` by default, so that ``useChat``'s resume finds
    the turn still running after a reload.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: SessionId
    messages: list[UIMessage] = Field(min_length=1)
    trigger: Literal["submit-message", "regenerate-message"] = "submit-message"
    message_id: str | None = Field(default=None, alias="messageId")
    on_disconnect: OnDisconnect = Field(default="continue", alias="onDisconnect")


def ai_sdk_wants_pending(body: ChatRequest) -> bool:
    """Whether the request carries answers (tool outputs, decisions), to be matched with the
    calls that wait for them."""
    return body.trigger == "submit-message" and body.messages[-1].role == "assistant"


def ai_sdk_turn_inputs(
    body: ChatRequest,
    *,
    pending_call_ids: Collection[str],
    undecided_call_ids: Collection[str] = (),
) -> list[TurnInput]:
    """What is new in the posted chat, as engine inputs.

    ``regenerate-message`` answers the last user message again. Otherwise the last message is
    either a user message (its text parts) or the assistant message whose calls now have
    answers: one input per output of a call that waits for one (``pending_call_ids``) and per
    decision on a call that waits for one (``undecided_call_ids``), in the parts' order.
    Whether a call needs approval is the server's to say: an output for a call that waits for
    a decision is refused when it is submitted.
    """
    if body.trigger == "regenerate-message":
        return [Regenerate(body.id)]
    last = body.messages[-1]
    if last.role == "user":
        text = "".join(part.text or "" for part in last.parts if part.type == "text")
        if not text.strip():
            raise nothing_to_answer("The last user message has no text.")
        return [UserInput(body.id, text, last.id or None)]
    inputs: list[TurnInput] = []
    for part in last.parts:
        if not part.is_tool or part.tool_call_id is None:
            continue
        if part.state in _OUTPUT_STATES and part.tool_call_id in pending_call_ids:
            error = (part.error_text or "tool failed") if part.state == "output-error" else None
            inputs.append(
                ToolOutput.of(
                    session_id=body.id, call_id=part.tool_call_id, result=part.output, error=error
                )
            )
        elif part.state == _DECIDED_STATE and part.tool_call_id in undecided_call_ids:
            inputs.append(_decision(body.id, part))
    if not inputs:
        raise nothing_to_answer(
            "The last message is neither a user message nor an assistant message with "
            "outputs or approval responses for calls that wait for them."
        )
    return inputs


def _decision(session_id: str, part: UIMessagePart) -> ToolDecision:
    approval = part.approval
    if approval is None or approval.approved is None:
        raise InvalidRequest(
            f"The tool part of call {part.tool_call_id!r} is approval-responded without "
            "approval.approved.",
            errors=[
                {
                    "field": "messages.parts.approval.approved",
                    "message": "Field required",
                    "type": "missing",
                }
            ],
        )
    call_id = part.tool_call_id or ""
    return ToolDecision(session_id, call_id, approval.approved, approval.reason or "")
