"""A run's events as bytes, for the ended runs a worker keeps and for the Redis broker."""

from __future__ import annotations

from typing import Any

import orjson

from streaming.engine import events as engine_events
from streaming.engine.events import TextDelta, TurnEvent

_EVENT_TYPES: dict[str, Any] = {
    cls.__name__: cls
    for cls in (
        engine_events.TextDelta,
        engine_events.ToolCallStarted,
        engine_events.ToolCallArgsDelta,
        engine_events.ToolCallReady,
        engine_events.ToolResult,
        engine_events.StepFinished,
        engine_events.TurnFinished,
        engine_events.TurnFailed,
    )
}


def events_encode(first: int, events: list[TurnEvent]) -> bytes:
    """Events as bytes: ``[first n, [item, ...]]``, an item being a text delta's bare text
    (a fraction of a dataclass's serialization, for the commonest event) or ``[type name,
    fields]``."""
    items = [
        event.text if type(event) is TextDelta else [type(event).__name__, event]  # type: ignore[union-attr]
        for event in events
    ]
    return orjson.dumps([first, items])


def events_decode(raw: bytes) -> tuple[int, list[TurnEvent]]:
    first, items = orjson.loads(raw)
    return first, [
        TextDelta(item) if type(item) is str else _EVENT_TYPES[item[0]](**item[1]) for item in items
    ]
