"""Several inputs posted at once: a frontend posting all of a step's answers in one request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from streaming.engine.events import TurnEvent, TurnFinished
from streaming.engine.start import (
    OpenedTurn,
    ToolDecision,
    ToolOutput,
    TurnInput,
    turn_open_events,
)


async def turn_open_each(*, turn_inputs: list[TurnInput]) -> OpenedTurn:
    """Submit the inputs in order: the turn the first one that opens one opens, normally the
    last (an answer that leaves calls waiting opens none: its events are stored ones, a
    denial's result and the final event listing what waits). The inputs after it are not
    submitted. The denials' results of the answers before it lead its events."""
    carried: list[TurnEvent] = []
    for turn_input in turn_inputs[:-1]:
        opened = await turn_open_events(turn_input=turn_input)
        if opened.start is not None or not isinstance(turn_input, ToolOutput | ToolDecision):
            return _led_by(carried, opened)
        async with aclosing(opened.events):  # type: ignore[type-var]
            carried += [e async for e in opened.events if not isinstance(e, TurnFinished)]
    return _led_by(carried, await turn_open_events(turn_input=turn_inputs[-1]))


async def turn_events_each(*, turn_inputs: list[TurnInput]) -> AsyncIterator[TurnEvent]:
    """The events of :func:`turn_open_each`."""
    return (await turn_open_each(turn_inputs=turn_inputs)).events


def _led_by(carried: list[TurnEvent], opened: OpenedTurn) -> OpenedTurn:
    if not carried:
        return opened
    return OpenedTurn(opened.session_id, _chained(carried, opened.events), opened.start)


async def _chained(
    first: list[TurnEvent], rest: AsyncIterator[TurnEvent]
) -> AsyncIterator[TurnEvent]:
    async with aclosing(rest):  # type: ignore[type-var]
        for event in first:
            yield event
        async for event in rest:
            yield event
