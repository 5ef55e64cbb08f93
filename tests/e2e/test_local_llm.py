"""A real model server in the loop: llama.cpp's server (llama-cpp-python) with Gemma 3 270M.

Everything else talks to the development LLM, which this project wrote; these tests prove the
runtime works with a server it did not write. A recording proxy (``tests/recording_proxy.py``)
between the runtime and llama.cpp shows what went upstream and when the answer ended. The model
is a small base model whose words mean nothing: the tests check behaviour, never content.

They need the local model: ``bash scripts/local-llm install`` (the first time it compiles
llama.cpp, a few minutes). Without it they skip, unless ``REQUIRE_LOCAL_LLM=1`` (CI) makes
that a failure.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sessions.models import Message, Session
from tests.recording_proxy import Exchange, RecordingProxy
from tests.servers import Runtime, ServerProcess, local_llm_missing, start_llama_cpp
from tests.skips import skip_unless_required
from tests.sse import iter_frames

pytestmark = [pytest.mark.e2e, pytest.mark.local_llm]

MODEL = "gemma-3-270m"  # llama.cpp serves the one model it loaded, whatever the name
# Options of llama.cpp's server that forbid the model's two end tokens, so that it writes
# until max_tokens: the base model may otherwise end a reply at any time. The proxy adds them
# to what the runtime sends (the runtime has no setting for server-specific options).
NEVER_STOP = {"logit_bias": {"<eos>": -100, "<end_of_turn>": -100}, "logit_bias_type": "tokens"}


def _require_local_llm() -> None:
    reason = local_llm_missing()
    if reason is not None:
        skip_unless_required("REQUIRE_LOCAL_LLM", reason)


@pytest.fixture(scope="module")
def llama_cpp(server_logs: Path) -> Iterator[ServerProcess]:
    _require_local_llm()
    server = start_llama_cpp(server_logs)
    yield server
    server.stop()


def _fail_if_crashed(server: ServerProcess) -> None:
    """A crash of llama.cpp's server fails as that, not as the turns it cut short."""
    ended = server.ended()
    if ended is not None:
        pytest.fail(
            f"llama.cpp's server {ended}: the model server crashed, not the runtime. "
            f"The end of its log:\n{server.log_text()[-3000:]}"
        )


@pytest.fixture(autouse=True)
def _llama_cpp_alive(request: pytest.FixtureRequest) -> Iterator[None]:
    """Before and after each test that uses the module's llama.cpp: it is still running."""
    server = request.getfixturevalue("llama_cpp") if "llama_cpp" in request.fixturenames else None
    if server is not None:
        _fail_if_crashed(server)
    yield
    if server is not None:
        _fail_if_crashed(server)


def _turn(runtime: Runtime, session_id: str, content: str) -> list[tuple[float, Any]]:
    """The data frames of one turn, each with the (monotonic) time it reached the client."""
    frames = []
    with runtime.client.stream(
        "POST", "/agent/message/stream", json={"session_id": session_id, "content": content}
    ) as response:
        assert response.status_code == 200, response.read()
        for frame in iter_frames(response):
            if frame.comment is None:
                frames.append((time.monotonic(), frame.data))
    return frames


def _upstream_deltas(exchange: Exchange) -> list[str]:
    """The content deltas llama.cpp streamed in one exchange, as the proxy relayed them."""
    deltas = []
    for line in exchange.data.decode().splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line[6:]).get("choices", ()):
                if choice["delta"].get("content"):
                    deltas.append(choice["delta"]["content"])
    return deltas


def test_a_two_turn_conversation_with_llama_cpp_streams_and_persists(
    runtime_factory: Callable[..., Runtime], llama_cpp: ServerProcess, transactional_db: None
) -> None:
    # NEVER_STOP: the base model would sometimes end a reply after a token or two, leaving
    # nothing to see arrive incrementally; this way each reply is 48 tokens long.
    with RecordingProxy(llama_cpp.url, inject=NEVER_STOP) as proxy:
        runtime = runtime_factory(llm_url=proxy.url, llm_model=MODEL, llm_max_tokens=48)
        turns = [_turn(runtime, "real", "Hello, who are you?"), _turn(runtime, "real", "And?")]
        exchanges = proxy.chat_exchanges()

    assert len(exchanges) == 2
    texts = []
    for frames, exchange in zip(turns, exchanges, strict=True):
        *tokens, final, done = frames
        assert done[1] == "[DONE]"
        assert final[1]["is_final"] is True
        assert final[1]["type"] == "assistant_message"
        assert final[1]["metadata"]["finish_reason"] == "length"
        assert all(t["type"] == "assistant_message" and not t["is_final"] for _, t in tokens)
        # Every token llama.cpp streamed reached the client as its own event, in order...
        assert len(tokens) > 1
        assert [t["token"] for _, t in tokens] == _upstream_deltas(exchange)
        # ...and the first one arrived while llama.cpp was still generating: no buffering.
        assert exchange.done_at is not None
        assert tokens[0][0] < exchange.done_at
        assert exchange.status == 200
        texts.append("".join(t["token"] for _, t in tokens))

    messages = list(Message.objects.filter(session__session_id="real").order_by("seq"))
    assert [(m.role, m.status) for m in messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert [messages[1].content, messages[3].content] == texts
    assert {messages[1].model, messages[3].model} == {MODEL}

    first, second = (e.body for e in exchanges)
    for body in (first, second):
        assert (body["model"], body["stream"], body["max_tokens"]) == (MODEL, True, 48)
        assert "logit_bias" not in body  # what the runtime sent, before the proxy's addition
    assert first["messages"] == [{"role": "user", "content": "Hello, who are you?"}]
    assert second["messages"] == [
        {"role": "user", "content": "Hello, who are you?"},
        {"role": "assistant", "content": texts[0]},
        {"role": "user", "content": "And?"},
    ]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_rate(pid: int, seconds: float) -> float:
    """CPU seconds per second a process uses over the next ``seconds``."""
    cpu, started = _cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (_cpu_seconds(pid) - cpu) / (time.monotonic() - started)


def _wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:.0f}s")
        time.sleep(0.05)


def test_a_client_disconnect_stops_generation_in_llama_cpp(
    runtime_factory: Callable[..., Runtime], llama_cpp: ServerProcess, transactional_db: None
) -> None:
    # With NEVER_STOP the model generates all 2000 tokens, about a minute here, unless
    # something stops it.
    with RecordingProxy(llama_cpp.url, inject=NEVER_STOP) as proxy:
        runtime = runtime_factory(llm_url=proxy.url, llm_model=MODEL, llm_max_tokens=2000)
        log_start = len(llama_cpp.log_text())
        pid = llama_cpp.process.pid  # the script execs the server: this is llama.cpp itself
        with runtime.client.stream(
            "POST", "/agent/message/stream", json={"session_id": "gone", "content": "Go on."}
        ) as response:
            frames = iter_frames(response)
            seen = [next(frames).data["token"] for _ in range(5)]
            generating = _cpu_rate(pid, 2.0)
            [exchange] = proxy.chat_exchanges()
            assert exchange.done_at is None  # llama.cpp is still generating
        # Leaving the block closed the client's connection mid-stream.

        # The runtime hung up on the upstream, and llama.cpp's server saw its client go...
        _wait_for(lambda: exchange.client_gone_at is not None, 10, "the runtime did not hang up")
        _wait_for(
            lambda: "Disconnected from client" in llama_cpp.log_text()[log_start:],
            30,
            "llama.cpp's server did not log the disconnect",
        )
        # ...and stopped generating: it goes idle (a quarter of its generating rate, over a
        # one-second window) long before the minute the 2000 tokens would take.
        idle = _cpu_rate(pid, 1.0)
        deadline = time.monotonic() + 30
        while idle >= max(generating / 4, 0.02) and time.monotonic() < deadline:
            idle = _cpu_rate(pid, 1.0)
        assert idle < max(generating / 4, 0.02), (generating, idle)
        assert len(_upstream_deltas(exchange)) < 2000
        # It is free for the next request at once (with --interrupt_requests False a request
        # waits for the one before it to finish: a minute, had generation gone on).
        answer = httpx.post(
            llama_cpp.url + "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4},
            timeout=60,
        )
        assert answer.status_code == 200

    _wait_for(
        lambda: Message.objects.filter(session__session_id="gone", role="assistant").exists(),
        10,
        "no assistant message was stored",
    )
    assistant = Message.objects.get(session__session_id="gone", role="assistant")
    assert assistant.status == "interrupted"
    assert assistant.content.startswith("".join(seen))
    assert Session.objects.get(session_id="gone").active_turn_id is None


def test_an_answer_llama_cpp_cuts_short_is_not_stored_as_complete(
    runtime_factory: Callable[..., Runtime], server_logs: Path, transactional_db: None
) -> None:
    _require_local_llm()
    # llama-cpp-python's default: a new request ends the stream in progress with [DONE].
    llama = start_llama_cpp(server_logs, "--interrupt_requests", "True")
    try:
        with RecordingProxy(llama.url, inject=NEVER_STOP) as proxy:
            runtime = runtime_factory(llm_url=proxy.url, llm_model=MODEL, llm_max_tokens=2000)
            with runtime.client.stream(
                "POST", "/agent/message/stream", json={"session_id": "cut", "content": "Go on."}
            ) as response:
                frames = iter_frames(response)
                seen = [next(frames).data["token"] for _ in range(3)]
                # Another client's request to the same model server.
                other = httpx.post(
                    llama.url + "/v1/chat/completions",
                    json={
                        "model": MODEL,
                        "messages": [{"role": "user", "content": "Hi"}],
                        "max_tokens": 4,
                    },
                    timeout=60,
                )
                assert other.status_code == 200
                rest = [f.data for f in frames if f.comment is None]
            [exchange] = proxy.chat_exchanges()
    finally:
        _fail_if_crashed(llama)
        llama.stop()

    # llama.cpp ended the stream early: [DONE] with no choice finished.
    assert exchange.done_at is not None
    assert '"finish_reason": "length"' not in exchange.data.decode()
    assert len(_upstream_deltas(exchange)) < 2000
    # That must not pass for a whole answer: the client is told, the message is not complete.
    *tokens, final, done = rest
    assert done == "[DONE]"
    assert final["type"] == "error"
    assert final["metadata"]["code"] == "upstream_disconnected"
    assistant = Message.objects.get(session__session_id="cut", role="assistant")
    assert assistant.status == "failed"
    assert assistant.error_code == "upstream_disconnected"
    assert assistant.content == "".join(seen) + "".join(t["token"] for t in tokens)
