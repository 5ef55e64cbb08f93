"""What the turn logic reports about itself: one place for logs and metrics of turns.

The turn code calls these functions and nothing else for observability, so the log format and
the metrics can change without touching the hot path. None of them logs message content.

Contract for callers: call :func:`turn_started` when a turn has taken its session's lease and
:func:`turn_finished` exactly once when it ends, whatever the outcome (a ``finally:``); the
active-streams gauge counts the turns between the two.
"""

import logging
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from agent_runtime.logs import bind_session

logger = logging.getLogger("agent_runtime.turns")

TURNS = Counter("agent_runtime_turns", "Turns that ended, by outcome.", ["outcome"])
TOKENS = Counter(
    "agent_runtime_tokens",
    "Tokens reported by the model server: kind=prompt (in) or completion (out).",
    ["kind"],
)
TTFT = Histogram(
    "agent_runtime_turn_ttft_seconds",
    "Time from the start of a turn to its first token.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
TURN_DURATION = Histogram(
    "agent_runtime_turn_duration_seconds",
    "Duration of a turn, start to end, whatever the outcome.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
ACTIVE_STREAMS = Gauge(
    "agent_runtime_active_streams",
    "Turns streaming right now.",
    multiprocess_mode="livesum",  # summed over the live workers only
)
UPSTREAM_ERRORS = Counter(
    "agent_runtime_upstream_errors",
    "Failed calls to the model server, by error code (retried ones included).",
    ["code"],
)
TOOL_CALLS = Counter(
    "agent_runtime_tool_calls",
    "Server-side tool calls, by tool and outcome.",
    ["tool", "outcome"],
)

UNKNOWN_TOOL_LABEL = "(unknown)"

# Turns counted in ACTIVE_STREAMS by this process: a finish without a start (or a second
# finish) must not push the gauge below the truth.
_active: set[str] = set()


def turn_started(*, session_id: str, turn_id: Any) -> None:
    """A turn took its session's lease and is about to call the model."""
    bind_session(session_id)
    turn = str(turn_id)
    if turn not in _active:
        _active.add(turn)
        ACTIVE_STREAMS.inc()
    logger.info("turn started", extra={"session_id": session_id, "turn_id": turn})


def turn_finished(
    *,
    session_id: str,
    turn_id: Any,
    outcome: str,
    duration_s: float,
    ttft_s: float | None,
    usage: dict[str, int],
    steps: int,
) -> None:
    """A turn ended; ``outcome`` is the stored status (complete, interrupted, cancelled, failed)."""
    turn = str(turn_id)
    if turn in _active:
        _active.discard(turn)
        ACTIVE_STREAMS.dec()
    prompt_tokens = usage.get("prompt_tokens")
    completion_tokens = usage.get("completion_tokens")
    TURNS.labels(outcome).inc()
    TURN_DURATION.observe(duration_s)
    if ttft_s is not None:
        TTFT.observe(ttft_s)
    if prompt_tokens:
        TOKENS.labels("prompt").inc(prompt_tokens)
    if completion_tokens:
        TOKENS.labels("completion").inc(completion_tokens)
    logger.info(
        "turn finished",
        extra={
            "session_id": session_id,
            "turn_id": turn,
            "outcome": outcome,
            "duration_ms": round(duration_s * 1000, 1),
            "ttft_ms": None if ttft_s is None else round(ttft_s * 1000, 1),
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": usage.get("total_tokens"),
            "steps": steps,
        },
    )


def upstream_failed(*, code: str, attempt: int, will_retry: bool) -> None:
    UPSTREAM_ERRORS.labels(code).inc()
    logger.warning(
        "upstream failed", extra={"code": code, "attempt": attempt, "will_retry": will_retry}
    )


def tool_called(*, tool_name: str, outcome: str, duration_s: float) -> None:
    """A server-side tool ran (``ok``, ``error``, ``timeout``, ``invalid_arguments``,
    ``unknown_tool``)."""
    # The model names unknown tools at will: one label value for all of them keeps the number
    # of series bounded by the registered tools.
    label = UNKNOWN_TOOL_LABEL if outcome == "unknown_tool" else tool_name
    TOOL_CALLS.labels(label, outcome).inc()
    logger.info(
        "tool called",
        extra={
            "tool": tool_name[:100],
            "outcome": outcome,
            "duration_ms": round(duration_s * 1000, 1),
        },
    )
