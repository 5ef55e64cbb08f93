"""A run's events as bytes, for the ended runs a worker keeps and for the Redis broker."""

from __future__ import annotations

from typing import Any

import orjson

from streaming.engine import events as engine_events
from streaming.engine.events import TurnEvent

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
    """Events as bytes: ``[first n, [[type name, fields], ...]]``."""
    return orjson.dumps([first, [[type(event).__name__, event] for event in events]])


def events_decode(raw: bytes) -> tuple[int, list[TurnEvent]]:
    first, items = orjson.loads(raw)
    return first, [_EVENT_TYPES[name](**fields) for name, fields in items]
