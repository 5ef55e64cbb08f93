"""The AG-UI event protocol (``POST /agent/ag-ui``, docs/api.md); the request is read in
``ag_ui_input``.

The events are the ``ag-ui-protocol`` package's models, encoded by its ``EventEncoder``. The
events of a run's messages and calls, which come per token or per call, are framed without
building a model each time (``wire_frame``, and a template per delta): a test holds their
bytes equal to the package's encoding of each event type. The run's own events
(``RUN_STARTED``, ``RUN_FINISHED``, ``RUN_ERROR``) are the package's models.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import aclosing

import orjson
from ag_ui.core import (
    BaseEvent,
    EventType,
    Interrupt,
    RunErrorEvent,
    RunFinishedCancelledOutcome,
    RunFinishedEvent,
    RunFinishedInterruptOutcome,
    RunFinishedOutcome,
    RunStartedEvent,
    TokenUsage,
)
from ag_ui.encoder import EventEncoder
from pydantic import BaseModel, ConfigDict

from sessions.records import AwaitingApproval
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
from streaming.protocols.ag_ui_input import APPROVAL_REASON, APPROVAL_RESPONSE_SCHEMA
from streaming.protocols.seed import PING_FRAME

_encoder = EventEncoder()


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


def approval_interrupt(call_id: str, call: AwaitingApproval | None) -> Interrupt:
    """The interrupt of a call that waits for approval: its id is the call's id; the tool and
    its arguments are in ``metadata`` (a call neither this run nor the caller's ``waiting``
    knew, which only a concurrent answer can cause, is known by its id only)."""
    if call is None:
        return Interrupt(id=call_id, reason=APPROVAL_REASON, tool_call_id=call_id)
    return Interrupt(
        id=call_id,
        reason=APPROVAL_REASON,
        message=f"Tool {call.tool_name} waits for your approval.",
        tool_call_id=call_id,
        response_schema=APPROVAL_RESPONSE_SCHEMA,
        metadata={"toolName": call.tool_name, "arguments": call.arguments},
    )


def _awaiting(event: ToolCallReady) -> AwaitingApproval:
    return AwaitingApproval(event.call_id, event.tool_name, event.arguments)


def _outcome(
    event: TurnFinished, waiting: dict[str, AwaitingApproval]
) -> RunFinishedOutcome | None:
    if event.awaiting_approval:
        interrupts = [approval_interrupt(i, waiting.get(i)) for i in event.awaiting_approval]
        return RunFinishedInterruptOutcome(interrupts=interrupts)
    if event.status == "cancelled":
        return RunFinishedCancelledOutcome()
    return None


async def ag_ui_stream(
    events: AsyncIterator[TurnEvent],
    *,
    thread_id: str,
    run_id: str,
    waiting: Iterable[AwaitingApproval] = (),
) -> AsyncIterator[bytes]:
    """A turn's events as AG-UI events.

    ``RUN_STARTED``; per model step one assistant message: its text
    (``TEXT_MESSAGE_START``, ``_CONTENT``…, ``_END``) and its tool calls (``TOOL_CALL_START``,
    ``_ARGS``…, ``_END``, and ``TOOL_CALL_RESULT`` for a server-side call); then
    ``RUN_FINISHED`` (with usage; ``outcome: interrupt`` when calls wait for approval,
    ``cancelled`` for a cancelled turn) or ``RUN_ERROR``. ``waiting``: the calls that waited
    before this run, for the interrupts of those that still wait after it.
    """
    approvals = {call.call_id: call for call in waiting}
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
                if event.approval_required:  # type: ignore[union-attr]
                    approvals[event.call_id] = _awaiting(event)  # type: ignore[union-attr,arg-type]
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
                        outcome=_outcome(event, approvals),  # type: ignore[arg-type]
                    )
                )
            elif kind is TurnFailed:
                yield event_frame(RunErrorEvent(message=event.message, code=event.code))  # type: ignore[union-attr]
