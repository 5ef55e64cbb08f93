"""A run: the task that drives one turn, and the turn's event log that readers follow.

The turn no longer belongs to the HTTP connection that started it. Its events are appended,
with their ids, to the run's log in this process; the request that started the turn is the
log's first reader, and the broker (``streaming.runs.broker``) lets readers elsewhere follow.
What is buffered is bounded: a ``cancel`` turn is read only as fast as its client takes it; a
reader of a turn that does not wait for it is dropped when it lags (``ReaderLagging``).

Event ids are integers: ``turn_number * EVENT_ID_STRIDE + n``, where ``turn_number`` counts the
session's turns (``Session.turns_opened``) and ``n`` counts the turn's events from 1. So they
increase within a stream and across a session's turns, and are unique within the session.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from sessions.records import TurnStart
from streaming.background import task_kept
from streaming.engine.events import HEARTBEAT, Heartbeat, TurnEvent, TurnFailed, TurnFinished
from streaming.runs.codec import events_decode, events_encode

logger = logging.getLogger(__name__)

#: Room for a billion events per turn between two turns' ids.
EVENT_ID_STRIDE = 1_000_000_000

#: A packed log shorter than this is kept as it is: zlib's set-up for each call (a quarter of a
#: megabyte of tables to allocate and clear) costs more than the few bytes it would save.
PACK_COMPRESS_MIN_BYTES = 1024

#: An event and its id; a heartbeat has none.
Logged = tuple[int | None, TurnEvent]


class ReaderLagging(Exception):
    """A reader fell more than ``RUN_READER_MAX_LAG_EVENTS`` behind a turn that does not wait
    for it: its stream ends without its end mark, and it may resume from the log."""


def _final(event: TurnEvent) -> bool:
    return type(event) is TurnFailed or type(event) is TurnFinished


class Run:
    """A turn's events as a log of ``(n, event)``; readers follow it from any ``n``.

    Who drives the turn's generator depends on ``on_disconnect``. Under ``cancel`` the request
    that started the turn drives it itself (``run_first_reader``): the model is read only as
    fast as that client takes the events, with no task or future between them, and the
    client's leaving closes the generator. Under ``continue`` a task (``drive_in_task``)
    drives it at the model's pace, since the turn must outlive its client; every reader then
    follows the log. A cancellation that reached a reader inside the generator would end the
    turn, which is why a ``continue`` turn cannot be driven by its reader.
    """

    def __init__(
        self,
        *,
        session_id: str,
        start: TurnStart,
        events: AsyncIterator[TurnEvent],
        abandon: Callable[[], Awaitable[None]] | None = None,
    ):
        self.session_id = session_id
        self.turn_id = str(start.turn_id)
        self.base = start.turn_number * EVENT_ID_STRIDE
        self.started_at: datetime = timezone.now()
        #: The events so far; ``log[i]`` has ``n = i + 1``.
        self.log: list[TurnEvent] = []
        self.ended = False
        #: An ended run's events as bytes (``pack``), and how many they are.
        self.packed: bytes | None = None
        self._packed_count = 0
        self._compressed = False
        #: Called after every change (an event, a heartbeat, the end): a broker's hook.
        self.on_change: Callable[[], None] | None = None
        #: Called once, when the run ends.
        self.on_end: list[Callable[[Run], None]] = []
        self.task: asyncio.Task[None] | None = None
        self._events = events
        #: Gives the session back for a turn whose generator never started (``abandon_unread``).
        self._abandon = abandon
        #: Whether the turn's generator was taken (by ``drive``, or given up unread).
        self._taken = False
        self._unread_watch: asyncio.TimerHandle | None = None
        self._beats = 0
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def last_event_id(self) -> int | None:
        count = len(self.log) if self.packed is None else self._packed_count
        return self.base + count if count else None

    def pack(self) -> None:
        """Keep an ended run's events as bytes, compressed from ``PACK_COMPRESS_MIN_BYTES``
        on: a few percent of the objects' memory (a model's text compresses about threefold)."""
        if self.ended and self.packed is None:
            packed = events_encode(1, self.log)
            self._compressed = len(packed) >= PACK_COMPRESS_MIN_BYTES
            self.packed = zlib.compress(packed, 1) if self._compressed else packed
            self._packed_count = len(self.log)
            self.log = []
            self._abandon = None

    def stop(self) -> None:
        """Stop a task-driven turn as a client's leaving does: its answer is ``interrupted``."""
        if not self.ended and self.task is not None:
            self.task.cancel()

    def drive_in_task(self) -> None:
        """Drive the turn in a task of its own, whoever reads it."""
        self.task = task_kept(self._drive())

    async def _drive(self) -> None:
        async with aclosing(self.drive()) as items:
            async for _ in items:
                pass

    def watch_unread(self, seconds: float) -> None:
        """Give the turn up (``abandon_unread``) if nothing drives it within ``seconds``.

        Django's ASGI handler cancels a request whose client leaves after the view returned
        but before the response is iterated, without closing the response's iterator: the
        turn's generator never starts, so its ``finally`` never stores the answer or releases
        the session's lease.
        """
        self._unread_watch = asyncio.get_running_loop().call_later(seconds, self.abandon_unread)

    def abandon_unread(self) -> None:
        """End a run whose turn never started: the session is given back (an empty
        ``interrupted`` answer), and the log ends ``interrupted``."""
        if self._taken:
            return
        self._taken = True
        logger.warning("turn %s was never read: its session is given back", self.turn_id)
        task_kept(self._abandoned())

    async def _abandoned(self) -> None:
        try:
            await self._events.aclose()  # type: ignore[attr-defined]
            if self._abandon is not None:
                await self._abandon()
        finally:
            self.log.append(TurnFinished("interrupted", "interrupted", {}))
            self.ended = True
            self._changed()
            for callback in self.on_end:
                callback(self)

    async def drive(self) -> AsyncIterator[Logged]:
        """Read the turn's generator into the log, yielding each event as it is logged.

        Leaving early (``aclose``, a cancellation) closes the turn's generator: the turn
        stores its answer as ``interrupted``, and the log ends with that final event. A run
        given up unread (``abandon_unread``) is only followed.
        """
        if self._unread_watch is not None:
            self._unread_watch.cancel()
            self._unread_watch = None  # it keeps the request's context
        if self._taken:
            async for item in self.follow():
                yield item
            return
        self._taken = True
        events = self._events
        log = self.log
        base = self.base
        finished = False
        try:
            async for event in events:
                if type(event) is Heartbeat:
                    self._beats += 1
                    self._changed()
                    yield None, event
                else:
                    log.append(event)
                    if self._waiters or self.on_change is not None:  # a call per event spared
                        self._changed()
                    yield base + len(log), event
            finished = True
        except Exception:
            logger.exception("turn %s failed unexpectedly", self.turn_id)
            failed = TurnFailed("internal_error", "The turn stopped on an internal error.")
            log.append(failed)
            finished = True
            yield base + len(log), failed
        finally:
            if not finished:
                # Closed at our yield: the turn's generator waits at its own, close it too.
                # (Cancelled inside it, it already stored its answer and is closed.)
                await events.aclose()  # type: ignore[attr-defined]
                if not (log and _final(log[-1])):
                    log.append(TurnFinished("interrupted", "interrupted", {}))
            self.ended = True
            self._changed()
            for callback in self.on_end:
                callback(self)

    def _changed(self) -> None:
        if self._waiters:
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

    def read(self, after: int = 0) -> AsyncIterator[Logged]:
        """A reader the turn does not wait for (every one but the one that drives it): it is
        dropped (``ReaderLagging``) when it falls ``RUN_READER_MAX_LAG_EVENTS`` behind."""
        return self.follow(after, max_lag=settings.RUN_READER_MAX_LAG_EVENTS)

    async def follow(self, after: int = 0, *, max_lag: int | None = None) -> AsyncIterator[Logged]:
        """The events after the ``after``-th, then each as it comes, until the run ends.

        With ``max_lag``, a reader that falls more than ``max_lag`` events further behind the
        log's end than it was when it began gets ``ReaderLagging``.
        """
        index = max(after, 0)
        beats = self._beats
        base = self.base
        if max_lag is not None and self.packed is None:
            max_lag += max(len(self.log) - index, 0)
        while True:
            if self.packed is not None:
                packed = zlib.decompress(self.packed) if self._compressed else self.packed
                _, events = events_decode(packed)
                for i in range(index, len(events)):
                    yield base + i + 1, events[i]
                return
            log = self.log
            if index < len(log):
                end = len(log)
                if max_lag is not None and not self.ended and end - index > max_lag:
                    raise ReaderLagging()
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


def run_first_reader(run: Run, *, on_disconnect: str) -> AsyncIterator[Logged]:
    """The reader of the request that started the run.

    Under ``cancel`` it drives the turn (its leaving closes it: ``interrupted``); under
    ``continue`` a task does, and this reader follows the log and may be dropped when it lags
    (``ReaderLagging``); its leaving leaves the turn running.
    """
    if on_disconnect == "cancel":
        run.watch_unread(settings.STREAM_IDLE_WRITE_TIMEOUT_SECONDS)
        return run.drive()
    run.drive_in_task()
    return run.read()


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
