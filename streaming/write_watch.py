"""Streams whose client stops taking bytes: dropped after ``STREAM_IDLE_WRITE_TIMEOUT_SECONDS``.

Django's ASGI handler awaits uvicorn's ``send`` for every chunk, and uvicorn's ``send`` waits
while the connection's write buffer is above its high-water mark (64 KiB) until the client
reads. So a client that reads nothing holds the response's iterator at its ``yield``: the
time between a ``yield`` and the next ``__anext__`` is the time a write waited. When one
waits longer than the timeout, the request's task is cancelled in that ``send``: Django then
closes the iterator (under ``on_disconnect: cancel`` that stops the turn, as a client's
leaving does) and returns without finishing the response, and uvicorn closes the connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing

from streaming.engine.events import TurnEvent
from streaming.runs.run import Logged, ReaderLagging
from streaming.wait_watch import WaitWatch

logger = logging.getLogger(__name__)

_LAGGING = "a reader fell too far behind its turn: its stream is dropped"


def _watch(idle: float) -> WaitWatch:
    """A watch on the current task's pending write: cancelled once one waits ``idle`` s."""
    task = asyncio.current_task()

    def drop(waited: float) -> None:
        logger.warning("a client accepted nothing for %.0f s: its stream is dropped", waited)
        if task is not None:
            task.cancel()

    return WaitWatch(idle, drop)


async def write_watched(frames: AsyncIterator[bytes], *, idle: float) -> AsyncIterator[bytes]:
    """``frames``, given up when one of them waits ``idle`` seconds to be written.

    A reader dropped for lagging (``ReaderLagging``) ends here too: its stream closes
    without its end mark, and the client may resume from its last event id.
    """
    watch = _watch(idle)
    loop = watch.loop
    try:
        async with aclosing(frames):
            async for frame in frames:
                watch.began = loop.time() or 1e-9
                yield frame
                watch.began = 0.0
    except ReaderLagging:
        logger.warning(_LAGGING)
    finally:
        watch.stop()


async def events_written(
    items: AsyncIterator[Logged],
    *,
    frame: Callable[[int | None, TurnEvent], bytes | None],
    end: bytes,
    idle: float,
) -> AsyncIterator[bytes]:
    """``write_watched`` of events framed one by one by ``frame`` (None: not shown), then
    ``end``: one generator for both, since every layer of async iteration costs per token."""
    watch = _watch(idle)
    loop = watch.loop
    try:
        async with aclosing(items):
            async for event_id, event in items:
                if (data := frame(event_id, event)) is not None:
                    watch.began = loop.time() or 1e-9
                    yield data
                    watch.began = 0.0
        watch.began = loop.time() or 1e-9
        yield end
    except ReaderLagging:
        logger.warning(_LAGGING)
    finally:
        watch.stop()
