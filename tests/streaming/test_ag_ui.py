"""The AG-UI encoder and request reading, on scripted events (``HttpAgent`` reads a live
stream in tests/e2e/test_clients.py)."""

import pytest
from ag_ui.core import (
    BaseEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from pydantic import ValidationError

from agent_runtime.errors import InvalidRequest
from streaming.engine.events import (
    HEARTBEAT,
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
from streaming.engine.start import Regenerate, ToolOutput, UserInput
from streaming.protocols.ag_ui import (
    RunInput,
    ag_ui_stream,
    ag_ui_turn_inputs,
    event_frame,
    text_content_frame,
    tool_args_frame,
    wire_frame,
)
from tests.streaming.encoded import decoded_frames


def decoded(*events: TurnEvent) -> list[dict | str]:
    return decoded_frames(lambda e: ag_ui_stream(e, thread_id="t", run_id="r"), *events)


@pytest.mark.parametrize("text", ["plain", 'quo"te', "new\nline", "ünï 🎉", "\\back", "", "\x01"])
def test_the_text_content_fast_path_is_the_packages_encoding(text: str) -> None:
    event = TextMessageContentEvent(message_id="msg_1", delta=text)
    assert text_content_frame("msg_1", text) == event_frame(event)


@pytest.mark.parametrize("delta", ['{"expr": "1+1"}', '"ünï\\n', ""])
def test_the_tool_args_fast_path_is_the_packages_encoding(delta: str) -> None:
    event = ToolCallArgsEvent(tool_call_id="call_1", delta=delta)
    assert tool_args_frame("call_1", delta) == event_frame(event)


@pytest.mark.parametrize(
    "event",
    [
        TextMessageStartEvent(message_id="m_1", role="assistant"),
        TextMessageEndEvent(message_id="m_1"),
        ToolCallStartEvent(tool_call_id="c1", tool_call_name="calc", parent_message_id="m_1"),
        ToolCallEndEvent(tool_call_id="c1"),
        ToolCallResultEvent(message_id="m_2", tool_call_id="c1", content='{"a": "ü"}', role="tool"),
    ],
)
def test_wire_frames_are_the_packages_encoding(event: BaseEvent) -> None:
    fields = event.model_dump(by_alias=True, exclude={"type"})
    assert wire_frame(event.type.value, **fields) == event_frame(event)


def test_a_turn_with_a_server_tool_then_text() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    out = decoded(
        ToolCallStarted("c1", "calculator"),
        ToolCallArgsDelta("c1", '{"expr":"1+1"}'),
        ToolCallReady("c1", "calculator", {"expr": "1+1"}, "server"),
        ToolResult("c1", "calculator", result=2),
        StepFinished(1, "tool_calls"),
        TextDelta("It is "),
        HEARTBEAT,
        TextDelta("2."),
        StepFinished(2, "stop", usage),
        TurnFinished("complete", "stop", usage),
    )
    first_step = out[1]["parentMessageId"]
    text_id = out[5]["messageId"]
    assert text_id != first_step  # one assistant message per model step
    assert out == [
        {"type": "RUN_STARTED", "threadId": "t", "runId": "r"},
        {
            "type": "TOOL_CALL_START",
            "toolCallId": "c1",
            "toolCallName": "calculator",
            "parentMessageId": first_step,
        },
        {"type": "TOOL_CALL_ARGS", "toolCallId": "c1", "delta": '{"expr":"1+1"}'},
        {"type": "TOOL_CALL_END", "toolCallId": "c1"},
        {
            "type": "TOOL_CALL_RESULT",
            "messageId": out[4]["messageId"],
            "toolCallId": "c1",
            "content": "2",
            "role": "tool",
        },
        {"type": "TEXT_MESSAGE_START", "messageId": text_id, "role": "assistant"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": text_id, "delta": "It is "},
        "ping",
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": text_id, "delta": "2."},
        {"type": "TEXT_MESSAGE_END", "messageId": text_id},
        {
            "type": "RUN_FINISHED",
            "threadId": "t",
            "runId": "r",
            "usage": [{"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}],
        },
    ]


def test_cancelled_and_failed_runs() -> None:
    cancelled = decoded(TextDelta("a"), TurnFinished("cancelled", "cancelled", {}))
    assert cancelled[-2]["type"] == "TEXT_MESSAGE_END"
    assert cancelled[-1] == {
        "type": "RUN_FINISHED",
        "threadId": "t",
        "runId": "r",
        "outcome": {"type": "cancelled"},
    }
    failed = decoded(TurnFailed("upstream_timeout", "The model server timed out."))
    assert failed[-1] == {
        "type": "RUN_ERROR",
        "message": "The model server timed out.",
        "code": "upstream_timeout",
    }


def _run(*messages: dict, **extra: object) -> RunInput:
    return RunInput.model_validate(
        {"threadId": "s1", "runId": "r1", "messages": list(messages), **extra}
    )


OPEN_TAB = {"name": "open_tab", "description": "Open a tab.", "parameters": {"type": "object"}}


def test_a_user_message_with_the_runs_declared_tools() -> None:
    [turn_input] = ag_ui_turn_inputs(
        _run({"id": "u1", "role": "user", "content": "hi"}, tools=[OPEN_TAB]), pending_call_ids=()
    )
    assert isinstance(turn_input, UserInput)
    assert (turn_input.content, turn_input.message_id) == ("hi", "u1")
    [tool] = turn_input.extra_tools
    assert (tool.name, tool.executor) == ("open_tab", "client")
    assert tool.openai_schema()["function"]["parameters"] == {"type": "object"}


def test_tool_messages_for_pending_calls() -> None:
    body = _run(
        {"id": "u1", "role": "user", "content": "hi"},
        {"id": "a1", "role": "assistant", "toolCalls": []},
        {"id": "t1", "role": "tool", "toolCallId": "c1", "content": "done"},
        {"id": "t2", "role": "tool", "toolCallId": "c2", "content": "", "error": "denied"},
        {"id": "t3", "role": "tool", "toolCallId": "answered", "content": "old"},
    )
    assert ag_ui_turn_inputs(body, pending_call_ids={"c1", "c2"}) == [
        ToolOutput("s1", "c1", "done"),
        ToolOutput("s1", "c2", '{"error":"denied"}', "tool_error"),
    ]
    with pytest.raises(InvalidRequest):
        ag_ui_turn_inputs(body, pending_call_ids=())


def test_regenerate_is_a_forwarded_prop() -> None:
    body = _run({"id": "u1", "role": "user", "content": "hi"}, forwardedProps={"regenerate": True})
    assert ag_ui_turn_inputs(body, pending_call_ids=()) == [Regenerate("s1")]


def test_the_thread_id_follows_the_session_id_rules() -> None:
    with pytest.raises(ValidationError, match=r"thread_id|threadId"):
        RunInput.model_validate({"threadId": "no spaces", "runId": "r", "messages": []})


def test_a_user_message_id_longer_than_a_message_id_is_no_retry_key() -> None:
    body = _run({"id": "u" * 129, "role": "user", "content": "hi"})
    [turn_input] = ag_ui_turn_inputs(body, pending_call_ids=())
    assert turn_input.message_id is None  # type: ignore[union-attr]
