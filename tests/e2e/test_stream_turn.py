"""A plain user turn over real HTTP: uvicorn + the development LLM, on the test database."""

import time

import httpx
import pytest

from sessions.models import Message, Session
from tests.servers import DevLLM, Runtime
from tests.sse import iter_frames, post_stream, text_of

pytestmark = pytest.mark.e2e


def test_events_have_the_exact_format_and_order(runtime: Runtime, devllm: DevLLM) -> None:
    devllm.script({"tokens": ["Hello, ", "world", "!"]})
    with runtime.client.stream(
        "POST", "/agent/message/stream", json={"session_id": "s1", "role": "user", "content": "Hi"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        # What the middleware adds.
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
        assert len(response.headers["x-request-id"]) == 32
        raw = response.read().decode()

    usage = devllm.requests()[0]
    assert usage["body"]["stream"] is True
    assert usage["body"]["stream_options"] == {"include_usage": True}
    final = (
        '{"token":"","is_final":true,"type":"assistant_message","metadata":'
        '{"finish_reason":"stop","usage":{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7}}}'
    )
    # Ids: the turn opened by message 1, then its events counted from 1; the 4th (the end of
    # the model step) is not an event of this format.
    assert raw == (
        'id: 1000000001\ndata: {"token":"Hello, ","is_final":false,"type":"assistant_message"}\n\n'
        'id: 1000000002\ndata: {"token":"world","is_final":false,"type":"assistant_message"}\n\n'
        'id: 1000000003\ndata: {"token":"!","is_final":false,"type":"assistant_message"}\n\n'
        f"id: 1000000005\ndata: {final}\n\n"
        "data: [DONE]\n\n"
    )


def test_tokens_arrive_while_the_upstream_is_still_generating(
    runtime: Runtime, devllm: DevLLM
) -> None:
    # The upstream sends three tokens, then stalls for a minute: if the relay buffered, the
    # client would see nothing until the stall ends.
    devllm.script(
        {
            "tokens": ["a", "b", "c", "d"],
            "fault": {"kind": "stall", "after_tokens": 3, "stall_ms": 60000},
        }
    )
    with runtime.client.stream(
        "POST", "/agent/message/stream", json={"session_id": "s-live", "content": "go"}
    ) as response:
        frames = iter_frames(response)
        received = [next(frames).data["token"] for _ in range(3)]
        [stream] = devllm.streams()
        assert received == ["a", "b", "c"]
        assert stream["finished_at"] is None  # the upstream has not finished: no buffering
        assert stream["tokens_sent"] == 3


def test_user_and_assistant_messages_are_persisted_with_usage(
    runtime: Runtime, devllm: DevLLM
) -> None:
    devllm.script({"content": "Stored answer."})
    frames = post_stream(runtime.client, {"session_id": "persist", "content": "Remember me"})
    assert text_of(frames) == "Stored answer."

    session = Session.objects.get(session_id="persist")
    user, assistant = Message.objects.filter(session=session).order_by("seq")
    assert (user.seq, user.role, user.content, user.status) == (
        1,
        "user",
        "Remember me",
        "complete",
    )
    assert (assistant.seq, assistant.role, assistant.content) == (2, "assistant", "Stored answer.")
    assert assistant.status == "complete"
    assert assistant.finish_reason == "stop"
    assert assistant.model == "dev-llm"
    assert (assistant.prompt_tokens, assistant.completion_tokens, assistant.total_tokens) == (
        6,
        2,
        8,
    )
    assert session.active_turn_id is None  # the lease was released


def test_second_message_sends_the_whole_history_upstream(runtime: Runtime, devllm: DevLLM) -> None:
    devllm.script({"content": "First answer."}, {"content": "Second answer."})
    post_stream(runtime.client, {"session_id": "history", "content": "one"})
    post_stream(runtime.client, {"session_id": "history", "content": "two"})

    second = devllm.requests()[1]["body"]["messages"]
    assert second == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "two"},
    ]
    assert Message.objects.filter(session__session_id="history").count() == 4


def test_client_disconnect_keeps_the_partial_answer_as_interrupted_and_aborts_the_upstream(
    runtime: Runtime, devllm: DevLLM
) -> None:
    # 1,000 tokens at 10 ms: ten seconds of answer, unless the hang-up stops it.
    devllm.script({"tokens": [f"t{i} " for i in range(1000)], "token_delay_ms": 10})
    with runtime.client.stream(
        "POST",
        "/agent/message/stream",
        json={"session_id": "gone", "content": "long answer please"},
    ) as response:
        frames = iter_frames(response)
        seen = [next(frames).data["token"] for _ in range(5)]
    # Leaving the block closed the connection mid-stream.
    assistant = _wait_for_assistant("gone")
    assert assistant.status == "interrupted"
    assert assistant.content.startswith("".join(seen))
    # The upstream saw the abort while it still had most of the answer to send: the hang-up
    # reached it, rather than the answer running to its end.
    deadline = time.monotonic() + 10
    while devllm.streams()[0]["finished_at"] is None and time.monotonic() < deadline:
        time.sleep(0.02)
    [stream] = devllm.streams()
    assert stream["disconnected_at"] is not None
    assert stream["tokens_sent"] < 500, stream
    assert len(assistant.content.split()) < 500
    assert Session.objects.get(session_id="gone").active_turn_id is None


def _wait_for_assistant(session_id: str, timeout: float = 5.0) -> Message:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = Message.objects.filter(session__session_id=session_id, role="assistant").first()
        if message is not None:
            return message
        time.sleep(0.05)
    raise AssertionError("no assistant message was stored")


def test_upstream_down_before_streaming_is_an_error_event(
    runtime_factory, devllm: DevLLM, transactional_db: None
) -> None:  # type: ignore[no-untyped-def]
    from tests.servers import free_port

    dead = runtime_factory(llm_url=f"http://127.0.0.1:{free_port()}", llm_retry_attempts=1)
    frames = post_stream(dead.client, {"session_id": "down", "content": "hello?"})
    assert [f.data for f in frames] == [
        {
            "token": "",
            "is_final": True,
            "type": "error",
            "metadata": {
                "code": "upstream_unavailable",
                "message": "The language model server is unreachable.",
            },
        },
        "[DONE]",
    ]
    messages = list(Message.objects.filter(session__session_id="down").order_by("seq"))
    assert [(m.role, m.status) for m in messages] == [("user", "complete"), ("assistant", "failed")]
    assert messages[1].error_code == "upstream_unavailable"


def test_health_reports_the_database(runtime: Runtime) -> None:
    response = httpx.get(runtime.url + "/health")  # no key needed
    assert response.status_code == 200
    assert response.json() == {
        "status": "healthy",
        "service": "agent-runtime",
        "version": "0.1.0",
        "database": "ok",
        "broker": "ok",
    }


def test_health_is_503_when_the_database_is_unreachable(server_logs, devllm: DevLLM) -> None:  # type: ignore[no-untyped-def]
    from tests.servers import free_port, start_runtime

    server = start_runtime(
        server_logs,
        db_url=f"postgres://postgres@127.0.0.1:{free_port()}/nowhere",
        llm_url=devllm.url,
        key="e2e-key-0123456789abcdef",
    )
    try:
        response = httpx.get(server.url + "/health")
        assert response.status_code == 503
        assert response.json()["status"] == "unhealthy"
        assert response.json()["database"] == "unavailable"
        stream = server.client.post(
            "/agent/message/stream", json={"session_id": "x", "content": "hi"}
        )
        assert stream.status_code == 503
        assert stream.json() == {"detail": "The database cannot be reached.", "code": "unavailable"}
    finally:
        server.stop()
