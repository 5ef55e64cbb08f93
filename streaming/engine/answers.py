"""Several inputs posted at once: a frontend posting all of a step's answers in one request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from streaming.engine.events import TurnEvent, TurnFinished
from streaming.engine.start import OpenedTurn, TurnInput, turn_open_events


async def turn_open_each(*, turn_inputs: list[TurnInput]) -> OpenedTurn:
    """Submit the inputs in order: the turn the first one that opens one opens, normally the
    last (an answer that leaves calls waiting opens none). The inputs after it are not
    submitted. The events of the answers before it but their last (what still waits), such as
    a denial's result, lead the turn's events."""
    before: list[TurnEvent] = []
    for turn_input in turn_inputs[:-1]:
        opened = await turn_open_events(turn_input=turn_input)
        if opened.start is not None:
            return _led_by(before, opened)
        events: list[TurnEvent] = []
        async with aclosing(opened.events):  # type: ignore[type-var]
            async for event in opened.events:
                events.append(event)
        last = events[-1] if events else None
        if not (isinstance(last, TurnFinished) and last.pending_call_ids is not None):
            return OpenedTurn(opened.session_id, _replayed(before + events))
        before += events[:-1]
    return _led_by(before, await turn_open_events(turn_input=turn_inputs[-1]))


def _led_by(before: list[TurnEvent], opened: OpenedTurn) -> OpenedTurn:
    if not before:
        return opened
    return OpenedTurn(opened.session_id, _chained(before, opened.events), opened.start)


async def _replayed(events: list[TurnEvent]) -> AsyncIterator[TurnEvent]:
    for event in events:
        yield event


async def _chained(
    before: list[TurnEvent], rest: AsyncIterator[TurnEvent]
) -> AsyncIterator[TurnEvent]:
    for event in before:
        yield event
    async with aclosing(rest):  # type: ignore[type-var]
        async for event in rest:
            yield event
