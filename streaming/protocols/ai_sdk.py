"""The Vercel AI SDK's UI message stream (``POST /agent/ai-sdk/chat``, docs/api.md).

The response to what the SDK's ``DefaultChatTransport`` posts (read in ``ai_sdk_request``), and
to its resume: ``data: {chunk}`` frames, ``x-vercel-ai-ui-message-stream: v1`` and
``data: [DONE]``. The chunk types are those of the ``ai`` release pinned in
``tests/clients/package-lock.json``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict

from streaming.engine.events import (
    Heartbeat,
    StepFinished,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallReady,
    ToolCallStarted,
    ToolResult,
    TurnEvent,
    TurnFailed,
    TurnFinished,
)
from streaming.protocols.seed import DONE_FRAME, PING_FRAME

#: The response header that tells the SDK which stream protocol the body speaks.
STREAM_HEADERS = {"x-vercel-ai-ui-message-stream": "v1"}


class UIMessageChunk(BaseModel):
    """One chunk of the UI message stream (the ``ai`` package's ``UIMessageChunk``; the
    fields of each ``type`` are in docs/api.md)."""

    model_config = ConfigDict(extra="allow")

    type: str


_FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool-calls",
    "content_filter": "content-filter",
}


def chunk_frame(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


START_FRAME = chunk_frame({"type": "start"})
START_STEP_FRAME = chunk_frame({"type": "start-step"})
FINISH_STEP_FRAME = chunk_frame({"type": "finish-step"})


def text_delta_frame(text_id: str, delta: str) -> bytes:
    """The frame of ``{"type": "text-delta", "id": text_id, "delta": delta}``."""
    return text_delta_head(text_id) + orjson.dumps(delta) + b"}\n\n"


def text_delta_head(text_id: str) -> bytes:
    return b'data: {"type":"text-delta","id":' + orjson.dumps(text_id) + b',"delta":'


def _finish_chunk(event: TurnFinished | None, reason: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    if event is not None:
        if event.usage:
            metadata["usage"] = event.usage
        if event.finish_reason:
            metadata["finishReason"] = event.finish_reason
        if event.pending_call_ids:
            metadata["pendingToolCallIds"] = event.pending_call_ids
        if event.awaiting_approval:
            metadata["awaitingApproval"] = event.awaiting_approval
        if event.replayed:
            metadata["replayed"] = True
    chunk: dict[str, Any] = {"type": "finish", "finishReason": reason}
    if metadata:
        chunk["messageMetadata"] = metadata
    return chunk


def _call_chunk(event: TurnEvent) -> dict[str, Any] | None:
    """The chunk of a tool call's event (None for the events that are not)."""
    kind = type(event)
    if kind is ToolCallStarted:
        return {
            "type": "tool-input-start",
            "toolCallId": event.call_id,
            "toolName": event.tool_name,
        }  # type: ignore[union-attr]
    if kind is ToolCallArgsDelta:
        return {
            "type": "tool-input-delta",
            "toolCallId": event.call_id,
            "inputTextDelta": event.delta,
        }  # type: ignore[union-attr]
    if isinstance(event, ToolCallReady):
        chunk = {"toolCallId": event.call_id, "toolName": event.tool_name, "input": event.arguments}
        if event.problem is not None:  # rejected by the runtime, which reports the outcome
            return {
                "type": "tool-input-error",
                **chunk,
                "errorText": event.problem,
                "providerExecuted": True,
            }
        # A server-side call runs here ("provider-executed"); a client-side one is the page's
        # to run (``onToolCall``), and ends the turn.
        return {
            "type": "tool-input-available",
            **chunk,
            "providerExecuted": event.executor == "server",
        }
    if isinstance(event, ToolResult):
        if event.error_code == "denied":  # the model reads the reason; the page knows it
            return {"type": "tool-output-denied", "toolCallId": event.call_id}
        if event.error is not None:
            return {
                "type": "tool-output-error",
                "toolCallId": event.call_id,
                "errorText": event.error,
                "providerExecuted": True,
            }
        return {
            "type": "tool-output-available",
            "toolCallId": event.call_id,
            "output": event.result,
            "providerExecuted": True,
        }
    return None


def approval_request_chunk(call_id: str) -> dict[str, Any]:
    """The request for the user's decision on a call; its ``approvalId`` is the call id."""
    return {"type": "tool-approval-request", "approvalId": call_id, "toolCallId": call_id}


async def ai_sdk_stream(
    events: AsyncIterator[TurnEvent], *, resumed: bool = False
) -> AsyncIterator[bytes]:
    """A turn's events as the UI message stream.

    ``start``; per model step ``start-step`` … ``finish-step``, with text blocks
    (``text-start``, ``text-delta``…, ``text-end``) and tool calls (``tool-input-start``,
    ``tool-input-delta``…, ``tool-input-available`` and, for a server-side call,
    ``tool-output-available``/``-error``, or ``tool-approval-request`` when it waits for the
    user's decision, ``tool-output-denied`` once denied); then ``finish`` (usage in its message
    metadata), ``abort`` for a cancelled turn, or ``error`` and ``finish``; then ``data: [DONE]``.

    A ``resumed`` stream replays the turn into a new message (the SDK's resume), which lacks
    the parts of the calls an answer continued: their outcomes are left out.
    """
    text_id = ""
    text_head: bytes | None = None  # set while a text block is open
    texts = 0
    in_step = False
    calls: set[str] = set()  # the calls this stream announced
    stream_id = uuid.uuid4().hex[:12]  # text ids stay unique across a message's continuations
    yield START_FRAME
    async with aclosing(events):
        async for event in events:
            kind = type(event)
            if kind is TextDelta:
                if text_head is None:
                    if not in_step:
                        in_step = True
                        yield START_STEP_FRAME
                    texts += 1
                    text_id = f"text-{stream_id}-{texts}"
                    text_head = text_delta_head(text_id)
                    yield chunk_frame({"type": "text-start", "id": text_id})
                yield text_head + orjson.dumps(event.text) + b"}\n\n"  # type: ignore[union-attr]
                continue
            if kind is Heartbeat:
                yield PING_FRAME
                continue
            if text_head is not None:
                text_head = None
                yield chunk_frame({"type": "text-end", "id": text_id})
            if kind is StepFinished or kind is TurnFinished or kind is TurnFailed:
                if in_step or kind is StepFinished:
                    if not in_step:
                        yield START_STEP_FRAME
                    in_step = False
                    yield FINISH_STEP_FRAME
                if kind is TurnFinished:
                    if event.status == "cancelled":  # type: ignore[union-attr]
                        yield chunk_frame({"type": "abort", "reason": "cancelled"})
                    else:
                        reason = _FINISH_REASONS.get(event.finish_reason or "", "other")  # type: ignore[union-attr]
                        yield chunk_frame(_finish_chunk(event, reason))  # type: ignore[arg-type]
                elif kind is TurnFailed:
                    yield chunk_frame(
                        {"type": "error", "errorText": f"{event.code}: {event.message}"}
                    )  # type: ignore[union-attr]
                    yield chunk_frame(_finish_chunk(None, "error"))
                continue
            if kind is ToolCallStarted or kind is ToolCallReady:
                calls.add(event.call_id)  # type: ignore[union-attr]
            elif resumed and kind is ToolResult and event.call_id not in calls:  # type: ignore[union-attr]
                continue
            chunk = _call_chunk(event)
            if chunk is not None:
                if not in_step:
                    in_step = True
                    yield START_STEP_FRAME
                yield chunk_frame(chunk)
                if kind is ToolCallReady and event.approval_required and not event.problem:  # type: ignore[union-attr]
                    yield chunk_frame(approval_request_chunk(event.call_id))  # type: ignore[union-attr]
    yield DONE_FRAME
