"""Upstream faults over real HTTP: retries before the first token, clean failure after it."""

import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

from sessions.models import Message
from tests.servers import DevLLM, Runtime
from tests.sse import iter_frames, post_stream, text_of

pytestmark = pytest.mark.e2e


FAULT_SETTINGS = {
    "llm_retry_attempts": 3,
    "llm_retry_backoff_seconds": 0.2,
    "llm_retry_total_seconds": 5,
    "llm_read_timeout": 0.5,
    "heartbeat_seconds": 0.2,
}


@pytest.fixture(scope="module")
def faults_runtime(runtime_factory) -> Runtime:  # type: ignore[no-untyped-def]
    return runtime_factory(**FAULT_SETTINGS)


@pytest.fixture
def rt(faults_runtime: Runtime, devllm: DevLLM, transactional_db: None) -> Runtime:
    return faults_runtime


def statuses(session_id: str) -> list[tuple[str, str, str, str]]:
    return [
        (m.role, m.status, m.content, m.error_code)
        for m in Message.objects.filter(session__session_id=session_id).order_by("seq")
    ]


def error_event(code: str, message: str) -> dict:
    return {
        "token": "",
        "is_final": True,
        "type": "error",
        "metadata": {"code": code, "message": message},
    }


def refusing(url: str) -> bool:
    """Whether the server at ``url`` refuses TCP connections right now."""
    address = urlsplit(url)
    try:
        socket.create_connection((address.hostname, address.port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_refused_connections_are_retried(
    runtime_factory, devllm: DevLLM, transactional_db: None
) -> None:  # type: ignore[no-untyped-def]
    # A runtime of its own: a keep-alive connection pooled by an earlier test would carry the
    # request past the refusal. Retries come every 0.1 to 0.5 s for up to 30 s.
    rt = runtime_factory(
        llm_retry_attempts=100,
        llm_retry_backoff_seconds=0.1,
        llm_retry_max_backoff_seconds=0.5,
        llm_retry_total_seconds=30,
    )
    devllm.script({"content": "Back again."})
    devllm.client.post("/__dev__/refuse", json={"duration_ms": 4000}).raise_for_status()
    deadline = time.monotonic() + 5
    while not refusing(devllm.url):
        assert time.monotonic() < deadline, "the development LLM never refused a connection"
        time.sleep(0.02)

    frames = post_stream(rt.client, {"session_id": "refused", "content": "hello"})
    assert text_of(frames) == "Back again."
    assert len(devllm.requests()) == 1  # the refused attempts never reached it
    failures = [r for r in rt.log_records() if r.get("message") == "upstream failed"]
    assert failures, "no attempt was refused"
    assert all((r["code"], r["will_retry"]) == ("upstream_unavailable", True) for r in failures)
    assert [r["attempt"] for r in failures] == list(range(1, len(failures) + 1))


class SlammingServer:
    """Accepts TCP connections and closes them at once, counting them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            connection.close()


def test_failing_until_attempts_run_out_is_an_error_event(
    runtime_factory, devllm: DevLLM, transactional_db: None
) -> None:  # type: ignore[no-untyped-def]
    upstream = SlammingServer()
    dead = runtime_factory(
        llm_url=f"http://127.0.0.1:{upstream.port}",
        llm_retry_attempts=3,
        llm_retry_backoff_seconds=0.05,
    )
    frames = post_stream(dead.client, {"session_id": "dead", "content": "anyone?"})
    assert [f.data for f in frames] == [
        error_event("upstream_unavailable", "The language model server is unreachable."),
        "[DONE]",
    ]
    assert upstream.accepted == 3  # LLM_RETRY_ATTEMPTS
    assert statuses("dead") == [
        ("user", "complete", "anyone?", ""),
        ("assistant", "failed", "", "upstream_unavailable"),
    ]
    upstream.sock.close()


def test_429_is_retried_after_retry_after(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script(
        {"fault": {"kind": "status", "status": 429, "retry_after": "1"}},
        {"content": "Finally."},
    )
    frames = post_stream(rt.client, {"session_id": "429", "content": "hi"})
    assert text_of(frames) == "Finally."
    first, second = devllm.streams()
    assert second["started_at"] - first["started_at"] >= 1.0  # Retry-After was honoured
    assert statuses("429")[-1][:3] == ("assistant", "complete", "Finally.")


def test_5xx_is_retried_with_backoff(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script(
        {"fault": {"kind": "status", "status": 503}, "times": 2}, {"content": "Recovered."}
    )
    frames = post_stream(rt.client, {"session_id": "503", "content": "hi"})
    assert text_of(frames) == "Recovered."
    assert len(devllm.requests()) == 3


def test_5xx_until_attempts_run_out(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script({"fault": {"kind": "status", "status": 500}, "times": 10})
    frames = post_stream(rt.client, {"session_id": "500", "content": "hi"})
    event = frames[-2].data
    assert event["type"] == "error"
    assert event["metadata"]["code"] == "upstream_http_error"
    assert "HTTP 500" in event["metadata"]["message"]
    assert frames[-1].data == "[DONE]"
    assert len(devllm.requests()) == 3
    assert statuses("500")[-1] == ("assistant", "failed", "", "upstream_http_error")


def test_client_errors_are_not_retried(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script({"fault": {"kind": "status", "status": 400}, "times": 10})
    frames = post_stream(rt.client, {"session_id": "400", "content": "hi"})
    assert frames[-2].data["metadata"]["code"] == "upstream_http_error"
    # The upstream's own error body stays in the server's log.
    assert frames[-2].data["metadata"]["message"] == "The language model server answered HTTP 400."
    assert "scripted HTTP 400" in rt.log_text()
    assert len(devllm.requests()) == 1


def test_rate_limit_until_attempts_run_out(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script({"fault": {"kind": "status", "status": 429, "retry_after": "0"}, "times": 10})
    frames = post_stream(rt.client, {"session_id": "429x", "content": "hi"})
    assert frames[-2].data == error_event(
        "upstream_rate_limited", "The language model server is rate limiting."
    )


def test_delay_before_first_byte_sends_heartbeats(rt: Runtime, devllm: DevLLM) -> None:
    # 0.45 s of silence (under the 0.5 s read timeout) with a 0.2 s heartbeat.
    devllm.script({"content": "Slow start.", "first_byte_delay_ms": 450})
    with rt.client.stream(
        "POST", "/agent/message/stream", json={"session_id": "slow-start", "content": "hi"}
    ) as response:
        frames = list(iter_frames(response))
    first_data = next(i for i, f in enumerate(frames) if f.comment is None)
    assert first_data >= 1
    assert all(f.comment == "ping" for f in frames[:first_data])
    assert text_of([f for f in frames if f.comment is None]) == "Slow start."


def test_drop_after_tokens_is_not_retried_and_keeps_the_partial_answer(
    rt: Runtime, devllm: DevLLM
) -> None:
    devllm.script(
        {"tokens": ["one ", "two ", "three "], "fault": {"kind": "drop", "after_tokens": 2}}
    )
    frames = post_stream(rt.client, {"session_id": "drop", "content": "hi"})
    assert [f.data for f in frames] == [
        {"token": "one ", "is_final": False, "type": "assistant_message"},
        {"token": "two ", "is_final": False, "type": "assistant_message"},
        error_event("upstream_disconnected", "The language model server closed the stream early."),
        "[DONE]",
    ]
    assert len(devllm.requests()) == 1
    assert statuses("drop") == [
        ("user", "complete", "hi", ""),
        ("assistant", "failed", "one two ", "upstream_disconnected"),
    ]


def test_malformed_chunk_fails_the_turn(rt: Runtime, devllm: DevLLM) -> None:
    devllm.script({"tokens": ["fine "], "fault": {"kind": "malformed", "after_tokens": 1}})
    frames = post_stream(rt.client, {"session_id": "malformed", "content": "hi"})
    assert [f.data for f in frames] == [
        {"token": "fine ", "is_final": False, "type": "assistant_message"},
        error_event(
            "upstream_protocol_error", "The language model server sent a malformed stream."
        ),
        "[DONE]",
    ]
    assert statuses("malformed")[-1] == ("assistant", "failed", "fine ", "upstream_protocol_error")
    [stream] = devllm.streams()
    assert stream["disconnected_at"] is not None  # we hung up instead of waiting on it


@pytest.fixture(scope="module")
def httpx_faults_runtime(runtime_factory) -> Runtime:  # type: ignore[no-untyped-def]
    """The same, with the upstream read by httpx's own transport instead of aiohttp's."""
    return runtime_factory(**FAULT_SETTINGS, llm_http_transport="httpx")


@pytest.fixture(params=["aiohttp", "httpx"])
def any_transport(request, devllm: DevLLM, transactional_db: None) -> Runtime:  # type: ignore[no-untyped-def]
    name = "faults_runtime" if request.param == "aiohttp" else "httpx_faults_runtime"
    return request.getfixturevalue(name)


def test_stall_past_the_idle_timeout_fails_the_turn(any_transport: Runtime, devllm: DevLLM) -> None:
    rt = any_transport
    devllm.script(
        {"tokens": ["a ", "b "], "fault": {"kind": "stall", "after_tokens": 1, "stall_ms": 30000}}
    )
    frames = post_stream(rt.client, {"session_id": "stall", "content": "hi"})
    data = [f.data for f in frames]
    assert data[0] == {"token": "a ", "is_final": False, "type": "assistant_message"}
    assert data[-2] == error_event(
        "upstream_timeout", "The language model server stopped responding."
    )
    assert len(devllm.requests()) == 1
    assert statuses("stall")[-1] == ("assistant", "failed", "a ", "upstream_timeout")
    [stream] = devllm.streams()
    assert stream["disconnected_at"] is not None
