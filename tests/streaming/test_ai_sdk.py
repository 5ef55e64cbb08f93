"""The AI SDK encoder, on scripted events (the SDK's own client reads a
live stream in tests/e2e/test_clients.py)."""

from functools import partial

import pytest

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
from streaming.protocols.ai_sdk import ai_sdk_stream, chunk_frame, text_delta_frame
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


def test_a_call_that_waits_for_approval_asks_for_it_and_the_turn_finishes() -> None:
    out = chunks(
        ToolCallStarted("e1", "echo"),
        ToolCallReady("e1", "echo", {"text": "now"}, "server"),
        ToolCallStarted("g1", "guarded"),
        ToolCallReady("g1", "guarded", {"text": "x"}, "server", approval_required=True),
        ToolResult("e1", "echo", result="now"),
        StepFinished(1, "tool_calls"),
        TurnFinished("complete", "tool_calls", {}, pending_call_ids=[], awaiting_approval=["g1"]),
    )
    assert out[4:] == [
        {"type": "tool-input-start", "toolCallId": "g1", "toolName": "guarded"},
        {
            "type": "tool-input-available",
            "toolCallId": "g1",
            "toolName": "guarded",
            "input": {"text": "x"},
            "providerExecuted": True,
        },
        {"type": "tool-approval-request", "approvalId": "g1", "toolCallId": "g1"},
        {
            "type": "tool-output-available",
            "toolCallId": "e1",
            "output": "now",
            "providerExecuted": True,
        },
        {"type": "finish-step"},
        {
            "type": "finish",
            "finishReason": "tool-calls",
            "messageMetadata": {"finishReason": "tool_calls", "awaitingApproval": ["g1"]},
        },
        "[DONE]",
    ]


def test_a_denial_is_a_denied_output_and_an_approved_call_its_output() -> None:
    out = chunks(
        ToolResult("g1", "guarded", error="denied by the user: no", error_code="denied"),
        ToolResult("k1", "calculator", result=2),
        TextDelta("ok"),
        StepFinished(1, "stop"),
        TurnFinished("complete", "stop", {}),
    )
    assert out[1:4] == [
        {"type": "start-step"},
        {"type": "tool-output-denied", "toolCallId": "g1"},
        {
            "type": "tool-output-available",
            "toolCallId": "k1",
            "output": 2,
            "providerExecuted": True,
        },
    ]


def test_a_resumed_stream_leaves_out_the_outcomes_of_calls_it_did_not_announce() -> None:
    events = (
        ToolResult("k1", "calculator", result=2),
        ToolCallStarted("c2", "echo"),
        ToolCallReady("c2", "echo", {"text": "a"}, "server"),
        ToolResult("c2", "echo", result="a"),
        StepFinished(1, "tool_calls"),
        TurnFinished("complete", "stop", {}),
    )
    resumed = decoded_frames(partial(ai_sdk_stream, resumed=True), *events)
    outputs = [c["toolCallId"] for c in resumed if c != "[DONE]" and "output" in c["type"]]
    assert outputs == ["c2"]
    live = [c["toolCallId"] for c in chunks(*events) if c != "[DONE]" and "output" in c["type"]]
    assert live == ["k1", "c2"]
