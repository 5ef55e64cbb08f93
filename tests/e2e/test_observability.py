"""Logs and metrics of real turns: JSON lines with the turn's fields, counters that move, and
neither the key nor message text in any log line at INFO or above."""

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import DevLLM, Runtime
from tests.sse import events, post_stream

pytestmark = pytest.mark.e2e

STREAM = "/agent/message/stream"


def _records(log: Path) -> list[dict[str, Any]]:
    """The JSON lines of a server log (the runtime logs nothing else)."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def _wait_for_record(log: Path, **fields: Any) -> dict[str, Any]:
    """The first record with these fields; the turn logs its end as it stores its answer."""
    deadline = time.monotonic() + 10
    while True:
        for record in _records(log):
            if all(record.get(k) == v for k, v in fields.items()):
                return record
        if time.monotonic() > deadline:
            raise AssertionError(f"no log record with {fields}")
        time.sleep(0.05)


def test_a_turn_is_logged_with_request_session_duration_ttft_tokens_and_outcome(
    runtime: Runtime, devllm: DevLLM
) -> None:
    devllm.script({"tokens": ["Observed ", "answer."]})
    request_id = f"obs-{uuid.uuid4().hex[:12]}"
    with runtime.client.stream(
        "POST",
        STREAM,
        json={"session_id": "obs-turn", "content": "observe me"},
        headers={"X-Request-ID": request_id},
    ) as response:
        assert response.headers["X-Request-ID"] == request_id
        frames = events(response)
    usage = frames[-2].data["metadata"]["usage"]

    finished = _wait_for_record(runtime.log, request_id=request_id, message="turn finished")
    assert finished["level"] == "INFO"
    assert finished["logger"] == "agent_runtime.turns"
    assert finished["timestamp"]
    assert finished["session_id"] == "obs-turn"
    assert finished["outcome"] == "complete"
    assert finished["duration_ms"] > 0
    assert 0 <= finished["ttft_ms"] <= finished["duration_ms"]
    assert finished["prompt_tokens"] == usage["prompt_tokens"]
    assert finished["completion_tokens"] == usage["completion_tokens"]

    started = _wait_for_record(runtime.log, request_id=request_id, message="turn started")
    assert started["session_id"] == "obs-turn"
    assert started["turn_id"] == finished["turn_id"]
    request = _wait_for_record(runtime.log, request_id=request_id, message="request")
    assert (request["method"], request["path"], request["status"]) == ("POST", STREAM, 200)


def test_neither_the_key_nor_message_text_is_in_any_log_at_info(
    runtime: Runtime, devllm: DevLLM, server_logs: Path
) -> None:
    user_text = f"confidential-user-text-{uuid.uuid4().hex}"
    reply_text = f"confidential-reply-text-{uuid.uuid4().hex}"
    devllm.script({"content": reply_text})
    request_id = f"secret-{uuid.uuid4().hex[:12]}"
    post_stream_response = runtime.client.post(
        STREAM,
        json={"session_id": "obs-secret", "content": user_text},
        headers={"X-Request-ID": request_id},
    )
    assert reply_text in post_stream_response.text
    # Rejected requests carrying the text, and a wrong key, are logged too.
    runtime.client.post(STREAM, json={"session_id": "bad id", "content": user_text})
    httpx.post(
        runtime.url + STREAM,
        headers={"X-Internal-Auth": runtime.key[:-1]},
        json={"session_id": "s", "content": user_text},
    )
    _wait_for_record(runtime.log, request_id=request_id, message="turn finished")

    logs = sorted(server_logs.glob("*.log"))
    assert runtime.log in logs
    checked = 0
    for log in logs:
        for line in log.read_text().splitlines():
            assert runtime.key not in line, f"{log.name}: {line}"  # at no level at all
            level = json.loads(line).get("level") if line.startswith("{") else "INFO"
            if level == "DEBUG":
                continue
            assert user_text not in line, f"{log.name}: {line}"
            assert reply_text not in line, f"{log.name}: {line}"
            checked += 1
    assert checked > 0


def _metrics(runtime: Runtime) -> dict[tuple[str, frozenset], float]:
    response = runtime.client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _delta(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_move_with_turns(runtime: Runtime, devllm: DevLLM) -> None:
    assert httpx.get(runtime.url + "/metrics").status_code == 401  # behind the key
    before = _metrics(runtime)
    devllm.script(
        {"tokens": ["one ", "two"]},
        {"tokens": ["three"]},
        {"tool_calls": [{"name": "calculator", "arguments": {"expr": "2+3"}, "id": "c1"}]},
        {"content": "It is 5."},
        {"tokens": ["half "], "fault": {"kind": "malformed", "after_tokens": 1}},
    )
    usages = []
    for i, content in enumerate(["first", "second", "compute 2+3"]):
        frames = post_stream(runtime.client, {"session_id": f"obs-metrics-{i}", "content": content})
        usages.append(frames[-2].data["metadata"]["usage"])
    failed = post_stream(runtime.client, {"session_id": "obs-metrics-fail", "content": "x"})
    assert failed[-2].data["type"] == "error"

    deadline = time.monotonic() + 10
    while True:  # each turn reports as it stores its answer, around its last event
        after = _metrics(runtime)
        ended = _delta(before, after, "agent_runtime_turns_total", outcome="complete")
        if ended >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert ended == 3
    assert _delta(before, after, "agent_runtime_turns_total", outcome="failed") == 1
    assert _delta(before, after, "agent_runtime_tokens_total", kind="prompt") >= sum(
        u["prompt_tokens"] for u in usages
    )
    assert _delta(before, after, "agent_runtime_tokens_total", kind="completion") >= sum(
        u["completion_tokens"] for u in usages
    )
    assert _delta(before, after, "agent_runtime_turn_ttft_seconds_count") == 4
    assert _delta(before, after, "agent_runtime_turn_duration_seconds_count") == 4
    assert after[("agent_runtime_active_streams", frozenset())] == 0
    assert (
        _delta(before, after, "agent_runtime_upstream_errors_total", code="upstream_protocol_error")
        == 1
    )
    assert (
        _delta(before, after, "agent_runtime_tool_calls_total", tool="calculator", outcome="ok")
        == 1
    )
    assert (
        _delta(before, after, "agent_runtime_http_requests_total", method="POST", status="200") == 4
    )


def _unshared_warnings(log: Path) -> list[dict[str, Any]]:
    return [
        r
        for r in _records(log)
        if r["level"] == "WARNING" and "manage.py serve --workers N" in r["message"]
    ]


def test_plain_uvicorn_workers_say_at_start_that_metrics_need_manage_py_serve(
    runtime_factory, runtime: Runtime
) -> None:  # type: ignore[no-untyped-def]
    # uvicorn --workers 2, as tests/servers.py starts it, without PROMETHEUS_MULTIPROC_DIR.
    assert not _unshared_warnings(runtime.log)  # one worker: its metrics are the service's
    two = runtime_factory(workers=2)
    deadline = time.monotonic() + 10
    while not _unshared_warnings(two.log) and time.monotonic() < deadline:
        time.sleep(0.05)
    (first, *_) = _unshared_warnings(two.log)
    assert first["logger"] == "agent_runtime.serve"
    assert "PROMETHEUS_MULTIPROC_DIR" in first["message"]
