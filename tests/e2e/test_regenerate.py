"""Regenerate on the seed format against the live runtime: a new answer to the last user
message; the replaced one stays stored, superseded, and is not sent upstream again."""

import pytest

from tests.servers import DevLLM, Runtime
from tests.sse import post_stream, text_of

pytestmark = pytest.mark.e2e


def test_regenerate_answers_again_and_supersedes_the_answer(
    runtime: Runtime, devllm: DevLLM
) -> None:
    devllm.script({"content": "The first answer."}, {"content": "The second answer."})
    client = runtime.client
    first = post_stream(client, {"session_id": "regen-1", "content": "tell me something"})
    assert text_of(first) == "The first answer."

    again = post_stream(client, {"session_id": "regen-1", "type": "regenerate"})
    assert text_of(again) == "The second answer."
    assert again[-2].data["metadata"]["finish_reason"] == "stop"

    upstream = devllm.requests()[-1]["body"]["messages"]
    assert upstream == [{"role": "user", "content": "tell me something"}]
    stored = client.get("/agent/sessions/regen-1/messages").json()["messages"]
    assert [(m["role"], m["content"], m["superseded"]) for m in stored] == [
        ("user", "tell me something", False),
        ("assistant", "The first answer.", True),
        ("assistant", "The second answer.", False),
    ]
    # The next turn's history has the new answer only.
    post_stream(client, {"session_id": "regen-1", "content": "and then?"})
    assert "The first answer." not in str(devllm.requests()[-1]["body"]["messages"])


def test_regenerate_errors(runtime: Runtime) -> None:
    client = runtime.client
    unknown = client.post(
        "/agent/message/stream", json={"session_id": "nobody", "type": "regenerate"}
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
