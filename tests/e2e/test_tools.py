"""The tool loop over real HTTP: server-side and client-side tools, repair, limits, budget."""

import json

import pytest
from django.utils import timezone

from sessions.models import Message, Session
from tests.servers import DevLLM, Runtime
from tests.sse import Frame, post_stream, text_of

pytestmark = pytest.mark.e2e

TOOLS = ",".join(
    [
        "streaming.tools.builtin.echo",
        "streaming.tools.builtin.calculator",
        "streaming.tools.builtin.read_file",
        "tests.tools.boom",
        "tests.tools.slow",
        "tests.tools.open_editor",
    ]
)


@pytest.fixture(scope="module")
def tools_runtime(runtime_factory) -> Runtime:  # type: ignore[no-untyped-def]
    return runtime_factory(tools=TOOLS, tool_timeout_seconds=0.5, tool_max_steps=3)


@pytest.fixture
def rt(tools_runtime: Runtime, devllm: DevLLM, transactional_db: None) -> Runtime:
    return tools_runtime


def data(frames: list[Frame]) -> list:
    return [f.data for f in frames]


def stored(session_id: str) -> list[tuple]:
    return [
        (m.role, m.content, m.tool_call_id, m.status)
        for m in Message.objects.filter(session__session_id=session_id).order_by("seq")
    ]


def call(name: str, arguments, call_id: str, **extra) -> dict:  # type: ignore[no-untyped-def]
    return {"name": name, "arguments": arguments, "id": call_id, **extra}


def test_server_tool_round_trip(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script({"tool_calls": [call("echo", {"text": "hi"}, "c1")]}, {"content": "Done."})
    frames = post_stream(rt.client, {"session_id": "echo", "content": "say hi"})
    events = data(frames)
    assert events[0] == {
        "token": "",
        "is_final": False,
        "type": "tool_call",
        "metadata": {
            "call_id": "c1",
            "tool_name": "echo",
            "arguments": {"text": "hi"},
            "executor": "server",
        },
    }
    assert events[1] == {
        "token": "",
        "is_final": False,
        "type": "tool_result",
        "metadata": {"call_id": "c1", "tool_name": "echo", "result": "hi"},
    }
    assert events[2]["token"] == "Done."
    assert events[3]["is_final"] is True
    assert events[3]["type"] == "assistant_message"
    assert events[4] == "[DONE]"
    # The turn's events are counted from 1 after message 1's id base; this format does not show
    # the call's start (1), its argument deltas (2) or the ends of model steps (5, 7).
    assert [f.id for f in frames[:-1]] == [1000000003, 1000000004, 1000000006, 1000000008]

    first, second = devllm.requests()
    echo_schema = next(t for t in first["body"]["tools"] if t["function"]["name"] == "echo")
    assert echo_schema["function"]["parameters"]["properties"]["text"]["type"] == "string"
    assert echo_schema["function"]["parameters"]["required"] == ["text"]
    assert second["body"]["messages"][1:] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "echo", "arguments": '{"text":"hi"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "hi"},
    ]
    assert stored("echo") == [
        ("user", "say hi", None, "complete"),
        ("assistant", "", None, "complete"),
        ("tool", "hi", "c1", "complete"),
        ("assistant", "Done.", None, "complete"),
    ]
    assistant = Message.objects.get(session__session_id="echo", seq=2)
    assert assistant.tool_calls[0]["function"]["name"] == "echo"
    assert Session.objects.get(session_id="echo").active_turn_id is None


def test_two_parallel_calls_in_one_step(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script(
        {
            "tool_calls": [
                call("slow", {"seconds": 0.2}, "a"),
                call("calculator", {"expr": "2*(3+4)"}, "b"),
            ]
        },
        {"content": "Both done."},
    )
    events = data(post_stream(rt.client, {"session_id": "par", "content": "go"}))
    assert [
        e["metadata"]["call_id"] for e in events if e != "[DONE]" and e["type"] == "tool_call"
    ] == ["a", "b"]
    results = [e["metadata"] for e in events if e != "[DONE]" and e["type"] == "tool_result"]
    # They ran concurrently: the quick calculator finished first, its result was not held back.
    assert results == [
        {"call_id": "b", "tool_name": "calculator", "result": 14},
        {"call_id": "a", "tool_name": "slow", "result": "woke up"},
    ]
    # Stored (and replayed upstream) in call order.
    assert [
        m["tool_call_id"] for m in devllm.requests()[1]["body"]["messages"] if m["role"] == "tool"
    ] == ["a", "b"]
    assert [r[2] for r in stored("par") if r[0] == "tool"] == ["a", "b"]


def test_fragmented_arguments_are_assembled(rt: Runtime, devllm: DevLLM) -> None:
    text = "a long argument, split into many pieces " * 5
    devllm.script(
        {"tool_calls": [call("echo", {"text": text}, "f1", fragments=40)]}, {"content": "ok"}
    )
    events = data(post_stream(rt.client, {"session_id": "frag", "content": "go"}))
    assert events[0]["metadata"]["arguments"] == {"text": text}
    assert events[1]["metadata"]["result"] == text
    assert ("tool", text, "f1", "complete") in stored("frag")


def test_invalid_arguments_go_back_to_the_model_which_recovers(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script(
        {
            "tool_calls": [
                call("calculator", {"expression": "1+1"}, "bad1"),
                call("echo", '{"text": ', "bad2"),
            ]
        },
        {"tool_calls": [call("calculator", {"expr": "1+1"}, "good")]},
        {"content": "It is 2."},
    )
    events = data(post_stream(rt.client, {"session_id": "recover", "content": "1+1?"}))
    errors = {
        e["metadata"]["call_id"]: e["metadata"]["error"]
        for e in events
        if e != "[DONE]" and e["type"] == "tool_result" and "error" in e["metadata"]
    }
    assert errors["bad1"].startswith("invalid arguments: expr: Field required")
    assert errors["bad2"].startswith("invalid arguments")
    assert events[1]["metadata"]["arguments"] == '{"text": '  # invalid JSON is shown as sent
    assert {"call_id": "good", "tool_name": "calculator", "result": 2} in [
        e.get("metadata") for e in events if e != "[DONE]"
    ]
    assert events[-2]["type"] == "assistant_message"
    assert events[-2]["is_final"] is True
    second = devllm.requests()[1]["body"]["messages"]
    assert json.loads(second[-2]["content"])["error"].startswith("invalid arguments")
    tools = [
        m
        for m in Message.objects.filter(session__session_id="recover", role="tool").order_by("seq")
    ]
    assert [(m.tool_call_id, m.error_code) for m in tools] == [
        ("bad1", "invalid_arguments"),
        ("bad2", "invalid_arguments"),
        ("good", ""),
    ]


def test_a_tool_that_raises_is_an_error_result(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script({"tool_calls": [call("boom", {}, "x")]}, {"content": "Sorry."})
    events = data(post_stream(rt.client, {"session_id": "boom", "content": "go"}))
    assert events[1]["metadata"] == {
        "call_id": "x",
        "tool_name": "boom",
        "error": "RuntimeError: boom",
    }
    assert events[2]["token"] == "Sorry."
    tool = Message.objects.get(session__session_id="boom", role="tool")
    assert (json.loads(tool.content), tool.error_code) == (
        {"error": "RuntimeError: boom"},
        "tool_error",
    )


def test_a_tool_that_times_out_is_an_error_result(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script({"tool_calls": [call("slow", {"seconds": 30}, "t")]}, {"content": "Too slow."})
    events = data(post_stream(rt.client, {"session_id": "slow", "content": "go"}))
    assert events[1]["metadata"] == {
        "call_id": "t",
        "tool_name": "slow",
        "error": "timed out after 0.5s",
    }
    assert Message.objects.get(session__session_id="slow", role="tool").error_code == "timeout"


def test_the_calculator_refuses_code_and_huge_numbers(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script(
        {
            "tool_calls": [
                call("calculator", {"expr": "__import__('os')"}, "k1"),
                call("calculator", {"expr": "9**9**9"}, "k2"),
                call("calculator", {"expr": "1+" * 150 + "1"}, "k3"),
            ]
        },
        {"content": "No."},
    )
    events = data(post_stream(rt.client, {"session_id": "calc", "content": "hack"}))
    errors = {
        e["metadata"]["call_id"]: e["metadata"]["error"]
        for e in events
        if e != "[DONE]" and e["type"] == "tool_result"
    }
    assert errors["k1"] == "CalculatorError: Call is not allowed in an arithmetic expression"
    assert errors["k2"] == "CalculatorError: exponent larger than 1000"
    # Over the arguments model's max_length: rejected before the tool runs.
    assert errors["k3"].startswith("invalid arguments: expr: String should have at most 200")


def test_unknown_tool_is_an_error_result(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script({"tool_calls": [call("rm_rf", {}, "u")]}, {"content": "ok"})
    events = data(post_stream(rt.client, {"session_id": "unknown-tool", "content": "go"}))
    assert events[1]["metadata"]["error"] == "unknown tool 'rm_rf'"


def test_the_step_limit_ends_a_runaway_loop(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script({"tool_calls": [call("echo", {"text": "again"}, None)], "times": 50})
    events = data(post_stream(rt.client, {"session_id": "loop", "content": "go"}))
    assert events[-2] == {
        "token": "",
        "is_final": True,
        "type": "error",
        "metadata": {
            "code": "tool_step_limit",
            "message": (
                "Stopped after 3 model calls that all asked for tools "
                "(AGENT_RUNTIME__TOOL_MAX_STEPS)."
            ),
        },
    }
    assert len(devllm.requests()) == 3
    assert [r[0] for r in stored("loop")] == ["user"] + ["assistant", "tool"] * 3
    assert Session.objects.get(session_id="loop").active_turn_id is None


def test_client_tool_round_trip(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script(
        {"tool_calls": [call("read_file", {"path": "src/app.py"}, "rf1")]},
        {"content": "It prints hello."},
    )
    events = data(post_stream(rt.client, {"session_id": "ide", "content": "what does app.py do?"}))
    assert events == [
        {
            "token": "",
            "is_final": False,
            "type": "tool_call",
            "metadata": {
                "call_id": "rf1",
                "tool_name": "read_file",
                "arguments": {"path": "src/app.py"},
                "executor": "client",
            },
        },
        {
            "token": "",
            "is_final": True,
            "type": "tool_call",
            "metadata": {"pending_call_ids": ["rf1"]},
        },
        "[DONE]",
    ]
    session = Session.objects.get(session_id="ide")
    assert session.pending_tool_calls == [{"id": "rf1", "name": "read_file"}]
    assert session.active_turn_id is None  # the turn ended: nothing runs while the IDE works

    frames = post_stream(
        rt.client,
        {"session_id": "ide", "type": "tool_result", "call_id": "rf1", "result": "print('hello')"},
    )
    assert text_of(frames) == "It prints hello."
    assert frames[-2].data["is_final"] is True
    assert devllm.requests()[1]["body"]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "rf1",
        "content": "print('hello')",
    }
    assert stored("ide") == [
        ("user", "what does app.py do?", None, "complete"),
        ("assistant", "", None, "complete"),
        ("tool", "print('hello')", "rf1", "complete"),
        ("assistant", "It prints hello.", None, "complete"),
    ]
    assert Session.objects.get(session_id="ide").pending_tool_calls is None


def test_client_results_wait_for_every_call_of_the_step(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script(
        {"tool_calls": [call("read_file", {"path": "a"}, "p1"), call("open_editor", {}, "p2")]},
        {"content": "Both."},
    )
    events = data(post_stream(rt.client, {"session_id": "two-ide", "content": "go"}))
    assert events[-2]["metadata"] == {"pending_call_ids": ["p1", "p2"]}
    partial = data(
        post_stream(
            rt.client,
            {"session_id": "two-ide", "type": "tool_result", "call_id": "p2", "error": "no editor"},
        )
    )
    assert partial == [
        {
            "token": "",
            "is_final": True,
            "type": "tool_call",
            "metadata": {"pending_call_ids": ["p1"]},
        },
        "[DONE]",
    ]
    assert len(devllm.requests()) == 1  # no model call until the step is complete
    rest = post_stream(
        rt.client,
        {"session_id": "two-ide", "type": "tool_result", "call_id": "p1", "result": {"lines": 2}},
    )
    assert text_of(rest) == "Both."
    tools = devllm.requests()[1]["body"]["messages"][-2:]
    assert tools == [
        {"role": "tool", "tool_call_id": "p2", "content": '{"error":"no editor"}'},
        {"role": "tool", "tool_call_id": "p1", "content": '{"lines":2}'},
    ]


def test_unknown_and_duplicate_call_ids_are_refused_and_change_nothing(
    rt: Runtime, devllm: DevLLM
) -> None:
    devllm.script({"tool_calls": [call("read_file", {"path": "a"}, "once")]}, {"content": "ok"})
    post_stream(rt.client, {"session_id": "dup", "content": "go"})

    def before() -> tuple:
        return (Message.objects.count(), Session.objects.get(session_id="dup").pending_tool_calls)

    state = before()
    unknown = rt.client.post(
        "/agent/message/stream",
        json={"session_id": "dup", "type": "tool_result", "call_id": "nope", "result": 1},
    )
    assert unknown.status_code == 404
    assert unknown.json() == {
        "detail": "No pending tool call has this call_id.",
        "code": "tool_call_not_found",
    }
    assert before() == state

    post_stream(
        rt.client, {"session_id": "dup", "type": "tool_result", "call_id": "once", "result": "x"}
    )
    state = before()
    again = rt.client.post(
        "/agent/message/stream",
        json={"session_id": "dup", "type": "tool_result", "call_id": "once", "result": "x"},
    )
    assert again.status_code == 409
    assert again.json() == {
        "detail": "This tool call already has a result.",
        "code": "tool_call_answered",
    }
    assert before() == state

    no_session = rt.client.post(
        "/agent/message/stream",
        json={"session_id": "never", "type": "tool_result", "call_id": "x", "result": 1},
    )
    assert no_session.status_code == 404
    assert not Session.objects.filter(session_id="never").exists()


def test_unanswered_calls_are_repaired_before_the_next_model_call(
    rt: Runtime, devllm: DevLLM
) -> None:
    devllm.script(
        {"tool_calls": [call("read_file", {"path": "a"}, "left")]}, {"content": "Moving on."}
    )
    post_stream(rt.client, {"session_id": "repair", "content": "read a"})
    frames = post_stream(rt.client, {"session_id": "repair", "content": "never mind"})
    assert text_of(frames) == "Moving on."
    sent = devllm.requests()[1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "user"]
    assert sent[2]["tool_call_id"] == "left"
    assert json.loads(sent[2]["content"])["error"].startswith("not executed")
    assert [(r[0], r[2]) for r in stored("repair")] == [
        ("user", None),
        ("assistant", None),
        ("tool", "left"),
        ("user", None),
        ("assistant", None),
    ]
    late = rt.client.post(
        "/agent/message/stream",
        json={"session_id": "repair", "type": "tool_result", "call_id": "left", "result": 1},
    )
    assert late.status_code == 409


def test_context_budget_bounds_a_5000_message_session(
    runtime_factory, devllm: DevLLM, transactional_db: None
) -> None:  # type: ignore[no-untyped-def]
    rt = runtime_factory(
        context_max_messages=120, context_max_tokens=3000, system_prompt="You are terse."
    )
    session = Session.objects.create(session_id="long", last_activity_at=timezone.now())
    rows = []
    for turn in range(1250):  # 4 messages a turn: user, assistant tool call, tool, assistant
        cid = f"c{turn}"
        rows += [
            Message(role="user", content=f"question {turn} " + "x" * 80),
            Message(
                role="assistant",
                content="",
                tool_calls=[
                    {"id": cid, "type": "function", "function": {"name": "echo", "arguments": "{}"}}
                ],
            ),
            Message(role="tool", content="result " + "y" * 40, tool_call_id=cid, tool_name="echo"),
            Message(role="assistant", content=f"answer {turn} " + "z" * 80),
        ]
    for seq, row in enumerate(rows, start=1):
        row.session, row.seq = session, seq
    Message.objects.bulk_create(rows, batch_size=1000)
    Session.objects.filter(pk=session.pk).update(last_seq=len(rows))

    post_stream(rt.client, {"session_id": "long", "content": "the newest question"})
    sent = devllm.requests()[0]["body"]["messages"]
    assert sent[0] == {"role": "system", "content": "You are terse."}
    assert sent[1]["role"] == "user"
    assert sent[-1] == {"role": "user", "content": "the newest question"}
    assert 10 < len(sent) <= 121
    assert sum(len(m.get("content") or "") for m in sent) // 4 < 3000
    # Valid OpenAI order: every tool message answers a call of the assistant message before it.
    open_calls: set[str] = set()
    for message in sent:
        if message["role"] == "tool":
            assert message["tool_call_id"] in open_calls
            open_calls.discard(message["tool_call_id"])
        else:
            assert not open_calls, "a tool call was separated from its result"
            open_calls = {c["id"] for c in message.get("tool_calls") or ()}
    assert Message.objects.filter(session=session).count() == 5002
