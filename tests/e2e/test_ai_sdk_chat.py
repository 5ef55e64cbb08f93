"""The AI SDK route against the live runtime, for what the SDK's own client tests do not
reach: all of a step's client tool outputs posted at once."""

import json
import time

import pytest

from tests.servers import DevLLM, Runtime

pytestmark = pytest.mark.e2e


def _chunks(runtime: Runtime, body: dict) -> list[dict]:
    with runtime.client.stream("POST", "/agent/ai-sdk/chat", json=body) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
        lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def test_two_client_tool_outputs_in_one_request_continue_the_turn(
    runtime: Runtime, devllm: DevLLM
) -> None:
    devllm.script(
        {
            "tool_calls": [
                {"name": "read_file", "arguments": {"path": "a.txt"}, "id": "call_a"},
                {"name": "read_file", "arguments": {"path": "b.txt"}, "id": "call_b"},
            ]
        }
    )
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "read both"}]}
    first = _chunks(runtime, {"id": "two-outputs", "messages": [user]})
    calls = [c["toolCallId"] for c in first if c["type"] == "tool-input-available"]
    assert calls == ["call_a", "call_b"]
    assert first[-1]["messageMetadata"]["pendingToolCallIds"] == calls

    assistant = {
        "id": "a1",
        "role": "assistant",
        "parts": [
            {"type": "step-start"},
            *(
                {
                    "type": "tool-read_file",
                    "toolCallId": c,
                    "state": "output-available",
                    "input": {},
                    "output": f"contents of {c}",
                }
                for c in calls
            ),
        ],
    }
    second = _chunks(runtime, {"id": "two-outputs", "messages": [user, assistant]})
    text = "".join(c["delta"] for c in second if c["type"] == "text-delta")
    assert (
        text
        == "Tool results: call_a returned contents of call_a; call_b returned contents of call_b."
    )
    assert second[-1]["type"] == "finish"
    stored = runtime.client.get("/agent/sessions/two-outputs/messages").json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant", "tool", "tool", "assistant"]


TOKENS = [f"w{i} " for i in range(60)]


def test_resume_answers_204_when_no_turn_runs(runtime: Runtime) -> None:
    # A chat the runtime never saw: useChat({resume: true}) asks on every first load.
    assert runtime.client.get("/agent/ai-sdk/chat/never-seen/stream").status_code == 204
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hello"}]}
    _chunks(runtime, {"id": "ended", "messages": [user]})
    # The turn ended: its answer is in the history, not a stream to replay.
    assert runtime.client.get("/agent/ai-sdk/chat/ended/stream").status_code == 204


def test_a_dropped_post_leaves_the_turn_running_and_the_resume_streams_all_of_it(
    runtime: Runtime, devllm: DevLLM
) -> None:
    devllm.script({"tokens": TOKENS, "token_delay_ms": 40})
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "a long answer"}]}
    body = {"id": "dropped", "messages": [user]}
    with runtime.client.stream("POST", "/agent/ai-sdk/chat", json=body) as response:
        for line in response.iter_lines():
            if '"text-delta"' in line:
                break  # the page reloads
    with runtime.client.stream("GET", "/agent/ai-sdk/chat/dropped/stream") as response:
        assert response.status_code == 200
        assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
        lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    resumed = [json.loads(line) for line in lines[:-1]]
    # From the turn's start, as the SDK's transport expects (it sends no cursor).
    assert [c["type"] for c in resumed[:3]] == ["start", "start-step", "text-start"]
    assert "".join(c["delta"] for c in resumed if c["type"] == "text-delta") == "".join(TOKENS)
    assert resumed[-1]["type"] == "finish"
    [stream] = devllm.streams()
    assert stream["completed"]
    stored = runtime.client.get("/agent/sessions/dropped/messages").json()["messages"]
    assert [(m["role"], m["status"]) for m in stored] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]


def test_on_disconnect_cancel_stops_the_turn_when_the_post_drops(
    runtime: Runtime, devllm: DevLLM
) -> None:
    devllm.script({"tokens": TOKENS, "token_delay_ms": 40})
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "a long answer"}]}
    body = {"id": "stopped", "messages": [user], "onDisconnect": "cancel"}
    with runtime.client.stream("POST", "/agent/ai-sdk/chat", json=body) as response:
        for line in response.iter_lines():
            if '"text-delta"' in line:
                break
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stored = runtime.client.get("/agent/sessions/stopped/messages").json()["messages"]
        if len(stored) == 2:
            break
        time.sleep(0.1)
    assert [(m["role"], m["status"]) for m in stored] == [
        ("user", "complete"),
        ("assistant", "interrupted"),
    ]
    assert runtime.client.get("/agent/ai-sdk/chat/stopped/stream").status_code == 204
