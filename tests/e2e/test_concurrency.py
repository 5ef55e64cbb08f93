"""Busy sessions, idempotent retries and cancel, across worker processes sharing a database."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from sessions.models import Message, Session
from tests.servers import DevLLM, Runtime
from tests.sse import iter_frames, post_stream, text_of

pytestmark = pytest.mark.e2e

LONG = {"tokens": [f"t{i} " for i in range(60)], "token_delay_ms": 20}


@pytest.fixture(scope="module")
def reject_2w(runtime_factory) -> Runtime:  # type: ignore[no-untyped-def]
    return runtime_factory(workers=2, cancel_poll_seconds=0.1)


@pytest.fixture
def rt(reject_2w: Runtime, devllm: DevLLM, transactional_db: None) -> Runtime:
    return reject_2w


def fresh(runtime: Runtime) -> httpx.Client:
    """A client with its own connection, so requests spread over the worker processes."""
    return httpx.Client(base_url=runtime.url, headers={"X-Internal-Auth": runtime.key}, timeout=30)


def post_all_at_once(runtime: Runtime, bodies: list[dict]) -> list[tuple[int, str]]:
    barrier = threading.Barrier(len(bodies))

    def post(body: dict) -> tuple[int, str]:
        with fresh(runtime) as client:
            barrier.wait()
            with client.stream("POST", "/agent/message/stream", json=body) as response:
                return response.status_code, response.read().decode()

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(post, bodies))


def messages(session_id: str) -> list[tuple[str, str, str]]:
    return [
        (m.role, m.status, m.content)
        for m in Message.objects.filter(session__session_id=session_id).order_by("seq")
    ]


def test_concurrent_posts_run_one_turn_and_409_the_rest(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script({**LONG, "times": 10})
    results = post_all_at_once(rt, [{"session_id": "race", "content": f"m{i}"} for i in range(6)])
    codes = sorted(code for code, _ in results)
    assert codes == [200, 409, 409, 409, 409, 409]
    for code, body in results:
        if code == 409:
            assert '"code": "session_busy"' in body
    assert len(devllm.requests()) == 1
    stored = messages("race")
    assert [(role, status) for role, status, _ in stored] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]


def test_retried_message_id_creates_nothing_new(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script({**LONG, "times": 10})
    body = {"session_id": "retry", "content": "once please", "message_id": "msg-1"}
    results = post_all_at_once(rt, [body, body, body])
    assert sorted(code for code, _ in results) == [200, 409, 409]
    original = next(text for code, text in results if code == 200)
    assert Message.objects.filter(session__session_id="retry").count() == 2

    # After the turn: the stored answer is replayed, and the model is not called again.
    replay = post_stream(fresh(rt), body)
    assert text_of(replay) == "".join(LONG["tokens"])
    assert replay[-2].data["metadata"]["replayed"] is True
    assert "".join(LONG["tokens"]) in "".join(
        line for line in original.splitlines() if line.startswith("data:")
    ).replace('","is_final":false,"type":"assistant_message"}data: {"token":"', "")
    assert len(devllm.requests()) == 1
    assert Message.objects.filter(session__session_id="retry").count() == 2


def test_a_message_id_reused_with_another_content_is_409_idempotency_conflict(
    rt: Runtime, devllm: DevLLM
) -> None:
    devllm.script({"content": "Sent 10 to Alice."})
    post_stream(rt.client, {"session_id": "key", "content": "send Alice 10", "message_id": "k"})
    response = rt.client.post(
        "/agent/message/stream",
        json={"session_id": "key", "content": "send Bob 10", "message_id": "k"},
    )
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_conflict"
    assert "Alice" not in response.text
    assert [c for _, _, c in messages("key")] == ["send Alice 10", "Sent 10 to Alice."]
    assert len(devllm.requests()) == 1


def test_a_new_message_id_in_the_same_session_is_a_new_turn(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script({"content": "First."}, {"content": "Second."})
    post_stream(rt.client, {"session_id": "ids", "content": "a", "message_id": "k1"})
    post_stream(rt.client, {"session_id": "ids", "content": "b", "message_id": "k2"})
    assert [c for _, _, c in messages("ids")] == ["a", "First.", "b", "Second."]


def test_cancel_reaches_a_turn_on_another_process(
    runtime_factory, devllm: DevLLM, transactional_db: None
) -> None:  # type: ignore[no-untyped-def]
    # Two separate servers on one database: as separate as two hosts.
    serving = runtime_factory(cancel_poll_seconds=0.1)
    other = runtime_factory(cancel_poll_seconds=0.1)
    devllm.script({"tokens": [f"t{i} " for i in range(500)], "token_delay_ms": 20})
    with serving.client.stream(
        "POST", "/agent/message/stream", json={"session_id": "stop-me", "content": "go on"}
    ) as response:
        frames = iter_frames(response)
        seen = [next(frames) for _ in range(3)]
        cancel = other.client.post("/agent/sessions/stop-me/cancel")
        cancelled_at = time.monotonic()
        rest = list(frames)
        ended_at = time.monotonic()
    assert cancel.status_code == 200
    assert cancel.json()["cancelled"] is True
    assert ended_at - cancelled_at < 1.0  # stopped within a second
    final = rest[-2].data
    assert final["type"] == "assistant_message"
    assert final["is_final"] is True
    assert final["metadata"]["finish_reason"] == "cancelled"
    assert rest[-1].data == "[DONE]"
    streamed = "".join(f.data["token"] for f in [*seen, *rest[:-2]])
    [(_, _, _), (role, status, content)] = messages("stop-me")
    assert (role, status) == ("assistant", "cancelled")
    assert content == streamed  # the partial answer is kept, exactly as streamed
    assert devllm.streams()[0]["disconnected_at"] is not None  # the model was told to stop
    assert Session.objects.get(session_id="stop-me").active_turn_id is None


def test_cancel_on_the_two_worker_server(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script({"tokens": [f"t{i} " for i in range(500)], "token_delay_ms": 20})
    with (
        fresh(rt) as client,
        client.stream(
            "POST", "/agent/message/stream", json={"session_id": "stop-2w", "content": "go"}
        ) as response,
    ):
        frames = iter_frames(response)
        next(frames)
        for _ in range(3):  # fresh connections: each may land on either worker
            with fresh(rt) as canceller:
                assert canceller.post("/agent/sessions/stop-2w/cancel").status_code == 200
        rest = list(frames)
    assert rest[-2].data["metadata"]["finish_reason"] == "cancelled"
    assert messages("stop-2w")[-1][:2] == ("assistant", "cancelled")


def test_cancel_of_an_idle_or_unknown_session(rt: Runtime, devllm: DevLLM) -> None:
    post_stream(rt.client, {"session_id": "idle", "content": "hi"})
    idle = rt.client.post("/agent/sessions/idle/cancel")
    assert idle.json() == {"session_id": "idle", "cancelled": False, "turn_id": None}
    unknown = rt.client.post("/agent/sessions/nobody/cancel")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "not_found"
    assert rt.client.get("/agent/sessions/idle/cancel").status_code == 405


def test_enqueue_waits_for_the_running_turn(
    runtime_factory, devllm: DevLLM, transactional_db: None
) -> None:  # type: ignore[no-untyped-def]
    rt = runtime_factory(workers=2, session_busy_strategy="enqueue")
    devllm.script({"match": "first", **LONG}, {"match": "second", "content": "Second answer."})
    with rt.client.stream(
        "POST", "/agent/message/stream", json={"session_id": "queue", "content": "first"}
    ) as response:
        frames = iter_frames(response)
        next(frames)
        with ThreadPoolExecutor(1) as pool:
            second = pool.submit(
                post_stream, fresh(rt), {"session_id": "queue", "content": "second"}
            )
            first_text = text_of([next(frames), *list(frames)])
            second_frames = second.result(timeout=30)
    assert text_of(second_frames) == "Second answer."
    # The queued turn ran after the first one ended, and saw its whole answer.
    sent = devllm.requests()[1]["body"]["messages"]
    assert sent[-3:] == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "".join(LONG["tokens"])},
        {"role": "user", "content": "second"},
    ]
    assert len(first_text) > 0
    assert [(r, s) for r, s, _ in messages("queue")] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ] * 2


def test_enqueue_gives_up_after_the_wait(
    runtime_factory, devllm: DevLLM, transactional_db: None
) -> None:  # type: ignore[no-untyped-def]
    rt = runtime_factory(session_busy_strategy="enqueue", session_busy_wait_seconds=0.3)
    devllm.script({"tokens": [f"t{i} " for i in range(100)], "token_delay_ms": 20})
    with rt.client.stream(
        "POST", "/agent/message/stream", json={"session_id": "q2", "content": "long"}
    ) as response:
        frames = iter_frames(response)  # kept: dropping the generator would close the stream
        next(frames)
        late = fresh(rt).post("/agent/message/stream", json={"session_id": "q2", "content": "late"})
        assert late.status_code == 409
        assert late.json()["code"] == "session_busy"
    assert "late" not in [c for _, _, c in messages("q2")]


def test_interrupt_cancels_the_running_turn_then_runs(
    runtime_factory, devllm: DevLLM, transactional_db: None
) -> None:  # type: ignore[no-untyped-def]
    rt = runtime_factory(workers=2, session_busy_strategy="interrupt", cancel_poll_seconds=0.1)
    devllm.script(
        {"match": "first", "tokens": [f"t{i} " for i in range(500)], "token_delay_ms": 20},
        {"match": "second", "content": "Second answer."},
    )
    with rt.client.stream(
        "POST", "/agent/message/stream", json={"session_id": "cut", "content": "first"}
    ) as response:
        frames = iter_frames(response)
        seen = [next(frames) for _ in range(3)]
        second = post_stream(fresh(rt), {"session_id": "cut", "content": "second"})
        rest = list(frames)
    assert rest[-2].data["metadata"]["finish_reason"] == "cancelled"
    assert text_of(second) == "Second answer."
    first_partial = text_of([*seen, *rest])
    stored = messages("cut")
    assert stored == [
        ("user", "complete", "first"),
        ("assistant", "cancelled", first_partial),
        ("user", "complete", "second"),
        ("assistant", "complete", "Second answer."),
    ]
    assert devllm.requests()[1]["body"]["messages"][-2] == {
        "role": "assistant",
        "content": first_partial,
    }
