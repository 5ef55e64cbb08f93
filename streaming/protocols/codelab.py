"""The Codelab gateway's dialect: its request envelope in, its ``StreamChunk`` events out.

The gateway posts ``{"session_id"?, "message": {...}}`` and forwards each ``data:`` object to
the IDE as it is. The IDE runs every ``tool_call`` it receives, so only client-side calls go
out as ``tool_call`` (the last one of a waiting turn marked ``is_final``); server-side calls and
their results are ``status`` events. Errors carry ``error`` and ``content`` (the IDE prints the
latter). A request without ``session_id`` gets a new session, announced by a first
``session_info`` event.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any, Literal

import orjson
from django.conf import settings
from pydantic import BaseModel, ConfigDict, Discriminator, Tag, TypeAdapter

from agent_runtime.errors import InvalidRequest, PayloadTooLarge
from streaming.engine.events import (
    Heartbeat,
    TextDelta,
    ToolCallReady,
    ToolResult,
    TurnEvent,
    TurnFailed,
    TurnFinished,
)
from streaming.engine.start import ToolDecision, ToolOutput, TurnInput, UserInput
from streaming.protocol import (
    AnyStreamRequest,
    ClientKey,
    NonBlank,
    RegenerateRequest,
    SessionId,
    ToolApprovalRequest,
    ToolResultRequest,
    UserMessageRequest,
    request_kind,
)
from streaming.protocols.seed import DONE_FRAME, PING_FRAME, seed_event, token_frame


class UnsupportedMessageType(InvalidRequest):
    code, detail = "unsupported_message_type", "This message type is not supported."


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class UserMessage(_Message):
    type: Literal["user_message"]
    content: NonBlank
    role: Literal["user"] = "user"


class ToolResultMessage(_Message):
    type: Literal["tool_result"]
    call_id: ClientKey
    result: Any = None
    error: str | None = None


class HitlDecision(_Message):
    type: Literal["hitl_decision"]
    call_id: ClientKey
    decision: Literal["approve", "edit", "reject"]
    modified_arguments: dict[str, Any] | None = None
    feedback: str | None = None


class SwitchAgent(_Message):
    type: Literal["switch_agent"]
    agent_type: str
    content: str = ""


CodelabMessage = Annotated[
    Annotated[UserMessage, Tag("user_message")]
    | Annotated[ToolResultMessage, Tag("tool_result")]
    | Annotated[HitlDecision, Tag("hitl_decision")]
    | Annotated[SwitchAgent, Tag("switch_agent")],
    Discriminator(
        lambda v: v.get("type") if isinstance(v, dict) else getattr(v, "type", None),
        custom_error_type="invalid_type",
        custom_error_message=(
            "message.type must be one of user_message, tool_result, hitl_decision, switch_agent"
        ),
    ),
]


class CodelabEnvelope(BaseModel):
    """The gateway's request: the IDE's message, and the session once the gateway knows it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    session_id: SessionId | None = None
    message: CodelabMessage


def is_envelope(value: Any) -> bool:
    """Whether a request body is the gateway's envelope rather than the flat form."""
    return isinstance(value, dict) and isinstance(value.get("message"), dict)


#: ``POST /agent/message/stream``'s body: the flat form, or the gateway's envelope.
MessageStreamBody = Annotated[
    Annotated[UserMessageRequest, Tag("user_message")]
    | Annotated[ToolResultRequest, Tag("tool_result")]
    | Annotated[ToolApprovalRequest, Tag("tool_approval")]
    | Annotated[RegenerateRequest, Tag("regenerate")]
    | Annotated[CodelabEnvelope, Tag("envelope")],
    Discriminator(
        lambda v: "envelope" if is_envelope(v) else request_kind(v),
        custom_error_type="invalid_type",
        custom_error_message=(
            "type must be 'user_message', 'tool_result', 'tool_approval' or 'regenerate'"
        ),
    ),
]
message_stream_adapter: TypeAdapter[AnyStreamRequest | CodelabEnvelope] = TypeAdapter(
    MessageStreamBody
)


def codelab_turn_input(body: CodelabEnvelope) -> tuple[TurnInput, str | None]:
    """What the envelope asks of the engine, and the new session's id when it makes one."""
    message = body.message
    if isinstance(message, SwitchAgent):
        raise UnsupportedMessageType(
            "switch_agent is not supported: this runtime has no agent profiles yet."
        )
    if isinstance(message, UserMessage):
        if len(message.content) > settings.MAX_MESSAGE_CHARS:
            raise PayloadTooLarge(
                f"content is longer than {settings.MAX_MESSAGE_CHARS} characters."
            )
        new_session = None if body.session_id else f"codelab-{uuid.uuid4().hex}"
        return UserInput(body.session_id or new_session, message.content), new_session  # type: ignore[arg-type]
    if body.session_id is None:
        raise InvalidRequest(
            f"A {message.type} needs the session_id of the turn that asked for it.",
            errors=[{"field": "session_id", "message": "Field required", "type": "missing"}],
        )
    if isinstance(message, HitlDecision):
        return _decision(body.session_id, message), None
    if message.error is not None and message.result is not None:
        raise InvalidRequest("Send either result or error, not both.")
    output = ToolOutput.of(
        session_id=body.session_id,
        call_id=message.call_id,
        result=message.result,
        error=message.error,
    )
    return output, None


def _decision(session_id: str, message: HitlDecision) -> ToolDecision:
    """``approve`` runs the call, ``edit`` runs it with the new arguments (validated when it
    runs), ``reject`` denies it with the feedback as the reason the model reads."""
    if message.decision == "edit" and message.modified_arguments is None:
        raise InvalidRequest(
            "An edit decision needs modified_arguments.",
            errors=[
                {
                    "field": "message.modified_arguments",
                    "message": "Field required",
                    "type": "missing",
                }
            ],
        )
    return ToolDecision(
        session_id=session_id,
        call_id=message.call_id,
        approved=message.decision != "reject",
        reason=message.feedback or "",
        arguments=message.modified_arguments if message.decision == "edit" else None,
    )


def _frame(event_id: int, chunk: dict[str, Any]) -> bytes:
    return b"id: %d\ndata: " % event_id + orjson.dumps(chunk) + b"\n\n"


def _status(content: str, metadata: dict[str, Any]) -> dict[str, Any]:
    return {"type": "status", "content": content, "is_final": False, "metadata": metadata}


def codelab_chunk(event: TurnEvent) -> dict[str, Any] | None:
    """The chunk of an event that is not a client-side call (those wait for the turn's end)."""
    if isinstance(event, ToolCallReady):
        metadata = {
            "call_id": event.call_id,
            "tool_name": event.tool_name,
            "arguments": event.arguments,
            "executor": event.executor,
        }
        if event.approval_required:
            metadata["approval"] = "required"
            return _status(f"Tool {event.tool_name} waits for your approval", metadata)
        return _status(f"Calling tool {event.tool_name}", metadata)
    if isinstance(event, ToolResult):
        metadata = {"call_id": event.call_id, "tool_name": event.tool_name}
        if event.error is not None:
            metadata.update(error=event.error, code=event.error_code)
            return _status(f"Tool {event.tool_name} failed: {event.error}", metadata)
        metadata["result"] = event.result
        return _status(f"Tool {event.tool_name} finished", metadata)
    if isinstance(event, TurnFailed):
        return {
            "type": "error",
            "error": event.message,
            "content": event.message,
            "is_final": True,
            "metadata": {"code": event.code},
        }
    seed = seed_event(event)
    if seed is None:
        return None
    chunk: dict[str, Any] = {"type": seed.type, "token": seed.token, "is_final": seed.is_final}
    if seed.metadata is not None:
        chunk["metadata"] = seed.metadata
    return chunk


def _client_calls(calls: list[ToolCallReady], pending: list[str]) -> list[dict[str, Any]]:
    """The ``tool_call`` chunks the IDE must run: the waiting calls, the last one final."""
    waiting = {call.call_id: call for call in calls}
    chunks = []
    for number, call_id in enumerate(pending, start=1):
        call = waiting[call_id]
        chunks.append(
            {
                "type": "tool_call",
                "call_id": call.call_id,
                "tool_name": call.tool_name,
                "arguments": call.arguments,
                "requires_approval": False,
                "is_final": number == len(pending),
            }
        )
    return chunks


class _ClientCalls:
    """Holds client-side calls back until the turn says which ones wait for the IDE."""

    def __init__(self) -> None:
        self.calls: list[ToolCallReady] = []

    def chunks(self, event: TurnEvent) -> list[dict[str, Any]]:
        if isinstance(event, ToolCallReady) and event.executor == "client" and not event.problem:
            self.calls.append(event)
            return []
        if isinstance(event, TurnFinished) and (event.pending_call_ids or event.awaiting_approval):
            chunks = []
            if event.awaiting_approval:
                metadata: dict[str, Any] = {"awaiting_approval": event.awaiting_approval}
                waiting = _status("Waiting for your approval (hitl_decision)", metadata)
                chunks.append({**waiting, "is_final": not event.pending_call_ids})
            if event.pending_call_ids and self.calls:
                chunks += _client_calls(self.calls, event.pending_call_ids)
            elif event.pending_call_ids:
                # A result was stored; the IDE is already running the step's other calls.
                metadata = {"pending_call_ids": event.pending_call_ids}
                chunks.append(
                    {**_status("Waiting for the other tool results", metadata), "is_final": True}
                )
            return chunks
        chunk = codelab_chunk(event)
        return [] if chunk is None else [chunk]


async def codelab_stream(
    events: AsyncIterator[TurnEvent], *, new_session_id: str | None
) -> AsyncIterator[bytes]:
    """A turn's events as the bytes of the Codelab dialect."""
    event_id = 0
    if new_session_id is not None:
        event_id += 1
        yield _frame(event_id, {"type": "session_info", "session_id": new_session_id})
    client_calls = _ClientCalls()
    async with aclosing(events):  # type: ignore[type-var]
        async for event in events:
            if type(event) is TextDelta:
                event_id += 1
                yield token_frame(event_id, event.text)
            elif isinstance(event, Heartbeat):
                yield PING_FRAME
            else:
                for chunk in client_calls.chunks(event):
                    event_id += 1
                    yield _frame(event_id, chunk)
    yield DONE_FRAME
