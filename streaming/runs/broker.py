"""Where readers find a session's run: the broker, chosen by ``AGENT_RUNTIME__RUN_BROKER``.

``InProcessBroker`` (the default) serves the runs of this worker process from memory, which is
enough for one worker. ``streaming.runs.redis.RedisBroker`` copies every run's log to Redis
Streams, so that a reader on any worker or host can follow it.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from streaming.runs.memory import release_freed_memory_soon
from streaming.runs.run import EVENT_ID_STRIDE, Logged, Run


@dataclass(slots=True, frozen=True)
class RunInfo:
    """A session's current run, or its last one if it ended within ``RUN_EVENTS_TTL_SECONDS``."""

    session_id: str
    turn_id: str
    #: The id of the turn's events before the first: ``turn_number * EVENT_ID_STRIDE``.
    base: int
    started_at: datetime
    #: The id of the last event logged so far; None before the first.
    last_event_id: int | None
    ended: bool

    def position(self, cursor: int | None) -> int:
        """How many of this run's events a reader that saw ``cursor`` has: 0 for a cursor
        from another turn (or none), so that it gets this turn from its start."""
        if cursor is None or cursor // EVENT_ID_STRIDE != self.base // EVENT_ID_STRIDE:
            return 0
        return cursor - self.base

    def caught_up(self, position: int) -> bool:
        """Nothing more will come for a reader at ``position``."""
        return self.ended and position >= (self.last_event_id or self.base) - self.base


class RunBroker:
    """The interface every broker implements."""

    def run_started(self, run: Run) -> None:
        """A run began in this process; called before its first event."""
        raise NotImplementedError

    async def run_info(self, *, session_id: str) -> RunInfo | None:
        """The session's current or recently ended run; raises ``BrokerUnavailable``."""
        raise NotImplementedError

    def run_read(self, *, info: RunInfo, after: int) -> AsyncIterator[Logged]:
        """The run's events after its ``after``-th, then live until it ends. Heartbeats come
        when it is quiet for ``HEARTBEAT_SECONDS``. Raises ``BrokerUnavailable``."""
        raise NotImplementedError

    async def available(self) -> bool:
        """Whether the broker answers now (for ``/health``)."""
        raise NotImplementedError


def run_info_of(run: Run) -> RunInfo:
    return RunInfo(
        session_id=run.session_id,
        turn_id=run.turn_id,
        base=run.base,
        started_at=run.started_at,
        last_event_id=run.last_event_id,
        ended=run.ended,
    )


#: The context of the kept runs' timer: none of a request's.
_NO_CONTEXT = contextvars.Context()
#: What a kept run costs besides its packed log (the run and its entries here, measured),
#: counted against ``RUN_EVENTS_KEEP_MAX_BYTES``: a short answer packs into 200 bytes, so
#: without it the cap would let many short turns keep eight times what it says.
KEPT_RUN_OVERHEAD_BYTES = 1536


class InProcessBroker(RunBroker):
    """Runs of this process, kept in memory for ``RUN_EVENTS_TTL_SECONDS`` after they end.

    Ended runs are kept packed, at most ``RUN_EVENTS_KEEP_MAX_BYTES`` of them in all (with
    ``KEPT_RUN_OVERHEAD_BYTES`` each for the run itself): past that the oldest are forgotten
    before their TTL (resuming them answers 204).
    """

    def __init__(self) -> None:
        self._runs: dict[str, Run] = {}
        #: Ended runs still kept, oldest first: the bytes of their packed logs, and when they
        #: are forgotten (``loop.time()``).
        self._kept: dict[Run, tuple[int, float]] = {}
        self.kept_bytes = 0
        #: One timer for all the kept runs, not one each: a timer keeps the context it was
        #: made in (the ending request's), which would outlive the request by the TTL.
        self._expiry: asyncio.TimerHandle | None = None

    def run_started(self, run: Run) -> None:
        self._runs[run.session_id] = run
        run.on_end.append(self._keep)
        run.on_end.append(release_freed_memory_soon)

    def _keep(self, run: Run) -> None:
        run.pack()
        size = len(run.packed or b"") + KEPT_RUN_OVERHEAD_BYTES
        loop = asyncio.get_running_loop()
        self._kept[run] = (size, loop.time() + settings.RUN_EVENTS_TTL_SECONDS)
        self.kept_bytes += size
        while self.kept_bytes > settings.RUN_EVENTS_KEEP_MAX_BYTES and self._kept:
            self._forget(next(iter(self._kept)))
        if self._expiry is None and self._kept:
            self._expire(loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """Forget the kept runs whose TTL ran out; come back when the next one's does."""
        self._expiry = None
        now = loop.time()
        for run, (_, until) in list(self._kept.items()):
            if until > now:
                self._expiry = loop.call_at(until, self._expire, loop, context=_NO_CONTEXT)
                return
            self._forget(run)

    def _forget(self, run: Run) -> None:
        self.kept_bytes -= self._kept.pop(run, (0, 0.0))[0]
        if self._runs.get(run.session_id) is run:
            del self._runs[run.session_id]

    async def run_info(self, *, session_id: str) -> RunInfo | None:
        run = self._runs.get(session_id)
        return None if run is None else run_info_of(run)

    async def run_read(self, *, info: RunInfo, after: int) -> AsyncIterator[Logged]:
        run = self._runs.get(info.session_id)
        if run is None or run.turn_id != info.turn_id:
            return
        async for item in run.read(after):
            yield item

    async def available(self) -> bool:
        return True


@cache
def get_run_broker() -> RunBroker:
    """This process's broker, built once from ``AGENT_RUNTIME__RUN_BROKER``."""
    return import_string(settings.RUN_BROKER)()
