"""The AI SDK route against the live runtime, for what the SDK's own client tests do not
reach: all of a step's client tool outputs posted at once."""

import json

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
