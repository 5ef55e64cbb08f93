"""What an AG-UI ``RunAgentInput`` (``POST /agent/ag-ui``, docs/api.md) asks of the engine.

The runtime owns the history: of the posted messages only what is new is read. A run that
continues from an interrupt outcome carries ``resume`` entries: each answers one call that
waits for approval (the interrupt's id is the call's id) and becomes a ``ToolDecision``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Any, Literal

from ag_ui.core import ResumeEntry, RunAgentInput
from pydantic import BaseModel, ConfigDict, Field

from agent_runtime.errors import InvalidRequest, nothing_to_answer
from streaming.engine.start import (
    Regenerate,
    ToolDecision,
    ToolOutput,
    TurnInput,
    UserInput,
)
from streaming.protocol import MAX_REASON_CHARS, SessionId
from streaming.tools.registry import Tool, declared_client_tool

#: A user message's id is its ``message_id`` when it could be one (``ClientKey``).
MAX_MESSAGE_ID = 128
#: The ``reason`` of the interrupt of a call that waits for approval.
APPROVAL_REASON = "tool_approval"


class ApprovalAnswer(BaseModel):
    """The ``payload`` of a ``resolved`` resume entry: the user's decision on the call."""

    model_config = ConfigDict(extra="forbid")

    approved: bool = Field(strict=True)
    reason: str | None = Field(default=None, max_length=MAX_REASON_CHARS)


class ResolvedEntry(ResumeEntry):
    """An interrupt answered: its ``payload`` is the decision (required)."""

    status: Literal["resolved"]
    payload: ApprovalAnswer


class CancelledEntry(ResumeEntry):
    """An interrupt abandoned: a denial without a reason; its ``payload`` is not read."""

    status: Literal["cancelled"]


#: A resume entry, told apart by its ``status`` (the tag pydantic puts in an error's location).
ResumeAnswer = Annotated[ResolvedEntry | CancelledEntry, Field(discriminator="status")]


class RunInput(RunAgentInput):
    """A ``RunAgentInput`` whose ``threadId`` is the session id (the rules of ``session_id``)
    and whose ``resume`` entries are decisions, so that its schema says what is accepted."""

    thread_id: SessionId
    resume: list[ResumeAnswer] | None = None


#: The interrupt's ``responseSchema``: what a ``resolved`` entry's ``payload`` must be.
APPROVAL_RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approved": {"type": "boolean"},
        "reason": {"type": "string", "maxLength": MAX_REASON_CHARS},
    },
    "required": ["approved"],
    "additionalProperties": False,
}


def ag_ui_wants_pending(body: RunInput) -> bool:
    """Whether the request ends with tool messages, to be matched with the pending calls."""
    return bool(body.messages) and body.messages[-1].role == "tool"


def ag_ui_declared_tools(body: RunInput) -> tuple[Tool, ...]:
    """The frontend's tools: client-side tools for this run, on top of the configured ones."""
    return tuple(
        declared_client_tool(name=t.name, description=t.description, parameters=t.parameters)
        for t in body.tools or ()
    )


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(getattr(part, "text", "") or "" for part in content or ())


def ag_ui_turn_inputs(
    body: RunInput,
    *,
    pending_call_ids: Collection[str],
    awaiting_approval: Collection[str] = (),
) -> list[TurnInput]:
    """What is new in the posted messages: the last user message, or the ``tool`` messages
    after the last assistant message that answer calls still pending, then the decisions of
    ``resume``. With ``forwardedProps: {"regenerate": true}`` (AG-UI has no regenerate of its
    own), the last user message is answered again instead.

    Decisions for calls not in ``awaiting_approval`` come first, so that the one the server
    refuses (404, 409) is refused before any other answer of the request is stored."""
    tools = ag_ui_declared_tools(body)
    props = body.forwarded_props
    if isinstance(props, dict) and props.get("regenerate") is True:
        return [Regenerate(body.thread_id, extra_tools=tools)]
    decisions = _decisions(body, tools)
    last = body.messages[-1] if body.messages else None
    if last is not None and last.role == "user":
        if any(entry.status == "resolved" for entry in body.resume or ()):
            raise _resume_error(
                "A run that answers interrupts cannot also post a new user message: "
                "cancel them all (the new message closes their calls) or answer them first.",
                kind="resume_beside_user_message",
            )
        text = _text(last.content)
        if not text.strip():
            raise nothing_to_answer("The last user message has no text.")
        key = last.id if 0 < len(last.id) <= MAX_MESSAGE_ID else None  # else: no retry key
        return [UserInput(body.thread_id, text, key, extra_tools=tools)]
    outputs: list[TurnInput] = []
    for message in reversed(body.messages):
        if message.role != "tool":
            break
        if message.tool_call_id in pending_call_ids:
            outputs.append(
                ToolOutput.of(
                    session_id=body.thread_id,
                    call_id=message.tool_call_id,
                    result=_text(message.content),
                    error=message.error,
                    extra_tools=tools,
                )
            )
    outputs.reverse()
    if decisions:
        decisions.sort(key=lambda d: d.call_id in awaiting_approval)  # stable: refused first
        return [*outputs, *decisions]
    if not body.messages:
        raise nothing_to_answer("messages is empty.")
    if not outputs:
        raise nothing_to_answer(
            "The last message is neither a user message nor a tool message for a pending call."
        )
    return outputs


def _decisions(body: RunInput, tools: tuple[Tool, ...]) -> list[ToolDecision]:
    """One decision per resume entry: ``resolved`` with its ``ApprovalAnswer``, or
    ``cancelled``, a denial without a reason."""
    decisions: list[ToolDecision] = []
    seen: set[str] = set()
    for number, entry in enumerate(body.resume or ()):
        if entry.interrupt_id in seen:
            raise _resume_error(
                f"Interrupt {entry.interrupt_id!r} is answered twice.",
                field=f"resume.{number}.interruptId",
                kind="interrupt_answered_twice",
            )
        seen.add(entry.interrupt_id)
        decisions.append(_decision(body.thread_id, entry, tools))
    return decisions


def _decision(
    session_id: str, entry: ResolvedEntry | CancelledEntry, tools: tuple[Tool, ...]
) -> ToolDecision:
    if isinstance(entry, CancelledEntry):
        return ToolDecision(session_id, entry.interrupt_id, approved=False, extra_tools=tools)
    answer = entry.payload
    return ToolDecision(
        session_id,
        entry.interrupt_id,
        answer.approved,
        answer.reason or "",
        extra_tools=tools,
    )


def _resume_error(detail: str, *, kind: str, field: str = "resume") -> InvalidRequest:
    return InvalidRequest(detail, errors=[{"field": field, "message": detail, "type": kind}])
