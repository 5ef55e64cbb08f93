"""Regenerate on the seed format against the live runtime: a new answer to the last user
message; the replaced one stays stored, superseded, and is not sent upstream again."""

import pytest

from tests.servers import DevLLM, Runtime
from tests.sse import events, post_stream, text_of

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


def test_each_regenerated_answer_has_ids_of_its_own(runtime: Runtime, devllm: DevLLM) -> None:
    """A regenerated answer is a turn of its own: its events' ids go on increasing, so a
    client resuming with an id from an earlier answer gets the latest one from its start."""
    devllm.script({"content": "One."}, {"content": "Two."}, {"content": "Three."})
    client = runtime.client
    turns = [
        post_stream(client, {"session_id": "regen-ids", "content": "count"}),
        post_stream(client, {"session_id": "regen-ids", "type": "regenerate"}),
        post_stream(client, {"session_id": "regen-ids", "type": "regenerate"}),
    ]
    ids = [frame.id for turn in turns for frame in turn if frame.id is not None]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    earlier = max(f.id for f in turns[1] if f.id is not None)
    resumed = client.get(
        "/agent/sessions/regen-ids/stream",
        headers={"Accept": "text/event-stream", "Last-Event-ID": str(earlier)},
    )
    assert resumed.status_code == 200
    assert text_of(events(resumed)) == "Three."
    latest = max(f.id for f in turns[2] if f.id is not None)
    caught_up = client.get(
        "/agent/sessions/regen-ids/stream",
        headers={"Accept": "text/event-stream", "Last-Event-ID": str(latest)},
    )
    assert caught_up.status_code == 204
