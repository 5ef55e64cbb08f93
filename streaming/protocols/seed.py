"""The runtime's own SSE format: ``id:`` and ``data: {token, is_final, type, metadata}``.

Every event that reaches the client carries its id (``streaming.runs.run``) as ``id:``; text
deltas are framed without building a model per token; heartbeats are ``: ping`` comments;
``data: [DONE]`` ends it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import orjson

from streaming.engine.events import (
    Heartbeat,
    TextDelta,
    ToolCallReady,
    ToolResult,
    TurnEvent,
    TurnFailed,
    TurnFinished,
)
from streaming.engine.start import Regenerate, ToolDecision, ToolOutput, TurnInput, UserInput
from streaming.protocol import (
    AnyStreamRequest,
    RegenerateRequest,
    StreamEvent,
    ToolApprovalRequest,
    UserMessageRequest,
)
from streaming.runs.run import Logged

DONE_FRAME = b"data: [DONE]\n\n"
PING_FRAME = b": ping\n\n"
_TOKEN_FRAME = b'id: %d\ndata: {"token":%b,"is_final":false,"type":"assistant_message"}\n\n'


def event_frame(event_id: int, event: StreamEvent) -> bytes:
    """Frame one event as ``id: <n>`` and ``data: <json>`` plus the blank line."""
    return b"id: %d\ndata: " % event_id + event.to_json() + b"\n\n"


def token_frame(event_id: int, token: str) -> bytes:
    """The frame of ``StreamEvent(token=token, is_final=False, type="assistant_message")``.

    The per-token hot path: the same bytes as :func:`event_frame` (a test holds the two
    equal), without building a model per token.
    """
    return _TOKEN_FRAME % (event_id, orjson.dumps(token))


def seed_turn_input(body: AnyStreamRequest) -> TurnInput:
    """What a parsed stream request asks of the engine."""
    if isinstance(body, UserMessageRequest):
        return UserInput(body.session_id, body.content, body.message_id)
    if isinstance(body, ToolApprovalRequest):
        return ToolDecision(body.session_id, body.call_id, body.approved, body.reason or "")
    if isinstance(body, RegenerateRequest):
        return Regenerate(body.session_id)
    return ToolOutput.of(
        session_id=body.session_id, call_id=body.call_id, result=body.result, error=body.error
    )


def seed_event(event: TurnEvent) -> StreamEvent | None:
    """The seed event for a turn event; None for the events this format does not show."""
    if isinstance(event, ToolCallReady):
        metadata = {
            "call_id": event.call_id,
            "tool_name": event.tool_name,
            "arguments": event.arguments,
            "executor": event.executor,
        }
        if event.approval_required:
            metadata["approval"] = "required"
        return StreamEvent(token="", is_final=False, type="tool_call", metadata=metadata)
    if isinstance(event, ToolResult):
        metadata: dict[str, Any] = {"call_id": event.call_id, "tool_name": event.tool_name}
        if event.error is not None:
            metadata["error"] = event.error
        else:
            metadata["result"] = event.result
        return StreamEvent(token="", is_final=False, type="tool_result", metadata=metadata)
    if isinstance(event, TurnFinished):
        if event.pending_call_ids is not None:
            metadata = {"pending_call_ids": event.pending_call_ids}
            if event.awaiting_approval:
                metadata["awaiting_approval"] = event.awaiting_approval
            return StreamEvent(token="", is_final=True, type="tool_call", metadata=metadata)
        metadata = {"replayed": True} if event.replayed else {}
        if event.usage is not None:
            metadata.update({"finish_reason": event.finish_reason, "usage": event.usage})
        return StreamEvent(token="", is_final=True, type="assistant_message", metadata=metadata)
    if isinstance(event, TurnFailed):
        metadata = {"code": event.code, "message": event.message}
        return StreamEvent(token="", is_final=True, type="error", metadata=metadata)
    return None


def seed_frame(event_id: int | None, event: TurnEvent) -> bytes | None:
    """One event, with its id, as seed bytes; None for the events this format does not show."""
    kind = type(event)
    if kind is TextDelta:
        # ``token_frame``'s bytes, without a call per token.
        return _TOKEN_FRAME % (event_id, orjson.dumps(event.text))  # type: ignore[union-attr]
    if kind is Heartbeat:
        return PING_FRAME
    seed = seed_event(event)
    return None if seed is None else event_frame(event_id, seed)  # type: ignore[arg-type]


async def seed_stream(items: AsyncIterator[Logged]) -> AsyncIterator[bytes]:
    """A turn's events, with their ids, as the bytes of the seed format."""
    async with aclosing(items):
        async for event_id, event in items:
            if (frame := seed_frame(event_id, event)) is not None:
                yield frame
    yield DONE_FRAME
