"""A run: the task that drives one turn, and the turn's event log that readers follow.

The turn no longer belongs to the HTTP connection that started it. Its events are appended,
with their ids, to the run's log in this process; the request that started the turn is the
log's first reader, and the broker (``streaming.runs.broker``) lets readers elsewhere follow.

Event ids are integers: ``opening_seq * EVENT_ID_STRIDE + n``, where ``opening_seq`` is the
``seq`` of the message that opened the turn and ``n`` counts the turn's events from 1. So they
increase within a stream and across a session's turns, and are unique within the session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from datetime import datetime
from typing import Any

import orjson
from django.utils import timezone

from sessions.records import TurnStart
from streaming.engine import events as engine_events
from streaming.engine.events import HEARTBEAT, Heartbeat, TurnEvent, TurnFailed, TurnFinished

logger = logging.getLogger(__name__)

#: Room for a billion events per turn between two turns' ids.
EVENT_ID_STRIDE = 1_000_000_000

#: An event and its id; a heartbeat has none.
Logged = tuple[int | None, TurnEvent]

# Running runs; a strong reference keeps each task alive when no request holds it.
_tasks: set[asyncio.Task[None]] = set()

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


class Run:
    """Drives a turn's events into a log of ``(n, event)``; readers follow it from any ``n``."""

    def __init__(self, *, session_id: str, start: TurnStart, events: AsyncIterator[TurnEvent]):
        self.session_id = session_id
        self.turn_id = str(start.turn_id)
        self.base = start.opening_seq * EVENT_ID_STRIDE
        self.started_at: datetime = timezone.now()
        #: The events so far; ``log[i]`` has ``n = i + 1``.
        self.log: list[TurnEvent] = []
        self.ended = False
        #: An ended run's events as bytes (``pack``), and how many they are.
        self.packed: bytes | None = None
        self._packed_count = 0
        #: Called after every change (an event, a heartbeat, the end): a broker's hook.
        self.on_change: Callable[[], None] | None = None
        self._beats = 0
        self._waiters: list[asyncio.Future[None]] = []
        self.task = asyncio.get_running_loop().create_task(self._drive(events))
        _tasks.add(self.task)
        self.task.add_done_callback(_tasks.discard)

    @property
    def last_event_id(self) -> int | None:
        count = len(self.log) if self.packed is None else self._packed_count
        return self.base + count if count else None

    def pack(self) -> None:
        """Keep an ended run's events as bytes, about a third of the objects' memory."""
        if self.ended and self.packed is None:
            self.packed, self._packed_count = events_encode(1, self.log), len(self.log)
            self.log = []

    def stop(self) -> None:
        """Stop the turn as a client's leaving does: its answer so far is ``interrupted``."""
        if not self.ended:
            self.task.cancel()

    async def _drive(self, events: AsyncIterator[TurnEvent]) -> None:
        try:
            async with aclosing(events):
                async for event in events:
                    if type(event) is Heartbeat:
                        self._beats += 1
                    else:
                        self.log.append(event)
                    self._changed()
        except asyncio.CancelledError:
            # The turn stored its answer as interrupted; other readers get a last event.
            self.log.append(TurnFinished("interrupted", "interrupted", {}))
            raise
        except Exception:
            logger.exception("turn %s failed unexpectedly", self.turn_id)
            self.log.append(TurnFailed("internal_error", "The turn stopped on an internal error."))
        finally:
            self.ended = True
            self._changed()

    def _changed(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        if self.on_change is not None:
            self.on_change()

    async def changed(self) -> None:
        """Wait for the next change; one future per reader, so a reader leaving harms none."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    async def follow(self, after: int = 0) -> AsyncIterator[Logged]:
        """The events after the ``after``-th, then each as it comes, until the run ends."""
        index = max(after, 0)
        beats = self._beats
        base = self.base
        while True:
            if self.packed is not None:
                _, events = events_decode(self.packed)
                for i in range(index, len(events)):
                    yield base + i + 1, events[i]
                return
            log = self.log
            if index < len(log):
                end = len(log)
                for i in range(index, end):
                    yield base + i + 1, log[i]
                index = end
            elif self.ended:
                return
            elif beats != self._beats:
                beats = self._beats
                yield None, HEARTBEAT
            else:
                await self.changed()


async def run_first_reader(run: Run, *, on_disconnect: str) -> AsyncIterator[Logged]:
    """The reader of the request that started the run.

    If it leaves before the end, ``on_disconnect`` says whether that stops the turn (``cancel``)
    or the turn goes on without it (``continue``).
    """
    finished = False
    try:
        async for item in run.follow():
            yield item
        finished = True
    finally:
        if not finished and on_disconnect == "cancel":
            run.stop()


async def numbered(events: AsyncIterator[TurnEvent]) -> AsyncIterator[Logged]:
    """Events that are not a run (a replayed answer), with ids from 1 as before runs existed."""
    event_id = 0
    async with aclosing(events):
        async for event in events:
            if type(event) is Heartbeat:
                yield None, event
            else:
                event_id += 1
                yield event_id, event
