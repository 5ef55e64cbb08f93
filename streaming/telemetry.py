"""What the turn logic reports about itself: one place for logs and metrics of turns.

The turn code calls these functions and nothing else for observability, so the log format and
the metrics can change without touching the hot path.
"""

import logging
from typing import Any

logger = logging.getLogger("agent_runtime.turns")


def turn_started(*, session_id: str, turn_id: Any) -> None:
    """A turn took its session's lease and is about to call the model."""
    logger.debug("turn started", extra={"session_id": session_id, "turn_id": str(turn_id)})


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
    logger.info(
        "turn finished",
        extra={
            "session_id": session_id,
            "turn_id": str(turn_id),
            "outcome": outcome,
            "duration_ms": round(duration_s * 1000, 1),
            "ttft_ms": None if ttft_s is None else round(ttft_s * 1000, 1),
            "prompt_tokens": usage.get("prompt_tokens"),
            "completion_tokens": usage.get("completion_tokens"),
            "steps": steps,
        },
    )


def upstream_failed(*, code: str, attempt: int, will_retry: bool) -> None:
    logger.warning(
        "upstream failed", extra={"code": code, "attempt": attempt, "will_retry": will_retry}
    )


def tool_called(*, tool_name: str, outcome: str, duration_s: float) -> None:
    """A server-side tool ran (``ok``, ``error``, ``timeout``, ``invalid_arguments``)."""
    logger.info(
        "tool called",
        extra={"tool": tool_name, "outcome": outcome, "duration_ms": round(duration_s * 1000, 1)},
    )
