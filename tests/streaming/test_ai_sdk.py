"""The AI SDK encoder and request reading, on scripted events (the SDK's own client reads a
live stream in tests/e2e/test_clients.py)."""

import pytest

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
from streaming.protocols.ai_sdk import (
    ChatRequest,
    ai_sdk_stream,
    ai_sdk_turn_inputs,
    chunk_frame,
    text_delta_frame,
)
from tests.streaming.encoded import decoded_frames


def chunks(*events: TurnEvent) -> list[dict | str]:
    return decoded_frames(ai_sdk_stream, *events)


def test_text_turn() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    out = chunks(
        TextDelta("Hel"),
        HEARTBEAT,
        TextDelta("lo"),
        StepFinished(1, "stop", usage),
        TurnFinished("complete", "stop", usage),
    )
    text_id = out[2]["id"]
    assert out == [
        {"type": "start"},
        {"type": "start-step"},
        {"type": "text-start", "id": text_id},
        {"type": "text-delta", "id": text_id, "delta": "Hel"},
        "ping",
        {"type": "text-delta", "id": text_id, "delta": "lo"},
        {"type": "text-end", "id": text_id},
        {"type": "finish-step"},
        {
            "type": "finish",
            "finishReason": "stop",
            "messageMetadata": {"usage": usage, "finishReason": "stop"},
        },
        "[DONE]",
    ]


def test_server_tool_then_client_tool_that_ends_the_turn() -> None:
    out = chunks(
        ToolCallStarted("c1", "calculator"),
        ToolCallArgsDelta("c1", '{"expr":'),
        ToolCallArgsDelta("c1", '"1+1"}'),
        ToolCallReady("c1", "calculator", {"expr": "1+1"}, "server"),
        ToolResult("c1", "calculator", result=2),
        StepFinished(1, "tool_calls"),
        ToolCallStarted("c2", "read_file"),
        ToolCallReady("c2", "read_file", {"path": "a"}, "client"),
        StepFinished(2, "tool_calls"),
        TurnFinished("complete", "tool_calls", {}, pending_call_ids=["c2"]),
    )
    assert out == [
        {"type": "start"},
        {"type": "start-step"},
        {"type": "tool-input-start", "toolCallId": "c1", "toolName": "calculator"},
        {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": '{"expr":'},
        {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": '"1+1"}'},
        {
            "type": "tool-input-available",
            "toolCallId": "c1",
            "toolName": "calculator",
            "input": {"expr": "1+1"},
            "providerExecuted": True,
        },
        {
            "type": "tool-output-available",
            "toolCallId": "c1",
            "output": 2,
            "providerExecuted": True,
        },
        {"type": "finish-step"},
        {"type": "start-step"},
        {"type": "tool-input-start", "toolCallId": "c2", "toolName": "read_file"},
        {
            "type": "tool-input-available",
            "toolCallId": "c2",
            "toolName": "read_file",
            "input": {"path": "a"},
            "providerExecuted": False,
        },
        {"type": "finish-step"},
        {
            "type": "finish",
            "finishReason": "tool-calls",
            "messageMetadata": {"finishReason": "tool_calls", "pendingToolCallIds": ["c2"]},
        },
        "[DONE]",
    ]


def test_a_rejected_call_is_an_input_error_and_an_output_error() -> None:
    out = chunks(
        ToolCallStarted("c1", "nope"),
        ToolCallReady("c1", "nope", {}, "server", problem="unknown tool 'nope'"),
        ToolResult("c1", "nope", error="unknown tool 'nope'", error_code="unknown_tool"),
    )
    assert out[3]["type"] == "tool-input-error"
    assert out[3]["errorText"] == "unknown tool 'nope'"
    assert out[4] == {
        "type": "tool-output-error",
        "toolCallId": "c1",
        "errorText": "unknown tool 'nope'",
        "providerExecuted": True,
    }


def test_cancel_is_an_abort_and_a_failure_is_an_error() -> None:
    cancelled = chunks(TextDelta("a"), TurnFinished("cancelled", "cancelled", {}))
    assert [c if isinstance(c, str) else c["type"] for c in cancelled] == [
        "start",
        "start-step",
        "text-start",
        "text-delta",
        "text-end",
        "finish-step",
        "abort",
        "[DONE]",
    ]
    failed = chunks(TurnFailed("upstream_timeout", "The model server timed out."))
    assert failed[1:] == [
        {"type": "error", "errorText": "upstream_timeout: The model server timed out."},
        {"type": "finish", "finishReason": "error"},
        "[DONE]",
    ]


@pytest.mark.parametrize("text", ["plain", 'quo"te', "new\nline", "ünï 🎉", "\\back", "\x01"])
def test_the_text_delta_fast_path_is_the_chunk_frame(text: str) -> None:
    assert text_delta_frame("text-x-1", text) == chunk_frame(
        {"type": "text-delta", "id": "text-x-1", "delta": text}
    )


def _chat(*messages: dict, trigger: str = "submit-message") -> ChatRequest:
    return ChatRequest.model_validate({"id": "s1", "messages": list(messages), "trigger": trigger})


USER = {
    "id": "u1",
    "role": "user",
    "parts": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
}


def test_a_user_message_is_its_text_parts_with_its_id_as_the_idempotency_key() -> None:
    assert ai_sdk_turn_inputs(_chat(USER), pending_call_ids=()) == [UserInput("s1", "ab", "u1")]


def test_regenerate() -> None:
    chat = _chat(USER, trigger="regenerate-message")
    assert ai_sdk_turn_inputs(chat, pending_call_ids=()) == [Regenerate("s1")]


def test_only_outputs_of_pending_calls_are_submitted() -> None:
    assistant = {
        "id": "a1",
        "role": "assistant",
        "parts": [
            {"type": "step-start"},
            {
                "type": "tool-calculator",
                "toolCallId": "old",
                "state": "output-available",
                "output": 1,
            },
            {"type": "step-start"},
            {
                "type": "tool-read_file",
                "toolCallId": "c1",
                "state": "output-available",
                "output": "x",
            },
            {
                "type": "dynamic-tool",
                "toolCallId": "c2",
                "state": "output-error",
                "errorText": "no",
            },
            {"type": "tool-read_file", "toolCallId": "c3", "state": "input-available"},
        ],
    }
    inputs = ai_sdk_turn_inputs(_chat(USER, assistant), pending_call_ids={"c1", "c2", "c3"})
    assert inputs == [
        ToolOutput("s1", "c1", "x"),
        ToolOutput("s1", "c2", '{"error":"no"}', "tool_error"),
    ]
    with pytest.raises(InvalidRequest):
        ai_sdk_turn_inputs(_chat(USER, assistant), pending_call_ids=())


def test_a_user_message_without_text_is_rejected() -> None:
    empty = {"id": "u2", "role": "user", "parts": [{"type": "file", "url": "x"}]}
    with pytest.raises(InvalidRequest):
        ai_sdk_turn_inputs(_chat(empty), pending_call_ids=())
