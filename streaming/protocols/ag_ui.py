"""The AG-UI event protocol (``POST /agent/ag-ui``, docs/api.md).

The request is a ``RunAgentInput``; the events are the ``ag-ui-protocol`` package's models,
encoded by its ``EventEncoder``. The events of a run's messages and calls, which come per token
or per call, are framed without building a model each time (``wire_frame``, and a template per
delta): a test holds their bytes equal to the package's encoding of each event type. The
run's own events (``RUN_STARTED``, ``RUN_FINISHED``, ``RUN_ERROR``) are the package's models.
The runtime owns the history: of the posted messages only what is new is read.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Collection
from contextlib import aclosing
from typing import Any

import orjson
from ag_ui.core import (
    BaseEvent,
    EventType,
    RunAgentInput,
    RunErrorEvent,
    RunFinishedCancelledOutcome,
    RunFinishedEvent,
    RunStartedEvent,
    TokenUsage,
)
from ag_ui.encoder import EventEncoder
from pydantic import BaseModel, ConfigDict

from agent_runtime.errors import nothing_to_answer
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
from streaming.engine.start import Regenerate, ToolOutput, TurnInput, UserInput
from streaming.protocol import SessionId
from streaming.protocols.seed import PING_FRAME
from streaming.tools.registry import Tool, declared_client_tool

_encoder = EventEncoder()
#: A user message's id is its ``message_id`` when it could be one (``ClientKey``).
MAX_MESSAGE_ID = 128


class RunInput(RunAgentInput):
    """A ``RunAgentInput`` whose ``threadId`` is the session id (the rules of ``session_id``)."""

    thread_id: SessionId


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


def ag_ui_turn_inputs(body: RunInput, *, pending_call_ids: Collection[str]) -> list[TurnInput]:
    """What is new in the posted messages: the last user message, or the ``tool`` messages
    after the last assistant message that answer calls still pending. With
    ``forwardedProps: {"regenerate": true}`` (AG-UI has no regenerate of its own), the last
    user message is answered again instead."""
    tools = ag_ui_declared_tools(body)
    props = body.forwarded_props
    if isinstance(props, dict) and props.get("regenerate") is True:
        return [Regenerate(body.thread_id, extra_tools=tools)]
    if not body.messages:
        raise nothing_to_answer("messages is empty.")
    last = body.messages[-1]
    if last.role == "user":
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
    if not outputs:
        raise nothing_to_answer(
            "The last message is neither a user message nor a tool message for a pending call."
        )
    outputs.reverse()
    return outputs


# --- The response ----------------------------------------------------------------------------


class AgUiEvent(BaseModel):
    """One AG-UI event (the ``ag-ui-protocol`` package's models; the fields of each ``type``
    are in docs/api.md)."""

    model_config = ConfigDict(extra="allow")

    type: str


def event_frame(event: BaseEvent) -> bytes:
    return _encoder.encode(event).encode()


def text_content_head(message_id: str) -> bytes:
    """The start of a ``TEXT_MESSAGE_CONTENT`` frame; the JSON delta and ``}`` follow."""
    return (
        b'data: {"type":"TEXT_MESSAGE_CONTENT","messageId":'
        + orjson.dumps(message_id)
        + b',"delta":'
    )


def text_content_frame(message_id: str, delta: str) -> bytes:
    return text_content_head(message_id) + orjson.dumps(delta) + b"}\n\n"


TEXT_START = EventType.TEXT_MESSAGE_START.value
TEXT_END = EventType.TEXT_MESSAGE_END.value
CALL_START = EventType.TOOL_CALL_START.value
CALL_END = EventType.TOOL_CALL_END.value
CALL_RESULT = EventType.TOOL_CALL_RESULT.value


def wire_frame(event_type: str, **fields: str) -> bytes:
    """The frame of a per-message or per-call event, fields in the model's order: the bytes
    ``event_frame`` makes of the package's model (a test holds them equal per event type)."""
    return b"data: " + orjson.dumps({"type": event_type, **fields}) + b"\n\n"


def tool_args_frame(call_id: str, delta: str) -> bytes:
    """A ``TOOL_CALL_ARGS`` frame, also per delta: a model streams a call's arguments."""
    return (
        b'data: {"type":"TOOL_CALL_ARGS","toolCallId":'
        + orjson.dumps(call_id)
        + b',"delta":'
        + orjson.dumps(delta)
        + b"}\n\n"
    )


def _usage(usage: dict[str, int] | None) -> list[TokenUsage] | None:
    if not usage:
        return None
    return [
        TokenUsage(
            input_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
            total_tokens=usage.get("total_tokens"),
        )
    ]


def _result_content(event: ToolResult) -> str:
    if event.error is not None:
        return orjson.dumps({"error": event.error}).decode()
    if isinstance(event.result, str):
        return event.result
    return orjson.dumps(event.result, default=str).decode()


async def ag_ui_stream(
    events: AsyncIterator[TurnEvent], *, thread_id: str, run_id: str
) -> AsyncIterator[bytes]:
    """A turn's events as AG-UI events.

    ``RUN_STARTED``; per model step one assistant message: its text
    (``TEXT_MESSAGE_START``, ``_CONTENT``…, ``_END``) and its tool calls (``TOOL_CALL_START``,
    ``_ARGS``…, ``_END``, and ``TOOL_CALL_RESULT`` for a server-side call); then
    ``RUN_FINISHED`` (with usage; ``outcome: cancelled`` for a cancelled turn) or ``RUN_ERROR``.
    """
    message_id = ""  # the step's assistant message, once it has begun
    text_head: bytes | None = None  # set while a text message is open
    prefix, messages = f"msg_{uuid.uuid4().hex[:16]}", 0

    def new_message_id() -> str:
        nonlocal messages
        messages += 1
        return f"{prefix}_{messages}"

    yield event_frame(RunStartedEvent(thread_id=thread_id, run_id=run_id))
    async with aclosing(events):
        async for event in events:
            kind = type(event)
            if kind is TextDelta:
                if text_head is None:
                    message_id = message_id or new_message_id()
                    text_head = text_content_head(message_id)
                    yield wire_frame(TEXT_START, messageId=message_id, role="assistant")
                yield text_head + orjson.dumps(event.text) + b"}\n\n"  # type: ignore[union-attr]
                continue
            if kind is Heartbeat:
                yield PING_FRAME
                continue
            if text_head is not None:
                text_head = None
                yield wire_frame(TEXT_END, messageId=message_id)
            if kind is ToolCallStarted:
                message_id = message_id or new_message_id()
                yield wire_frame(
                    CALL_START,
                    toolCallId=event.call_id,  # type: ignore[union-attr]
                    toolCallName=event.tool_name,  # type: ignore[union-attr]
                    parentMessageId=message_id,
                )
            elif kind is ToolCallArgsDelta:
                yield tool_args_frame(event.call_id, event.delta)  # type: ignore[union-attr]
            elif kind is ToolCallReady:
                yield wire_frame(CALL_END, toolCallId=event.call_id)  # type: ignore[union-attr]
            elif kind is ToolResult:
                yield wire_frame(
                    CALL_RESULT,
                    messageId=new_message_id(),
                    toolCallId=event.call_id,  # type: ignore[union-attr]
                    content=_result_content(event),  # type: ignore[arg-type]
                    role="tool",
                )
            elif kind is StepFinished:
                message_id = ""
            elif kind is TurnFinished:
                yield event_frame(
                    RunFinishedEvent(
                        thread_id=thread_id,
                        run_id=run_id,
                        usage=_usage(event.usage),  # type: ignore[union-attr]
                        outcome=RunFinishedCancelledOutcome()
                        if event.status == "cancelled"  # type: ignore[union-attr]
                        else None,
                    )
                )
            elif kind is TurnFailed:
                yield event_frame(RunErrorEvent(message=event.message, code=event.code))  # type: ignore[union-attr]
