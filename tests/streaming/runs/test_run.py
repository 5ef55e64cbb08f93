"""The run's log and its readers, without HTTP: ids, replay from any point, leaving readers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from sessions.records import TurnStart
from streaming.engine.events import HEARTBEAT, TextDelta, TurnFinished
from streaming.runs.broker import KEPT_RUN_OVERHEAD_BYTES, InProcessBroker
from streaming.runs.codec import events_encode
from streaming.runs.run import (
    EVENT_ID_STRIDE,
    PACK_COMPRESS_MIN_BYTES,
    ReaderLagging,
    Run,
    run_first_reader,
)


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


def new_run(script: Script, turn_number: int = 3, *, in_task: bool = True) -> Run:
    """A run; driven by a task of its own unless ``in_task`` is false."""
    start = TurnStart(session_pk=1, turn_id=uuid.uuid4(), turn_number=turn_number)
    run = Run(session_id="s", start=start, events=script.events())  # type: ignore[arg-type]
    if in_task:
        run.drive_in_task()
    return run


Items = list[tuple[int | None, object]]


async def collect(items: AsyncIterator[tuple[int | None, object]]) -> Items:
    return [item async for item in items]


async def test_ids_continue_the_turn_number_and_readers_start_anywhere() -> None:
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
    run = new_run(script, in_task=False)
    first = run_first_reader(run, on_disconnect=on_disconnect)
    script.queue.put_nowait(TextDelta("a"))
    await anext(first)
    await first.aclose()  # what the response does when its client goes away
    await asyncio.sleep(0)
    if on_disconnect == "cancel":
        assert run.task is None  # the reader drove the turn itself
        assert script.closed.is_set()
        assert run.ended
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
    run = new_run(script, turn_number=5)
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


@pytest.mark.parametrize("text", ["short", "a model's answer, at some length. " * 60])
async def test_a_packed_run_reads_back_the_same_events_compressed_or_not(text: str) -> None:
    script = Script()
    run = new_run(script)
    events = [TextDelta(text), TextDelta("!"), TurnFinished("complete", "stop")]
    for event in events:
        script.queue.put_nowait(event)
    script.queue.put_nowait(None)
    await run.task
    raw = events_encode(1, run.log)
    run.pack()
    assert run.packed is not None
    if len(raw) < PACK_COMPRESS_MIN_BYTES:
        assert run.packed == raw  # too short to gain from compression
    else:
        assert len(run.packed) < len(raw) // 3
    base = 3 * EVENT_ID_STRIDE
    assert await collect(run.follow()) == [(base + n, e) for n, e in enumerate(events, 1)]
    assert await collect(run.follow(2)) == [(base + 3, events[2])]


async def test_the_cancel_first_reader_reads_the_turn_only_as_fast_as_it_takes_events() -> None:
    pulled = 0

    async def endless() -> AsyncIterator[object]:
        nonlocal pulled
        while True:
            pulled += 1
            await asyncio.sleep(0)
            yield TextDelta("x")

    start = TurnStart(session_pk=1, turn_id=uuid.uuid4(), turn_number=1)
    run = Run(session_id="s", start=start, events=endless())  # type: ignore[arg-type]
    first = run_first_reader(run, on_disconnect="cancel")
    for _ in range(3):
        await anext(first)
    for _ in range(50):  # the reader takes nothing: nothing more is read
        await asyncio.sleep(0)
    assert pulled == 3
    assert len(run.log) == 3
    await first.aclose()
    assert run.ended
    assert run.log[-1] == TurnFinished("interrupted", "interrupted", {})


async def test_a_cancellation_inside_the_turn_ends_the_run_interrupted() -> None:
    script = Script()
    run = new_run(script, in_task=False)
    first = run_first_reader(run, on_disconnect="cancel")
    reading = asyncio.ensure_future(collect(first))
    script.queue.put_nowait(TextDelta("a"))
    await asyncio.sleep(0.01)
    reading.cancel()  # as Django cancels the request's task when its client goes away
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert script.closed.is_set()
    assert run.ended
    assert run.log == [TextDelta("a"), TurnFinished("interrupted", "interrupted", {})]


async def test_a_reader_that_falls_too_far_behind_a_turn_that_does_not_wait_is_dropped() -> None:
    script = Script()
    run = new_run(script)
    for i in range(5):
        script.queue.put_nowait(TextDelta(str(i)))
    await asyncio.sleep(0.01)
    # Joining 5 behind is allowed: it is dropped only when it is more than 5 + 3 behind.
    late = run.follow(0, max_lag=3)
    assert await anext(late) == (run.base + 1, TextDelta("0"))
    for i in range(5, 14):  # 9 more, and it has taken only 5 of the 14
        script.queue.put_nowait(TextDelta(str(i)))
    await asyncio.sleep(0.01)
    for n in range(2, 6):  # what it had fetched before the run grew
        assert (await anext(late))[0] == run.base + n
    with pytest.raises(ReaderLagging):
        await anext(late)
    # A reader of an ended run is never dropped: nothing more comes.
    script.queue.put_nowait(None)
    await run.task
    assert len(await collect(run.follow(0, max_lag=0))) == 14


async def test_the_in_process_broker_keeps_ended_runs_within_its_byte_cap(settings) -> None:  # type: ignore[no-untyped-def]
    broker = InProcessBroker()
    runs = []
    for name in ("a", "b", "c"):
        script = Script()
        start = TurnStart(session_pk=1, turn_id=uuid.uuid4(), turn_number=1)
        run = Run(session_id=name, start=start, events=script.events())  # type: ignore[arg-type]
        broker.run_started(run)
        run.drive_in_task()
        script.queue.put_nowait(TextDelta("x" * 1000))
        script.queue.put_nowait(None)
        await run.task
        runs.append(run)
        kept = len(runs[0].packed or b"") + KEPT_RUN_OVERHEAD_BYTES
        cap = settings.RUN_EVENTS_KEEP_MAX_BYTES = kept * 5 // 2  # two runs
    assert cap > 0
    assert broker.kept_bytes <= cap
    assert await broker.run_info(session_id="a") is None  # the oldest went first
    assert await broker.run_info(session_id="b") is not None
    assert await broker.run_info(session_id="c") is not None


async def test_the_in_process_broker_forgets_ended_runs_after_their_ttl(settings) -> None:  # type: ignore[no-untyped-def]
    broker = InProcessBroker()

    async def ended(name: str) -> None:
        script = Script()
        start = TurnStart(session_pk=1, turn_id=uuid.uuid4(), turn_number=1)
        run = Run(session_id=name, start=start, events=script.events())  # type: ignore[arg-type]
        broker.run_started(run)
        run.drive_in_task()
        script.queue.put_nowait(TextDelta("x"))
        script.queue.put_nowait(None)
        await run.task

    settings.RUN_EVENTS_TTL_SECONDS = 0.05
    await ended("a")
    await asyncio.sleep(0.1)
    assert await broker.run_info(session_id="a") is None
    # The timer comes back for a run that ends after the others were forgotten.
    settings.RUN_EVENTS_TTL_SECONDS = 0.5
    await ended("b")
    assert await broker.run_info(session_id="b") is not None
    for _ in range(100):
        if await broker.run_info(session_id="b") is None:
            break
        await asyncio.sleep(0.05)
    assert await broker.run_info(session_id="b") is None
    assert broker.kept_bytes == 0
