"""Runs that outlive their connection: resuming on another worker, several readers, the
disconnect policy, and what happens when Redis fails. Real uvicorn processes, real Redis.

"Two workers" are two runtime processes on the same database and Redis, so that a resume is
sure to reach the other one (uvicorn's ``--workers`` would pick a process for us).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from sessions.models import Message
from tests.redis_server import PrivateRedis, shared_redis_url
from tests.servers import DevLLM, Runtime
from tests.sse import Frame, events, iter_frames, post_stream, text_of

# Starting several servers on a busy machine takes a while.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

TOKENS = [f"w{i} " for i in range(40)]


def sid(name: str) -> str:
    """A session id no earlier run used (Redis outlives the test database)."""
    return f"{name}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def two_workers(runtime_factory) -> tuple[Runtime, Runtime]:  # type: ignore[no-untyped-def]
    url = shared_redis_url()
    return (
        runtime_factory(redis_url=url, on_disconnect="continue"),
        runtime_factory(redis_url=url, on_disconnect="continue"),
    )


@pytest.fixture
def pair(
    two_workers: tuple[Runtime, Runtime], devllm: DevLLM, transactional_db: None
) -> tuple[Runtime, Runtime]:
    return two_workers


def read_some(client: httpx.Client, body: dict[str, Any], count: int) -> list[Frame]:
    """POST, read ``count`` events, then drop the connection."""
    seen: list[Frame] = []
    with client.stream("POST", "/agent/message/stream", json=body) as response:
        assert response.status_code == 200
        for frame in iter_frames(response):
            if frame.comment is None:
                seen.append(frame)
            if len(seen) == count:
                break
    return seen


def resume(server: Runtime, session_id: str, last_event_id: int | None = None) -> list[Frame]:
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    with server.client.stream(
        "GET", f"/agent/sessions/{session_id}/stream", headers=headers
    ) as response:
        assert response.status_code == 200, response.read()
        return events(response)


def final_answer(session_id: str, timeout: float = 30.0) -> Message:
    """The assistant message of the session's turn once the turn has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = (
            Message.objects.filter(session__session_id=session_id, role="assistant")
            .order_by("-seq")
            .first()
        )
        if message is not None and message.session.active_turn_id is None:
            return message
        time.sleep(0.05)
    raise AssertionError(f"the turn of {session_id} did not end")


def wait_until_running(server: Runtime, session_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = server.client.get(f"/agent/sessions/{session_id}")
        if response.status_code == 200 and response.json()["running_turn"] is not None:
            return response.json()["running_turn"]
        time.sleep(0.02)
    raise AssertionError(f"no turn of {session_id} was seen running")


def assert_one_turn(frames: list[Frame]) -> None:
    """Ids strictly increase (no duplicate) and the stream ends with the final event."""
    ids = [f.id for f in frames if f.data != "[DONE]"]
    assert all(i is not None for i in ids)
    assert ids == sorted(set(ids))  # type: ignore[type-var]
    assert frames[-1].data == "[DONE]"
    assert frames[-2].data["is_final"] is True


def test_a_dropped_client_resumes_through_the_other_worker(
    pair: tuple[Runtime, Runtime], devllm: DevLLM
) -> None:
    first, other = pair
    session_id = sid("drop")
    devllm.script({"tokens": TOKENS, "token_delay_ms": 25})
    before = read_some(first.client, {"session_id": session_id, "content": "go"}, 5)
    after = resume(other, session_id, last_event_id=before[-1].id)

    together = before + after
    assert_one_turn(together)
    stored = final_answer(session_id)
    assert stored.status == "complete"
    assert text_of(together) == stored.content == "".join(TOKENS)


def test_three_readers_one_joining_late_get_identical_sequences(
    pair: tuple[Runtime, Runtime], devllm: DevLLM
) -> None:
    first, other = pair
    session_id = sid("three")
    devllm.script({"tokens": TOKENS, "token_delay_ms": 25})
    got: dict[str, list[Frame]] = {}
    poster_saw_ten = threading.Event()

    def poster() -> None:
        frames: list[Frame] = []
        body = {"session_id": session_id, "content": "go"}
        with first.client.stream("POST", "/agent/message/stream", json=body) as response:
            for frame in iter_frames(response):
                if frame.comment is None:
                    frames.append(frame)
                if len(frames) == 10:
                    poster_saw_ten.set()
        got["poster"] = frames

    def reader(name: str, server: Runtime) -> None:
        got[name] = resume(server, session_id)

    threads = [threading.Thread(target=poster)]
    threads[0].start()
    wait_until_running(other, session_id)
    threads.append(threading.Thread(target=reader, args=("early", other)))
    threads[-1].start()
    assert poster_saw_ten.wait(60)
    threads.append(threading.Thread(target=reader, args=("late", first)))
    threads[-1].start()
    for thread in threads:
        thread.join(60)

    assert_one_turn(got["poster"])
    assert got["early"] == got["poster"]
    assert got["late"] == got["poster"]
    assert text_of(got["poster"]) == final_answer(session_id).content == "".join(TOKENS)


@pytest.mark.parametrize(
    ("on_disconnect", "stored_status"),
    [(None, "interrupted"), ("cancel", "interrupted"), ("continue", "complete")],
)
def test_the_disconnect_policy_decides_what_a_dropped_client_leaves(
    runtime: Runtime, devllm: DevLLM, on_disconnect: str | None, stored_status: str
) -> None:
    session_id = sid("policy")
    devllm.script({"tokens": TOKENS, "token_delay_ms": 20})
    body = {"session_id": session_id, "content": "go"}
    if on_disconnect is not None:
        body["on_disconnect"] = on_disconnect
    seen = read_some(runtime.client, body, 3)

    stored = final_answer(session_id)
    assert stored.status == stored_status
    assert stored.content.startswith(text_of(seen))
    if stored_status == "complete":
        assert stored.content == "".join(TOKENS)
        assert devllm.streams()[0]["disconnected_at"] is None  # the model was not stopped


def test_the_default_policy_comes_from_the_setting(
    pair: tuple[Runtime, Runtime], devllm: DevLLM
) -> None:
    first, _ = pair  # started with AGENT_RUNTIME__ON_DISCONNECT=continue
    session_id = sid("setting")
    devllm.script({"tokens": TOKENS, "token_delay_ms": 10})
    read_some(first.client, {"session_id": session_id, "content": "go"}, 2)
    stored = final_answer(session_id)
    assert (stored.status, stored.content) == ("complete", "".join(TOKENS))


def test_the_cancel_route_stops_a_turn_nobody_listens_to(
    pair: tuple[Runtime, Runtime], devllm: DevLLM
) -> None:
    first, other = pair
    session_id = sid("stop")
    devllm.script({"tokens": TOKENS, "token_delay_ms": 50})
    read_some(first.client, {"session_id": session_id, "content": "go"}, 2)
    assert other.client.post(f"/agent/sessions/{session_id}/cancel").json()["cancelled"] is True
    stored = final_answer(session_id)
    assert stored.status == "cancelled"
    assert stored.content != "".join(TOKENS)
    # A reader that comes now sees the turn up to its cancelled end.
    frames = resume(other, session_id)
    assert frames[-2].data["metadata"]["finish_reason"] == "cancelled"
    assert text_of(frames) == stored.content


def test_the_session_shows_its_running_turn(pair: tuple[Runtime, Runtime], devllm: DevLLM) -> None:
    first, other = pair
    session_id = sid("shown")
    devllm.script({"tokens": TOKENS, "token_delay_ms": 25})
    seen = read_some(first.client, {"session_id": session_id, "content": "go"}, 5)
    running = other.client.get(f"/agent/sessions/{session_id}").json()["running_turn"]
    assert running["last_event_id"] >= seen[-1].id
    stored = final_answer(session_id)
    assert running["turn_id"] == str(stored.turn_id)
    assert datetime.fromisoformat(running["started_at"]) <= stored.created_at
    assert other.client.get(f"/agent/sessions/{session_id}").json()["running_turn"] is None


# --- 204, 404, 401 -------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["in_process", "redis"])
def short_ttl_server(request, runtime_factory) -> Runtime:  # type: ignore[no-untyped-def]
    if request.param == "redis":
        return runtime_factory(redis_url=shared_redis_url(), run_events_ttl_seconds=5)
    return runtime_factory(run_events_ttl_seconds=5)


@pytest.fixture
def short_ttl(short_ttl_server: Runtime, devllm: DevLLM, transactional_db: None) -> Runtime:
    return short_ttl_server


def test_an_ended_turn_replays_until_its_ttl_then_204(short_ttl: Runtime, devllm: DevLLM) -> None:
    session_id = sid("ttl")
    path = f"/agent/sessions/{session_id}/stream"
    devllm.script({"tokens": ["a", "b", "c"]})
    answered = post_stream(short_ttl.client, {"session_id": session_id, "content": "go"})

    assert resume(short_ttl, session_id) == answered  # the whole turn, again
    last = answered[-2].id
    assert short_ttl.client.get(path, params={"after": last}).status_code == 204  # all seen
    deadline = time.monotonic() + 60
    while short_ttl.client.get(path).status_code != 204:
        assert time.monotonic() < deadline, "the ended turn was still replayed after its TTL"
        time.sleep(0.2)


def test_resume_answers_204_404_401_and_422(short_ttl: Runtime) -> None:
    client = short_ttl.client
    assert client.get("/agent/sessions/never-seen/stream").status_code == 404
    assert client.get("/agent/sessions/never-seen/stream").json()["code"] == "not_found"
    anonymous = httpx.get(short_ttl.url + f"/agent/sessions/{sid('x')}/stream")
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "unauthorized")
    bad = client.get("/agent/sessions/never-seen/stream", headers={"Last-Event-ID": "abc"})
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_request")


def test_resume_before_any_turn_is_204(short_ttl: Runtime, devllm: DevLLM) -> None:
    from tests.sessions.factories import make_session

    session_id = sid("idle")
    make_session(session_id)
    assert short_ttl.client.get(f"/agent/sessions/{session_id}/stream").status_code == 204


# --- Redis fails ---------------------------------------------------------------------------------


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    yield server
    server.stop()


def test_redis_stopped_mid_turn_loses_nothing_but_resuming(
    private_redis: PrivateRedis, runtime_factory, devllm: DevLLM, transactional_db: None
) -> None:  # type: ignore[no-untyped-def]
    server = runtime_factory(redis_url=private_redis.url)
    session_id = sid("redis-down")
    devllm.script({"tokens": TOKENS, "token_delay_ms": 25})
    frames: list[Frame] = []
    with server.client.stream(
        "POST", "/agent/message/stream", json={"session_id": session_id, "content": "go"}
    ) as response:
        for frame in iter_frames(response):
            if frame.comment is None:
                frames.append(frame)
            if len(frames) == 5:
                assert wait_until_running(server, session_id)  # Redis works so far
                private_redis.stop()

    assert_one_turn(frames)
    stored = final_answer(session_id)
    assert (stored.status, stored.content) == ("complete", "".join(TOKENS))
    assert text_of(frames) == stored.content
    unavailable = server.client.get(f"/agent/sessions/{session_id}/stream")
    assert (unavailable.status_code, unavailable.json()["code"]) == (503, "unavailable")
    health = httpx.get(server.url + "/health")
    assert health.status_code == 200
    assert (health.json()["database"], health.json()["broker"]) == ("ok", "unavailable")
