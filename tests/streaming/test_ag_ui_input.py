"""Reading an AG-UI ``RunAgentInput``: what is new in its messages, and its ``resume``."""

import json

import pytest
from pydantic import TypeAdapter, ValidationError

from agent_runtime.errors import InvalidRequest
from agent_runtime.json_body import parse_json_bytes
from streaming.engine.start import Regenerate, ToolDecision, ToolOutput, UserInput
from streaming.protocols.ag_ui_input import RunInput, ag_ui_turn_inputs


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


ASKED = {"id": "a1", "role": "assistant", "toolCalls": []}


def resolved(call_id: str, payload: object) -> dict:
    return {"interruptId": call_id, "status": "resolved", "payload": payload}


def test_resume_entries_are_decisions_on_the_calls_they_name() -> None:
    body = _run(
        {"id": "u1", "role": "user", "content": "hi"},
        ASKED,
        resume=[
            resolved("k1", {"approved": True}),
            resolved("g1", {"approved": False, "reason": "not today"}),
            {"interruptId": "g2", "status": "cancelled"},
        ],
    )
    assert ag_ui_turn_inputs(body, pending_call_ids=()) == [
        ToolDecision("s1", "k1", approved=True),
        ToolDecision("s1", "g1", approved=False, reason="not today"),
        ToolDecision("s1", "g2", approved=False),  # cancelled: a denial without a reason
    ]


def test_a_resume_without_messages_and_with_results_of_frontend_tools() -> None:
    only_resume = _run(resume=[resolved("k1", {"approved": True})])
    assert ag_ui_turn_inputs(only_resume, pending_call_ids=()) == [
        ToolDecision("s1", "k1", approved=True)
    ]
    body = _run(
        ASKED,
        {"id": "t1", "role": "tool", "toolCallId": "o1", "content": "tab opened"},
        tools=[OPEN_TAB],
        resume=[resolved("k1", {"approved": True})],
    )
    output, decision = ag_ui_turn_inputs(body, pending_call_ids={"o1", "k1"})
    assert output == ToolOutput("s1", "o1", "tab opened", extra_tools=output.extra_tools)  # type: ignore[union-attr]
    assert isinstance(decision, ToolDecision)
    # The run's frontend tools are offered again in the continuation the decision opens.
    assert [t.name for t in decision.extra_tools] == ["open_tab"]


def test_entries_for_calls_that_do_not_wait_come_first() -> None:
    """So that the server refuses the forged or unknown one before storing any other."""
    body = _run(
        resume=[
            resolved("g1", {"approved": True}),
            resolved("zz", {"approved": True}),
            resolved("g2", {"approved": False}),
        ]
    )
    ordered = ag_ui_turn_inputs(body, pending_call_ids=(), awaiting_approval={"g1", "g2"})
    assert [d.call_id for d in ordered] == ["zz", "g1", "g2"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (None, "resume.0.payload"),
        ({}, "resume.0.payload.approved"),
        ({"approved": "yes"}, "resume.0.payload.approved"),
        ({"approved": 1}, "resume.0.payload.approved"),
        ({"approved": True, "reason": 7}, "resume.0.payload.reason"),
        ({"approved": True, "arguments": {}}, "resume.0.payload.arguments"),
    ],
)
def test_a_payload_that_is_not_a_decision_is_refused(payload: object, field: str) -> None:
    entry = {"interruptId": "k1", "status": "resolved"}
    if payload is not None:
        entry["payload"] = payload
    body = {"threadId": "s1", "runId": "r1", "messages": [ASKED], "resume": [entry]}
    with pytest.raises(InvalidRequest) as refused:
        parse_json_bytes(json.dumps(body).encode(), TypeAdapter(RunInput))
    assert refused.value.errors[0]["field"] == field  # type: ignore[index]


def test_the_schema_requires_a_decision_only_of_a_resolved_entry() -> None:
    """What the OpenAPI document shows a client: a ``resolved`` entry's payload is a decision."""
    schema = TypeAdapter(RunInput).json_schema(ref_template="{model}")
    [entries, _null] = schema["properties"]["resume"]["anyOf"]
    kinds = {
        schema["$defs"][ref]["properties"]["status"]["const"]: schema["$defs"][ref]
        for ref in entries["items"]["discriminator"]["mapping"].values()
    }
    assert kinds["resolved"]["properties"]["payload"] == {"$ref": "ApprovalAnswer"}
    assert "payload" in kinds["resolved"]["required"]
    assert "payload" not in kinds["cancelled"]["required"]
    answer = schema["$defs"]["ApprovalAnswer"]
    assert (answer["required"], answer["additionalProperties"]) == (["approved"], False)


def test_a_call_answered_twice_in_one_resume_is_refused() -> None:
    twice = [resolved("k1", {"approved": True}), {"interruptId": "k1", "status": "cancelled"}]
    with pytest.raises(InvalidRequest) as refused:
        ag_ui_turn_inputs(_run(resume=twice), pending_call_ids=())
    assert refused.value.errors[0]["field"] == "resume.1.interruptId"  # type: ignore[index]


def test_a_new_user_message_goes_only_with_cancelled_interrupts() -> None:
    """Cancelling every interrupt and saying something else: the message is the turn (it
    closes the waiting calls as not executed). Answering them and saying something else
    in the same run is refused: one of the two would be lost."""
    new = {"id": "u2", "role": "user", "content": "something else"}
    cancelled = _run(ASKED, new, resume=[{"interruptId": "k1", "status": "cancelled"}])
    assert ag_ui_turn_inputs(cancelled, pending_call_ids=()) == [
        UserInput("s1", "something else", "u2")
    ]
    answered = _run(ASKED, new, resume=[resolved("k1", {"approved": False})])
    with pytest.raises(InvalidRequest, match="cannot also post a new user message"):
        ag_ui_turn_inputs(answered, pending_call_ids=())
