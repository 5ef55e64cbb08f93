"""The AG-UI encoder, on scripted events (``HttpAgent`` reads a live stream in
tests/e2e/test_clients.py; the request is read in test_ag_ui_input.py)."""

import pytest
from ag_ui.core import (
    BaseEvent,
    RunFinishedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)

from sessions.records import AwaitingApproval
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
from streaming.protocols.ag_ui import (
    ag_ui_stream,
    event_frame,
    text_content_frame,
    tool_args_frame,
    wire_frame,
)
from tests.streaming.encoded import decoded_frames


def decoded(*events: TurnEvent, waiting: tuple[AwaitingApproval, ...] = ()) -> list[dict | str]:
    return decoded_frames(
        lambda e: ag_ui_stream(e, thread_id="t", run_id="r", waiting=waiting), *events
    )


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


APPROVAL_SCHEMA = {
    "type": "object",
    "properties": {
        "approved": {"type": "boolean"},
        "reason": {"type": "string", "maxLength": 10000},
    },
    "required": ["approved"],
    "additionalProperties": False,
}


def test_calls_that_wait_for_approval_end_the_run_with_the_interrupt_outcome() -> None:
    out = decoded(
        ToolCallStarted("e1", "echo"),
        ToolCallReady("e1", "echo", {"text": "now"}, "server"),
        ToolCallStarted("k1", "calculator"),
        ToolCallArgsDelta("k1", '{"expr":"6*7"}'),
        ToolCallReady("k1", "calculator", {"expr": "6*7"}, "server", approval_required=True),
        ToolCallStarted("o1", "open_tab"),
        ToolCallReady("o1", "open_tab", {"url": "u"}, "client"),
        ToolResult("e1", "echo", result="now"),
        StepFinished(1, "tool_calls"),
        TurnFinished("complete", "tool_calls", {"total_tokens": 5}, ["o1"], ["k1"]),
    )
    assert [e["toolCallId"] for e in out if e["type"] == "TOOL_CALL_RESULT"] == ["e1"]
    finished = out[-1]
    assert finished["outcome"] == {
        "type": "interrupt",
        "interrupts": [
            {
                "id": "k1",
                "reason": "tool_approval",
                "message": "Tool calculator waits for your approval.",
                "toolCallId": "k1",
                "responseSchema": APPROVAL_SCHEMA,
                "metadata": {"toolName": "calculator", "arguments": {"expr": "6*7"}},
            }
        ],
    }
    assert finished["usage"] == [{"totalTokens": 5}]
    # The package's own model reads it back: the outcome is the protocol's, not an extension.
    parsed = RunFinishedEvent.model_validate(finished)
    assert parsed.outcome.interrupts[0].tool_call_id == "k1"  # type: ignore[union-attr]


def test_calls_still_waiting_from_an_earlier_run_are_listed_with_their_details() -> None:
    """A resume that answers some of the calls: the others, whose events this run does not
    repeat, are interrupts again, from what the view read before the run (``waiting``)."""
    earlier = (
        AwaitingApproval("g1", "guarded", {"text": "a"}),
        AwaitingApproval("g2", "guarded", {"text": "b"}),
    )
    out = decoded(
        ToolResult("g2", "guarded", error="denied by the user", error_code="denied"),
        TurnFinished("complete", "tool_calls", {}, [], ["g1", "g9"]),
        waiting=earlier,
    )
    assert out[1] == {
        "type": "TOOL_CALL_RESULT",
        "messageId": out[1]["messageId"],
        "toolCallId": "g2",
        "content": '{"error":"denied by the user"}',
        "role": "tool",
    }
    g1, g9 = out[-1]["outcome"]["interrupts"]
    assert g1["metadata"] == {"toolName": "guarded", "arguments": {"text": "a"}}
    # Known by its id only (a concurrent answer changed the step): still a valid interrupt.
    assert g9 == {"id": "g9", "reason": "tool_approval", "toolCallId": "g9"}


def test_a_run_that_waits_only_for_frontend_tools_is_a_success() -> None:
    out = decoded(TurnFinished("complete", "tool_calls", {}, ["o1"], []))
    assert "outcome" not in out[-1]
