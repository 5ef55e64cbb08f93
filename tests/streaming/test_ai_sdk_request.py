"""Reading what the AI SDK's transport posts: what is new in the chat, as engine inputs."""

import pytest
from pydantic import ValidationError

from agent_runtime.errors import InvalidRequest
from streaming.engine.start import Regenerate, ToolDecision, ToolOutput, UserInput
from streaming.protocols.ai_sdk_request import ChatRequest, ai_sdk_turn_inputs


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


def _tool(call_id: str, state: str, **fields: object) -> dict:
    return {"type": "tool-guarded", "toolCallId": call_id, "state": state, "input": {}, **fields}


def test_approval_responses_of_undecided_calls_are_decisions_in_the_parts_order() -> None:
    assistant = {
        "id": "a1",
        "role": "assistant",
        "parts": [
            {"type": "step-start"},
            _tool("g1", "approval-responded", approval={"id": "g1", "approved": True}),
            _tool("c1", "output-available", output="x"),
            _tool(
                "g2",
                "approval-responded",
                approval={"id": "g2", "approved": False, "reason": "not today"},
            ),
            # Decided in an earlier request: the call no longer waits for a decision.
            _tool("g0", "approval-responded", approval={"id": "g0", "approved": True}),
            _tool("g3", "approval-requested", approval={"id": "g3"}),
        ],
    }
    inputs = ai_sdk_turn_inputs(
        _chat(USER, assistant), pending_call_ids={"c1"}, undecided_call_ids={"g1", "g2", "g3"}
    )
    assert inputs == [
        ToolDecision("s1", "g1", True, ""),
        ToolOutput("s1", "c1", "x"),
        ToolDecision("s1", "g2", False, "not today"),
    ]


def test_the_server_says_which_calls_wait_for_a_decision_or_an_output() -> None:
    approved = _tool("g1", "approval-responded", approval={"id": "g1", "approved": True})
    ran = _tool("g1", "output-available", output="claimed")
    for part in (approved, ran):
        chat = _chat(USER, {"id": "a1", "role": "assistant", "parts": [part]})
        # A call that never asked for approval, or not one whose output the server awaits.
        with pytest.raises(InvalidRequest):
            ai_sdk_turn_inputs(chat, pending_call_ids=(), undecided_call_ids=())


def test_an_approval_response_without_the_decision_is_invalid() -> None:
    part = _tool("g1", "approval-responded", approval={"id": "g1"})
    chat = _chat(USER, {"id": "a1", "role": "assistant", "parts": [part]})
    with pytest.raises(InvalidRequest) as caught:
        ai_sdk_turn_inputs(chat, pending_call_ids=(), undecided_call_ids={"g1"})
    assert caught.value.errors[0]["field"] == "messages.parts.approval.approved"


def test_an_approval_reason_has_the_limit_of_every_wire_format() -> None:
    """At most 10,000 characters, as the seed format's and AG-UI's decisions."""

    def decided(reason: str) -> dict:
        approval = {"id": "g1", "approved": False, "reason": reason}
        return {
            "id": "a1",
            "role": "assistant",
            "parts": [_tool("g1", "approval-responded", approval=approval)],
        }

    with pytest.raises(ValidationError, match="reason"):
        _chat(USER, decided("x" * 10_001))
    _chat(USER, decided("x" * 10_000))


def test_on_disconnect_continues_unless_asked() -> None:
    assert _chat(USER).on_disconnect == "continue"
    asked = ChatRequest.model_validate({"id": "s1", "messages": [USER], "onDisconnect": "cancel"})
    assert asked.on_disconnect == "cancel"
