"""Storing what a turn produced: once per tool step and once at its end, never per token."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import sync_to_async

from agent_runtime.errors import UpstreamError
from sessions import services
from sessions.records import NewMessage, TurnStart
from streaming.engine.step import Step

logger = logging.getLogger(__name__)


async def step_store(*, start: TurnStart, step: Step, model: str) -> list[dict[str, Any]] | None:
    """Store a step that called tools, with the results it has. With client-side calls
    waiting the turn ends here (None); otherwise the history for the next model call."""
    pending = step.pending_client_calls()
    messages = [
        step.assistant_message(status="complete", model=model),
        *step.tool_messages(stopped=False),
    ]
    history = await sync_to_async(services.turn_step_record)(
        session_pk=start.session_pk,
        turn_id=start.turn_id,
        messages=messages,
        pending_tool_calls=[{"id": c.id, "name": c.name} for c in pending],
    )
    step.stored = True
    return history


async def turn_store_end(
    *, start: TurnStart, step: Step | None, status: str, error: UpstreamError | None, model: str
) -> None:
    """Store the unstored part of the last step and give up the session's lease.

    A step stopped while its tools ran keeps its calls, each with a result, so the history
    stays valid for the next turn. Failures are logged, never raised: this runs on every way
    out of a turn, a client's disconnect included.
    """
    messages: list[NewMessage] = []
    if step is not None and not step.stored:
        messages.append(
            step.assistant_message(
                status=status, model=model, error_code=error.code if error else ""
            )
        )
        if step.calls is not None:
            messages.extend(step.tool_messages(stopped=True))
    try:
        await sync_to_async(services.turn_record)(
            session_pk=start.session_pk, turn_id=start.turn_id, messages=messages, finished=True
        )
    except Exception:
        logger.exception("turn %s: storing the answer failed", start.turn_id)
