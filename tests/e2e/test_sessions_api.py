"""The sessions JSON API over real HTTP: uvicorn + the development LLM, on the test database."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sessions.models import Message, Session
from tests.servers import DevLLM, Runtime
from tests.sessions.factories import make_session
from tests.sse import iter_frames, post_stream

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def turn(runtime: Runtime, session_id: str, content: str = "hello") -> None:
    """One whole user turn through the streaming endpoint (two messages stored)."""
    post_stream(runtime.client, {"session_id": session_id, "content": content})


def get(runtime: Runtime, path: str, **params: Any) -> dict[str, Any]:
    response = runtime.client.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def test_history_pages_never_repeat_or_skip_while_turns_add_messages(
    runtime: Runtime, devllm: DevLLM
) -> None:
    for i in range(3):
        turn(runtime, "paged", f"question {i}")  # seq 1..6
    seqs: list[int] = []
    contents: list[str] = []
    after = 0
    pages = 0
    while True:
        page = get(runtime, "/agent/sessions/paged/messages", after=after, limit=4)
        seqs += [m["seq"] for m in page["messages"]]
        contents += [m["content"] for m in page["messages"]]
        pages += 1
        after = page["next_after"]
        if pages <= 2:
            turn(runtime, "paged", f"asked while paging {pages}")  # two more messages each
        elif not page["has_more"]:
            break
    assert seqs == list(range(1, 11))
    stored = Message.objects.filter(session__session_id="paged").order_by("seq")
    assert contents == [m.content for m in stored]
    assert "asked while paging 2" in contents
    # Polling from the last seq seen returns nothing new, and keeps the position.
    assert get(runtime, "/agent/sessions/paged/messages", after=10) == {
        "session_id": "paged",
        "messages": [],
        "has_more": False,
        "next_after": 10,
    }


def test_session_pages_never_repeat_or_skip_while_sessions_are_created_and_active(
    runtime: Runtime, devllm: DevLLM
) -> None:
    # Eleven idle sessions; several share a last_activity_at across page boundaries.
    for i in range(11):
        make_session(f"idle-{i:02}", last_activity_at=T0 + timedelta(minutes=i // 3), messages=2)
    expected = [f"idle-{i:02}" for i in (10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)]
    # Same timestamp: the newer row first.
    assert [s["session_id"] for s in get(runtime, "/agent/sessions")["sessions"]] == expected

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 4} | ({"cursor": cursor} if cursor else {})
        page = get(runtime, "/agent/sessions", **params)
        seen += [s["session_id"] for s in page["sessions"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        turn(runtime, f"new-{pages}")  # a new session, most recently active
        turn(runtime, seen[0])  # an already-listed session becomes active again
    assert pages == 3
    assert seen == expected  # no duplicates, no gaps
    fresh = [s["session_id"] for s in get(runtime, "/agent/sessions", limit=3)["sessions"]]
    assert fresh == [expected[0], "new-2", "new-1"]


def test_one_session_and_its_history_with_a_running_turn(runtime: Runtime, devllm: DevLLM) -> None:
    devllm.script({"content": "First answer."})
    turn(runtime, "s1", "first")
    devllm.script(
        {
            "tokens": ["a", "b", "c"],
            "fault": {"kind": "stall", "after_tokens": 1, "stall_ms": 60000},
        }
    )
    with runtime.client.stream(
        "POST", "/agent/message/stream", json={"session_id": "s1", "content": "second"}
    ) as response:
        frames = iter_frames(response)  # keep it: dropping the generator closes the stream
        next(frames)  # the turn is running
        session = get(runtime, "/agent/sessions/s1")
        assert (session["message_count"], session["turn_running"]) == (3, True)
        history = get(runtime, "/agent/sessions/s1/messages")
    assert [(m["seq"], m["role"], m["content"]) for m in history["messages"]] == [
        (1, "user", "first"),
        (2, "assistant", "First answer."),
        (3, "user", "second"),
    ]
    answer = history["messages"][1]
    assert (answer["status"], answer["finish_reason"], answer["model"]) == (
        "complete",
        "stop",
        "dev-llm",
    )
    assert set(answer["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    created = datetime.fromisoformat(session["created_at"])
    assert created <= datetime.fromisoformat(session["last_activity_at"])


def test_delete_removes_the_session_and_its_messages(runtime: Runtime, devllm: DevLLM) -> None:
    turn(runtime, "doomed")
    turn(runtime, "kept")
    response = runtime.client.delete("/agent/sessions/doomed")
    assert response.status_code == 204
    assert response.content == b""
    assert not Session.objects.filter(session_id="doomed").exists()
    assert Message.objects.filter(session__session_id="doomed").count() == 0
    assert Message.objects.filter(session__session_id="kept").count() == 2
    for path in ("/agent/sessions/doomed", "/agent/sessions/doomed/messages"):
        assert runtime.client.get(path).status_code == 404
    assert runtime.client.delete("/agent/sessions/doomed").status_code == 404


def test_delete_while_a_turn_runs_deletes_and_the_turn_stores_nothing(
    runtime: Runtime, devllm: DevLLM
) -> None:
    devllm.script({"tokens": [f"t{i} " for i in range(20)], "token_delay_ms": 50})
    with runtime.client.stream(
        "POST", "/agent/message/stream", json={"session_id": "busy", "content": "go"}
    ) as response:
        frames = iter_frames(response)
        next(frames)
        assert runtime.client.delete("/agent/sessions/busy").status_code == 204
        rest = [f.data for f in frames]  # the turn runs to its end...
    assert rest[-1] == "[DONE]"
    # ...and its final write found no session: nothing came back.
    assert not Session.objects.filter(session_id="busy").exists()
    assert Message.objects.count() == 0
    assert runtime.client.get("/agent/sessions/busy").status_code == 404


def test_refusals_are_json_errors(runtime: Runtime) -> None:
    make_session("s1")
    cases = [
        ("GET", "/agent/sessions/missing", 404, "not_found"),
        ("GET", "/agent/sessions/missing/messages", 404, "not_found"),
        ("DELETE", "/agent/sessions/missing", 404, "not_found"),
        ("GET", "/agent/sessions?limit=500", 422, "invalid_request"),
        ("GET", "/agent/sessions?cursor=bogus", 422, "invalid_request"),
        ("GET", "/agent/sessions/s1/messages?after=minus-one", 422, "invalid_request"),
        ("POST", "/agent/sessions", 405, "method_not_allowed"),
        ("PUT", "/agent/sessions/s1", 405, "method_not_allowed"),
    ]
    for method, path, status, code in cases:
        response = runtime.client.request(method, path)
        assert (response.status_code, response.json()["code"]) == (status, code), path
    errors = runtime.client.get("/agent/sessions?limit=0&cursor=x").json()["errors"]
    assert sorted(e["field"] for e in errors) == ["cursor", "limit"]
    assert httpx.get(runtime.url + "/agent/sessions").status_code == 401  # no key
