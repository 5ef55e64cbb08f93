"""Tool approval in AG-UI over real HTTP: the interrupt outcome on ``RUN_FINISHED``, and the
next run's ``resume`` (``@ag-ui/client``'s ``HttpAgent`` runs the same in tests/clients)."""

import uuid
from typing import Any

import httpx
import pytest

from sessions.models import Message, ToolApproval
from tests.servers import DevLLM, Runtime
from tests.sse import events, iter_frames

pytestmark = pytest.mark.e2e

APPROVAL_SCHEMA = {
    "type": "object",
    "properties": {
        "approved": {"type": "boolean"},
        "reason": {"type": "string", "maxLength": 10000},
    },
    "required": ["approved"],
    "additionalProperties": False,
}


@pytest.fixture
def rt(approval_runtime: Runtime) -> Runtime:
    return approval_runtime


def body(thread: str, *messages: dict, **extra: Any) -> dict:
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    return {"threadId": thread, "runId": run_id, "messages": list(messages), **extra}


def user(content: str) -> dict:
    return {"id": f"u-{uuid.uuid4().hex[:8]}", "role": "user", "content": content}


def run(client: httpx.Client, payload: dict, headers: dict | None = None) -> list[dict]:
    with client.stream("POST", "/agent/ag-ui", json=payload, headers=headers or {}) as response:
        assert response.status_code == 200, response.read()
        return [frame.data for frame in events(response)]


def resolved(call_id: str, **payload: Any) -> dict:
    return {"interruptId": call_id, "status": "resolved", "payload": payload}


def of_type(out: list[dict], kind: str) -> list[dict]:
    return [e for e in out if e["type"] == kind]


def text(out: list[dict]) -> str:
    return "".join(e["delta"] for e in of_type(out, "TEXT_MESSAGE_CONTENT"))


def call(name: str, arguments: dict, call_id: str) -> dict:
    return {"name": name, "arguments": arguments, "id": call_id}


def test_an_interrupt_then_an_approving_resume(rt: Runtime, devllm: DevLLM) -> None:
    question = user('/tool calculator {"expr": "6*7"}')
    paused = run(rt.client, body("agui-ok", question))
    [end] = of_type(paused, "TOOL_CALL_END")
    call_id = end["toolCallId"]
    assert of_type(paused, "TOOL_CALL_RESULT") == []
    finished = paused[-1]
    assert finished["type"] == "RUN_FINISHED"
    assert finished["outcome"] == {
        "type": "interrupt",
        "interrupts": [
            {
                "id": call_id,
                "reason": "tool_approval",
                "message": "Tool calculator waits for your approval.",
                "toolCallId": call_id,
                "responseSchema": APPROVAL_SCHEMA,
                "metadata": {"toolName": "calculator", "arguments": {"expr": "6*7"}},
            }
        ],
    }
    assert finished["usage"][0]["totalTokens"] > 0

    # The conversation so far, as HttpAgent posts it: the question, the call (no result yet).
    asked = {
        "id": end["toolCallId"] + "-msg",
        "role": "assistant",
        "toolCalls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": "calculator", "arguments": '{"expr": "6*7"}'},
            }
        ],
    }
    resume = body("agui-ok", question, asked, resume=[resolved(call_id, approved=True)])
    answer = run(rt.client, resume, headers={"X-Request-ID": "agui-approve-1"})
    assert answer[0]["type"] == "RUN_STARTED"
    [result] = of_type(answer, "TOOL_CALL_RESULT")
    assert (result["toolCallId"], result["content"]) == (call_id, "42")
    assert text(answer) == f"Tool results: {call_id} returned 42."
    assert answer[-1]["type"] == "RUN_FINISHED"
    assert "outcome" not in answer[-1]
    decision = ToolApproval.objects.get(call_id=call_id)
    assert (decision.decision, decision.request_id) == ("approved", "agui-approve-1")


def test_a_denying_resume_gives_the_model_the_reason(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script({"tool_calls": [call("guarded", {"text": "secret"}, "g1")]})
    paused = run(rt.client, body("agui-no", user("go")))
    [interrupt] = paused[-1]["outcome"]["interrupts"]
    assert interrupt["metadata"] == {"toolName": "guarded", "arguments": {"text": "secret"}}

    answer = run(
        rt.client,
        body("agui-no", resume=[resolved("g1", approved=False, reason="not today")]),
    )
    [result] = of_type(answer, "TOOL_CALL_RESULT")
    assert result["content"] == '{"error":"denied by the user: not today"}'
    assert text(answer) == (
        'Tool results: g1 returned {"error":"denied by the user","reason":"not today"}.'
    )
    assert Message.objects.get(session__session_id="agui-no", role="tool").error_code == "denied"
    assert ToolApproval.objects.get(call_id="g1").reason == "not today"


def test_one_resume_answers_a_mixed_step(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script(
        {
            "tool_calls": [
                call("echo", {"text": "now"}, "e1"),
                call("guarded", {"text": "later"}, "g1"),
                call("calculator", {"expr": "1+1"}, "k1"),
            ]
        }
    )
    paused = run(rt.client, body("agui-mix", user("go")))
    assert [r["toolCallId"] for r in of_type(paused, "TOOL_CALL_RESULT")] == ["e1"]
    outcome = paused[-1]["outcome"]
    assert [(i["id"], i["metadata"]["toolName"]) for i in outcome["interrupts"]] == [
        ("g1", "guarded"),
        ("k1", "calculator"),
    ]

    resume = [resolved("g1", approved=False, reason="no"), resolved("k1", approved=True)]
    answer = run(rt.client, body("agui-mix", resume=resume))
    results = of_type(answer, "TOOL_CALL_RESULT")
    # The denial's result comes first (stored with its answer), then the approved call's.
    assert [(r["toolCallId"], r["content"]) for r in results] == [
        ("g1", '{"error":"denied by the user: no"}'),
        ("k1", "2"),
    ]
    assert text(answer) == (
        "Tool results: e1 returned now; "
        'g1 returned {"error":"denied by the user","reason":"no"}; k1 returned 2.'
    )
    assert "outcome" not in answer[-1]
    assert {a.call_id: a.decision for a in ToolApproval.objects.all()} == {
        "g1": "denied",
        "k1": "approved",
    }


def test_a_partial_resume_lists_what_still_waits(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script(
        {"tool_calls": [call("guarded", {"text": "a"}, "g1"), call("guarded", {"text": "b"}, "g2")]}
    )
    run(rt.client, body("agui-part", user("go")))
    first = run(rt.client, body("agui-part", resume=[resolved("g2", approved=True)]))
    assert [e["type"] for e in first] == ["RUN_STARTED", "RUN_FINISHED"]
    [interrupt] = first[-1]["outcome"]["interrupts"]  # from the stored call: its details too
    assert (interrupt["id"], interrupt["metadata"]) == (
        "g1",
        {"toolName": "guarded", "arguments": {"text": "a"}},
    )
    last = run(rt.client, body("agui-part", resume=[{"interruptId": "g1", "status": "cancelled"}]))
    results = {r["toolCallId"]: r["content"] for r in of_type(last, "TOOL_CALL_RESULT")}
    assert results["g1"] == '{"error":"denied by the user"}'  # cancelled: a denial
    assert '"text":"b"' in results["g2"]
    assert "outcome" not in last[-1]


def test_cancelling_with_a_new_message_closes_the_calls(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script({"tool_calls": [call("guarded", {"text": "x"}, "g1")]})
    run(rt.client, body("agui-moved", user("go")))
    cancelled = [{"interruptId": "g1", "status": "cancelled"}]
    answer = run(rt.client, body("agui-moved", user("something else"), resume=cancelled))
    assert "something else" in text(answer)
    closed = Message.objects.get(session__session_id="agui-moved", role="tool")
    assert closed.error_code == "not_executed"
    assert ToolApproval.objects.get(call_id="g1").decision == ""


def test_resumes_that_do_not_fit_are_refused_and_change_nothing(
    rt: Runtime, devllm: DevLLM
) -> None:
    devllm.script(
        {"tool_calls": [call("echo", {"text": "x"}, "e1"), call("guarded", {"text": "y"}, "g1")]}
    )
    run(rt.client, body("agui-err", user("go")))
    before = Message.objects.filter(session__session_id="agui-err").count()

    def post(*resume: dict, messages: tuple = ()) -> httpx.Response:
        return rt.client.post("/agent/ag-ui", json=body("agui-err", *messages, resume=resume))

    forged = post(resolved("e1", approved=True))  # it ran without asking
    assert (forged.status_code, forged.json()["code"]) == (404, "tool_call_not_found")
    # A forged entry beside a good one: refused before the good one is stored.
    mixed = post(resolved("g1", approved=True), resolved("zz", approved=True))
    assert (mixed.status_code, mixed.json()["code"]) == (404, "tool_call_not_found")
    missing = post({"interruptId": "g1", "status": "resolved"})
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "resume.0.payload"
    not_a_bool = post(resolved("g1", approved="yes"))
    assert not_a_bool.status_code == 422
    assert not_a_bool.json()["errors"][0]["field"] == "resume.0.payload.approved"
    twice = post(resolved("g1", approved=True), resolved("g1", approved=False))
    assert (twice.status_code, twice.json()["errors"][0]["field"]) == (
        422,
        "resume.1.interruptId",
    )
    with_message = post(resolved("g1", approved=True), messages=(user("and also"),))
    assert (with_message.status_code, with_message.json()["code"]) == (422, "invalid_request")
    assert Message.objects.filter(session__session_id="agui-err").count() == before
    assert ToolApproval.objects.get(call_id="g1").decision == ""

    run(rt.client, body("agui-err", resume=[resolved("g1", approved=True)]))
    again = post(resolved("g1", approved=False))
    assert (again.status_code, again.json()["code"]) == (409, "tool_call_answered")
    assert again.headers["Content-Type"] == "application/json"


def test_a_resume_while_the_continuation_runs_is_busy(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script(
        {"tool_calls": [call("guarded", {"text": "x"}, "g1")]},
        {"tokens": [f"w{i} " for i in range(200)], "token_delay_ms": 50},
    )
    run(rt.client, body("agui-busy", user("go")))
    resume = body("agui-busy", resume=[resolved("g1", approved=True)])
    with rt.client.stream("POST", "/agent/ag-ui", json=resume) as response:
        frames = iter_frames(response)
        while next(frames).data["type"] != "TEXT_MESSAGE_CONTENT":
            pass
        busy = rt.client.post("/agent/ag-ui", json=resume)
        assert (busy.status_code, busy.json()["code"]) == (409, "session_busy")
