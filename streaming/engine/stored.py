"""Turns that run nothing: their events come from what is stored."""

from collections.abc import AsyncIterator

from sessions.models import Message
from sessions.records import TurnStart
from streaming.engine.events import TextDelta, TurnEvent, TurnFinished
from streaming.engine.step import denial_event


async def still_pending_events(start: TurnStart) -> AsyncIterator[TurnEvent]:
    """The answer was stored; other calls of the step still wait for theirs."""
    if start.denial is not None:
        yield denial_event(start.denial)
    yield TurnFinished(
        "complete",
        "tool_calls",
        pending_call_ids=start.pending_call_ids,
        awaiting_approval=start.awaiting_approval,
    )


async def replayed_events(start: TurnStart) -> AsyncIterator[TurnEvent]:
    """A repeated ``message_id``: the stored answer, as a turn's events."""
    last = None
    for message in start.replay or ():
        if message.role == Message.Role.ASSISTANT and message.content:
            yield TextDelta(message.content)
        last = message
    if last is None:
        yield TurnFinished("complete", None, usage=None, replayed=True)
    else:
        yield TurnFinished(
            last.status,  # type: ignore[arg-type]
            last.finish_reason or None,
            last.usage,
            replayed=True,
        )
