"""Turn telemetry: the log line and the Prometheus metrics, in one process and across workers."""

import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from streaming import telemetry
from tests.servers import BASE_DIR


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _finish(turn_id: object, **overrides: object) -> None:
    values: dict = {
        "session_id": "s-tel",
        "turn_id": turn_id,
        "outcome": "complete",
        "duration_s": 0.5,
        "ttft_s": 0.05,
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        "steps": 1,
    }
    values.update(overrides)
    telemetry.turn_finished(**values)


def test_a_finished_turn_moves_every_turn_metric() -> None:
    before = {
        "turns": _value("agent_runtime_turns_total", outcome="complete"),
        "prompt": _value("agent_runtime_tokens_total", kind="prompt"),
        "completion": _value("agent_runtime_tokens_total", kind="completion"),
        "ttft": _value("agent_runtime_turn_ttft_seconds_count"),
        "duration": _value("agent_runtime_turn_duration_seconds_count"),
        "active": _value("agent_runtime_active_streams"),
    }
    turn = uuid.uuid4()
    telemetry.turn_started(session_id="s-tel", turn_id=turn)
    assert _value("agent_runtime_active_streams") == before["active"] + 1
    _finish(turn)
    assert _value("agent_runtime_turns_total", outcome="complete") == before["turns"] + 1
    assert _value("agent_runtime_tokens_total", kind="prompt") == before["prompt"] + 11
    assert _value("agent_runtime_tokens_total", kind="completion") == before["completion"] + 7
    assert _value("agent_runtime_turn_ttft_seconds_count") == before["ttft"] + 1
    assert _value("agent_runtime_turn_duration_seconds_count") == before["duration"] + 1
    assert _value("agent_runtime_active_streams") == before["active"]


def test_a_turn_without_a_first_token_records_no_ttft() -> None:
    before = _value("agent_runtime_turn_ttft_seconds_count")
    _finish(uuid.uuid4(), outcome="failed", ttft_s=None, usage={})
    assert _value("agent_runtime_turn_ttft_seconds_count") == before


def test_the_active_gauge_never_counts_a_finish_it_did_not_start() -> None:
    before = _value("agent_runtime_active_streams")
    turn = uuid.uuid4()
    _finish(turn)  # never started
    telemetry.turn_started(session_id="s", turn_id=turn)
    _finish(turn)
    _finish(turn)  # finished twice
    assert _value("agent_runtime_active_streams") == before


def test_upstream_errors_and_tool_calls_are_counted() -> None:
    errors = _value("agent_runtime_upstream_errors_total", code="upstream_timeout")
    tools = _value("agent_runtime_tool_calls_total", tool="calculator", outcome="ok")
    telemetry.upstream_failed(code="upstream_timeout", attempt=1, will_retry=True)
    telemetry.tool_called(tool_name="calculator", outcome="ok", duration_s=0.01)
    assert _value("agent_runtime_upstream_errors_total", code="upstream_timeout") == errors + 1
    assert _value("agent_runtime_tool_calls_total", tool="calculator", outcome="ok") == tools + 1


def test_unknown_tools_share_one_label() -> None:
    before = _value("agent_runtime_tool_calls_total", tool="(unknown)", outcome="unknown_tool")
    for name in ("made_up_1", "made_up_2"):
        telemetry.tool_called(tool_name=name, outcome="unknown_tool", duration_s=0.0)
    after = _value("agent_runtime_tool_calls_total", tool="(unknown)", outcome="unknown_tool")
    assert after == before + 2
    assert _value("agent_runtime_tool_calls_total", tool="made_up_1", outcome="unknown_tool") == 0


def test_the_turn_log_line_has_the_fields_and_no_content(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="agent_runtime.turns"):
        _finish("t-1", session_id="s-log")
    [record] = [r for r in caplog.records if r.getMessage() == "turn finished"]
    assert record.levelno == logging.INFO
    fields = {
        k: getattr(record, k)
        for k in ("session_id", "turn_id", "outcome", "duration_ms", "ttft_ms", "steps")
    }
    assert fields == {
        "session_id": "s-log",
        "turn_id": "t-1",
        "outcome": "complete",
        "duration_ms": 500.0,
        "ttft_ms": 50.0,
        "steps": 1,
    }
    assert (record.prompt_tokens, record.completion_tokens, record.total_tokens) == (11, 7, 18)


WORKER = """
import sys, uuid
from streaming import telemetry
turn = uuid.uuid4()
telemetry.turn_started(session_id="s", turn_id=turn)
if sys.argv[1] == "finish":
    telemetry.turn_finished(session_id="s", turn_id=turn, outcome="complete", duration_s=1.0,
                            ttft_s=0.1, usage={"prompt_tokens": 5, "completion_tokens": 3},
                            steps=1)
"""

EXPOSE = """
from agent_runtime.metrics import exposition
print(exposition()[0].decode())
"""


def _python(code: str, *args: str, metrics_dir: Path) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def _sample(text: str, name: str) -> float:
    """The value of one series; 0 when absent (a gauge of no live worker has none)."""
    lines = [line for line in text.splitlines() if line.startswith(name + " ")]
    assert len(lines) <= 1
    return float(lines[0].split()[1]) if lines else 0.0


def test_multiprocess_mode_adds_up_the_workers_and_forgets_dead_ones(tmp_path: Path) -> None:
    for action in ("finish", "finish", "hang-up"):  # three workers; the last dies mid-turn
        _python(WORKER, action, metrics_dir=tmp_path)
    text = _python(EXPOSE, metrics_dir=tmp_path)
    assert _sample(text, 'agent_runtime_turns_total{outcome="complete"}') == 2
    assert _sample(text, 'agent_runtime_tokens_total{kind="prompt"}') == 10
    assert _sample(text, "agent_runtime_turn_ttft_seconds_count") == 2
    # The dead worker's open turn does not count as a live stream.
    assert _sample(text, "agent_runtime_active_streams") == 0
