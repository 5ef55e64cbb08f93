"""Tool approval over real HTTP: the pause, approve, deny, a mixed step, errors, two workers."""

from pathlib import Path

import httpx
import pytest

from sessions.models import Message, Session, ToolApproval
from tests.e2e.conftest import APPROVAL_TOOLS
from tests.servers import DevLLM, Runtime
from tests.sse import Frame, events, post_stream

pytestmark = pytest.mark.e2e


@pytest.fixture
def rt(approval_runtime: Runtime) -> Runtime:
    return approval_runtime


def data(frames: list[Frame]) -> list:
    return [f.data for f in frames if f.data != "[DONE]"]


def of_type(events: list, kind: str) -> list[dict]:
    return [e["metadata"] for e in events if e["type"] == kind and not e["is_final"]]


def text(events: list) -> str:
    return "".join(e["token"] for e in events if e["type"] == "assistant_message")


def decide(client: httpx.Client, session_id: str, call_id: str, **answer: object) -> list:
    body = {"session_id": session_id, "type": "tool_approval", "call_id": call_id, **answer}
    return data(post_stream(client, body))


def call(name: str, arguments: dict, call_id: str) -> dict:
    return {"name": name, "arguments": arguments, "id": call_id}


def test_an_approved_call_runs_and_the_answer_streams_on(rt: Runtime, devllm: DevLLM) -> None:
    message = {"session_id": "ok", "content": '/tool calculator {"expr": "6*7"}'}
    paused = data(post_stream(rt.client, message))
    [ready] = of_type(paused, "tool_call")
    call_id = ready["call_id"]
    assert ready == {
        "call_id": call_id,
        "tool_name": "calculator",
        "arguments": {"expr": "6*7"},
        "executor": "server",
        "approval": "required",
    }
    assert of_type(paused, "tool_result") == []
    assert paused[-1] == {
        "token": "",
        "is_final": True,
        "type": "tool_call",
        "metadata": {"pending_call_ids": [], "awaiting_approval": [call_id]},
    }
    assert Session.objects.get(session_id="ok").active_turn_id is None

    body = {"session_id": "ok", "type": "tool_approval", "call_id": call_id, "approved": True}
    with rt.client.stream(
        "POST", "/agent/message/stream", json=body, headers={"X-Request-ID": "approve-ok-1"}
    ) as response:
        assert response.status_code == 200
        answer = data(events(response))
    assert answer[0]["type"] == "tool_result"
    assert answer[0]["metadata"] == {"call_id": call_id, "tool_name": "calculator", "result": 42}
    assert text(answer) == f"Tool results: {call_id} returned 42."
    assert answer[-1]["is_final"] is True
    assert answer[-1]["type"] == "assistant_message"
    decision = ToolApproval.objects.get(call_id=call_id)
    assert (decision.decision, decision.request_id) == ("approved", "approve-ok-1")
    assert [m.role for m in Message.objects.filter(session__session_id="ok").order_by("seq")] == [
        "user",
        "assistant",
        "tool",
        "assistant",
    ]


def test_a_denied_call_is_answered_with_the_reason(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script({"tool_calls": [call("guarded", {"text": "secret"}, "g1")]})
    paused = data(post_stream(rt.client, {"session_id": "no", "content": "go"}))
    assert paused[-1]["metadata"] == {"pending_call_ids": [], "awaiting_approval": ["g1"]}

    answer = decide(rt.client, "no", "g1", approved=False, reason="not today")
    assert answer[0]["metadata"] == {
        "call_id": "g1",
        "tool_name": "guarded",
        "error": "denied by the user: not today",
    }
    assert text(answer) == (
        'Tool results: g1 returned {"error":"denied by the user","reason":"not today"}.'
    )
    tool = Message.objects.get(session__session_id="no", role="tool")
    assert tool.error_code == "denied"
    assert ToolApproval.objects.get(call_id="g1").reason == "not today"


def test_a_mixed_step_runs_at_once_what_needs_no_approval(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script(
        {
            "tool_calls": [
                call("echo", {"text": "now"}, "e1"),
                call("guarded", {"text": "later"}, "g1"),
                call("calculator", {"expr": "1+1"}, "k1"),
            ]
        }
    )
    paused = data(post_stream(rt.client, {"session_id": "mix", "content": "go"}))
    assert [c.get("approval") for c in of_type(paused, "tool_call")] == [
        None,
        "required",
        "required",
    ]
    assert of_type(paused, "tool_result") == [
        {"call_id": "e1", "tool_name": "echo", "result": "now"}
    ]
    assert paused[-1]["metadata"]["awaiting_approval"] == ["g1", "k1"]

    first = decide(rt.client, "mix", "k1", approved=True)
    assert first == [
        {
            "token": "",
            "is_final": True,
            "type": "tool_call",
            "metadata": {"pending_call_ids": [], "awaiting_approval": ["g1"]},
        }
    ]
    last = decide(rt.client, "mix", "g1", approved=True)
    ran = {r["call_id"]: r["result"] for r in of_type(last, "tool_result")}
    assert set(ran) == {"k1", "g1"}
    assert (ran["k1"], ran["g1"]["text"]) == (2, "later")
    # The model read the three results, in call order.
    assert text(last).startswith('Tool results: e1 returned now; g1 returned {"text":"later",')
    assert text(last).endswith("; k1 returned 2.")
    upstream_tools = [
        m["tool_call_id"] for m in devllm.requests()[1]["body"]["messages"] if m["role"] == "tool"
    ]
    assert sorted(upstream_tools) == ["e1", "g1", "k1"]


def test_answers_that_do_not_fit_are_refused_and_change_nothing(
    rt: Runtime, devllm: DevLLM
) -> None:
    devllm.script(
        {"tool_calls": [call("echo", {"text": "x"}, "e1"), call("guarded", {"text": "y"}, "g1")]}
    )
    post_stream(rt.client, {"session_id": "err", "content": "go"})
    before = Message.objects.filter(session__session_id="err").count()

    def post(**body: object) -> httpx.Response:
        return rt.client.post(
            "/agent/message/stream",
            json={"session_id": "err", "type": "tool_approval", **body},
        )

    forged = post(call_id="e1", approved=True)  # ran without asking
    assert (forged.status_code, forged.json()["code"]) == (404, "tool_call_not_found")
    unknown = post(call_id="zz", approved=True)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "tool_call_not_found")
    result_instead = rt.client.post(
        "/agent/message/stream",
        json={"session_id": "err", "type": "tool_result", "call_id": "g1", "result": "fake"},
    )
    assert (result_instead.status_code, result_instead.json()["code"]) == (
        404,
        "tool_call_not_found",
    )
    missing = post(call_id="g1")
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "approved"
    not_a_bool = post(call_id="g1", approved="yes")
    assert not_a_bool.status_code == 422
    assert Message.objects.filter(session__session_id="err").count() == before
    assert ToolApproval.objects.get(call_id="g1").decision == ""

    decide(rt.client, "err", "g1", approved=True)
    again = post(call_id="g1", approved=False)
    assert (again.status_code, again.json()["code"]) == (409, "tool_call_answered")


def test_a_new_message_closes_a_waiting_approval(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script({"tool_calls": [call("guarded", {"text": "x"}, "g1")]})
    post_stream(rt.client, {"session_id": "moved-on", "content": "go"})
    post_stream(rt.client, {"session_id": "moved-on", "content": "something else"})
    closed = Message.objects.get(session__session_id="moved-on", role="tool", tool_call_id="g1")
    assert closed.error_code == "not_executed"
    late = rt.client.post(
        "/agent/message/stream",
        json={"session_id": "moved-on", "type": "tool_approval", "call_id": "g1", "approved": True},
    )
    assert (late.status_code, late.json()["code"]) == (409, "tool_call_answered")


def test_the_approval_may_land_on_another_worker(  # type: ignore[no-untyped-def]
    runtime_factory, devllm: DevLLM, transactional_db: None
) -> None:
    """The run pauses in one worker process and the approved call runs in the other: the
    pause is in the database, not in a worker's memory."""
    rt = runtime_factory(workers=2, tools=APPROVAL_TOOLS)
    for attempt in range(40):
        session_id = f"two-workers-{attempt}"
        devllm.script(
            {"tool_calls": [call("whoami", {}, "w1"), call("guarded", {"text": "t"}, "g1")]}
        )
        with httpx.Client(base_url=rt.url, headers={"X-Internal-Auth": rt.key}) as client:
            paused = data(post_stream(client, {"session_id": session_id, "content": "go"}))
        [paused_in] = [r["result"] for r in of_type(paused, "tool_result")]
        assert paused[-1]["metadata"]["awaiting_approval"] == ["g1"]
        with httpx.Client(base_url=rt.url, headers={"X-Internal-Auth": rt.key}) as client:
            answer = decide(client, session_id, "g1", approved=True)
        [ran] = of_type(answer, "tool_result")
        assert ran["result"]["text"] == "t"
        assert answer[-1]["type"] == "assistant_message"
        if ran["result"]["pid"] != paused_in:
            break
    else:
        pytest.fail("40 approvals all landed on the worker that paused the run")
    assert paused_in in rt_worker_pids(rt)
    assert ran["result"]["pid"] in rt_worker_pids(rt)


def rt_worker_pids(rt: Runtime) -> set[int]:
    """The pids of the runtime's worker processes (children of uvicorn's supervisor)."""
    children = Path(f"/proc/{rt.process.pid}/task/{rt.process.pid}/children").read_text()
    return {int(pid) for pid in children.split()}
