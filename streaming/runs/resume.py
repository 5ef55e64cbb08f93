"""Reading runs: the stream a POST answers with, a resumed stream, a session's running turn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from functools import partial

from agent_runtime.errors import BrokerUnavailable
from streaming.engine.events import TurnEvent
from streaming.engine.start import OpenedTurn, turn_abandon
from streaming.runs.broker import RunInfo, get_run_broker
from streaming.runs.run import Logged, Run, numbered, run_first_reader

logger = logging.getLogger(__name__)

#: An encoder of a wire format: events with their ids -> bytes.
Encoder = Callable[[AsyncIterator[Logged]], AsyncIterator[bytes]]


def run_events(*, opened: OpenedTurn, on_disconnect: str) -> AsyncIterator[Logged]:
    """The events of an opened turn, with their ids, for the request that opened it.

    A turn that runs gets a run (its events logged for other readers); a replayed answer does
    not, and keeps ids from 1.
    """
    if opened.start is None:
        return numbered(opened.events)
    session_id, turn_id = opened.session_id, opened.start.turn_id
    run = Run(
        session_id=session_id,
        start=opened.start,
        events=opened.events,
        abandon=partial(turn_abandon, session_id=session_id, turn_id=turn_id),
    )
    get_run_broker().run_started(run)
    return run_first_reader(run, on_disconnect=on_disconnect)


async def run_current(*, session_id: str) -> RunInfo | None:
    """The session's running turn, if any; None too when the broker cannot say."""
    try:
        info = await get_run_broker().run_info(session_id=session_id)
    except BrokerUnavailable:
        logger.warning("event broker unavailable: running turn of %s unknown", session_id)
        return None
    return None if info is None or info.ended else info


async def run_resume(
    *, session_id: str, cursor: int | None, encoder: Encoder
) -> AsyncIterator[bytes] | None:
    """The session's run from after ``cursor``, live until it ends, encoded.

    None when there is nothing to resume: no run within ``RUN_EVENTS_TTL_SECONDS``, or the run
    ended and the reader has seen all of it. Raises ``BrokerUnavailable`` before any byte.
    """
    broker = get_run_broker()
    info = await broker.run_info(session_id=session_id)
    if info is None:
        return None
    after = info.position(cursor)
    if info.caught_up(after):
        return None
    return _ended_early_on_failure(encoder(broker.run_read(info=info, after=after)))


async def _ended_early_on_failure(frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A broker failure mid-stream closes the stream without its end mark: the client sees
    it is incomplete, and may reconnect."""
    try:
        async with aclosing(frames):
            async for frame in frames:
                yield frame
    except BrokerUnavailable:
        logger.warning("event broker failed while a reader followed a run")


async def events_only(items: AsyncIterator[Logged]) -> AsyncIterator[TurnEvent]:
    """The events without their ids, for an encoder of a format that has none."""
    async for _, event in items:
        yield event
