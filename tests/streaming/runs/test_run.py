"""The run's log and its readers, without HTTP: ids, replay from any point, leaving readers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from sessions.records import TurnStart
from streaming.engine.events import HEARTBEAT, StepFinished, TextDelta, TurnFinished
from streaming.runs.broker import InProcessBroker
from streaming.runs.run import EVENT_ID_STRIDE, Run, events_decode, events_encode, run_first_reader


class Script:
    """A turn's events, released one at a time by the test."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.closed = asyncio.Event()

    async def events(self) -> AsyncIterator[object]:
        try:
            while (item := await self.queue.get()) is not None:
                yield item
        finally:
            self.closed.set()


def new_run(script: Script, opening_seq: int = 3) -> Run:
    start = TurnStart(session_pk=1, turn_id=uuid.uuid4(), opening_seq=opening_seq)
    return Run(session_id="s", start=start, events=script.events())  # type: ignore[arg-type]


Items = list[tuple[int | None, object]]


async def collect(items: AsyncIterator[tuple[int | None, object]]) -> Items:
    return [item async for item in items]


async def test_ids_continue_the_opening_seq_and_readers_start_anywhere() -> None:
    script = Script()
    run = new_run(script)
    early = asyncio.ensure_future(collect(run.follow()))
    for text in ("a", "b"):
        script.queue.put_nowait(TextDelta(text))
    script.queue.put_nowait(HEARTBEAT)
    script.queue.put_nowait(TurnFinished("complete", "stop"))
    script.queue.put_nowait(None)
    await run.task

    base = 3 * EVENT_ID_STRIDE
    whole = await early
    assert [i for i, _ in whole] == [base + 1, base + 2, base + 3]
    assert [i for i, _ in await collect(run.follow(2))] == [base + 3]
    assert await collect(run.follow(3)) == []
    assert run.last_event_id == base + 3


async def test_a_heartbeat_reaches_live_readers_without_an_id() -> None:
    script = Script()
    run = new_run(script)
    reader = run.follow()
    script.queue.put_nowait(HEARTBEAT)
    assert await anext(reader) == (None, HEARTBEAT)
    script.queue.put_nowait(None)
    await run.task
    await reader.aclose()


async def test_a_reader_leaving_harms_no_other_reader_nor_the_run() -> None:
    script = Script()
    run = new_run(script)
    leaving = asyncio.ensure_future(collect(run.follow()))
    staying = asyncio.ensure_future(collect(run.follow()))
    await asyncio.sleep(0)
    leaving.cancel()
    script.queue.put_nowait(TextDelta("x"))
    script.queue.put_nowait(None)
    await run.task
    assert [event for _, event in await staying] == [TextDelta("x")]
    assert leaving.cancelled()


@pytest.mark.parametrize("on_disconnect", ["cancel", "continue"])
async def test_the_first_reader_leaving_stops_the_turn_only_under_cancel(
    on_disconnect: str,
) -> None:
    script = Script()
    run = new_run(script)
    first = run_first_reader(run, on_disconnect=on_disconnect)
    script.queue.put_nowait(TextDelta("a"))
    await anext(first)
    await first.aclose()  # what the response does when its client goes away
    await asyncio.sleep(0)
    if on_disconnect == "cancel":
        with pytest.raises(asyncio.CancelledError):
            await run.task
        assert script.closed.is_set()
        assert run.log[-1] == TurnFinished("interrupted", "interrupted", {})
    else:
        assert not run.task.done()
        script.queue.put_nowait(TextDelta("b"))
        script.queue.put_nowait(None)
        await run.task
        assert run.log == [TextDelta("a"), TextDelta("b")]


async def test_the_in_process_broker_finds_a_run_and_positions_a_cursor() -> None:
    broker = InProcessBroker()
    script = Script()
    run = new_run(script, opening_seq=5)
    broker.run_started(run)
    script.queue.put_nowait(TextDelta("a"))
    script.queue.put_nowait(TextDelta("b"))
    await asyncio.sleep(0.01)
    info = await broker.run_info(session_id="s")
    assert info is not None
    assert not info.ended
    base = 5 * EVENT_ID_STRIDE
    assert info.last_event_id == base + 2
    assert info.position(base + 1) == 1
    assert info.position(4 * EVENT_ID_STRIDE + 7) == 0  # an earlier turn's id: from the start
    assert info.position(None) == 0
    script.queue.put_nowait(None)
    await run.task
    rest = await collect(broker.run_read(info=info, after=1))
    assert rest == [(base + 2, TextDelta("b"))]
    run.pack()  # as the broker keeps an ended run: the same events, as bytes
    assert run.log == []
    assert run.last_event_id == base + 2
    assert await collect(broker.run_read(info=info, after=0)) == [
        (base + 1, TextDelta("a")),
        (base + 2, TextDelta("b")),
    ]
    assert await broker.run_info(session_id="other") is None


def test_events_survive_the_redis_encoding() -> None:
    events = [TextDelta("héllo"), StepFinished(1, "stop", {"total_tokens": 3})]
    events.append(TurnFinished("complete", "stop", {"total_tokens": 3}))
    assert events_decode(events_encode(7, events)) == (7, events)
