"""Storing what a turn produced: once per tool step and once at its end, never per token."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import sync_to_async

from agent_runtime.errors import UpstreamError
from sessions import services
from sessions.records import NewMessage, TurnStart
from streaming.engine.step import Step
from streaming.tool_calls import ToolCall

logger = logging.getLogger(__name__)


async def step_store(*, start: TurnStart, step: Step, model: str) -> list[dict[str, Any]] | None:
    """Store a step that called tools, with the results it has. With calls waiting for the
    client (a result, or the user's approval) the turn ends here (None) and they become the
    session's pending calls; otherwise the history for the next model call."""
    pending = step.waiting_calls()
    messages = step.messages(status="complete", model=model, stopped=False)
    history = await sync_to_async(services.turn_step_record)(
        session_pk=start.session_pk,
        turn_id=start.turn_id,
        messages=messages,
        pending_tool_calls=[_pending_entry(call) for call in pending],
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
        error_code = error.code if error else ""
        messages = step.messages(status=status, model=model, error_code=error_code, stopped=True)
    try:
        await sync_to_async(services.turn_record)(
            session_pk=start.session_pk, turn_id=start.turn_id, messages=messages, finished=True
        )
    except Exception:
        logger.exception("turn %s: storing the answer failed", start.turn_id)


def _pending_entry(call: ToolCall) -> dict[str, str]:
    """A call's entry in the session's pending calls (``Session.pending_tool_calls``)."""
    if call.awaiting_approval:
        arguments = call.raw_arguments
        return {"id": call.id, "name": call.name, "kind": "approval", "arguments": arguments}
    return {"id": call.id, "name": call.name}
