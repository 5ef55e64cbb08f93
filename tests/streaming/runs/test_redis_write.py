"""When the Redis broker writes a run: promptly once a reader elsewhere asked for it, seldom
before. Against a private Redis, so that its command counts are the test's alone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from streaming.engine.events import TextDelta, TurnFinished
from streaming.runs.broker import run_info_of
from streaming.runs.redis import RedisBroker
from streaming.runs.redis_write import PREFIX
from streaming.runs.run import Run
from tests.redis_server import PrivateRedis
from tests.streaming.runs.test_run import Script, collect, new_run


@pytest.fixture
def private_redis(tmp_path: Path, settings) -> Iterator[PrivateRedis]:  # type: ignore[no-untyped-def]
    server = PrivateRedis(tmp_path)
    settings.REDIS_URL = server.url
    settings.RUN_EVENTS_TTL_SECONDS = 60
    # A run nobody else reads waits this long for its next write: past every wait below, so
    # that what reaches Redis sooner got there because it was asked for.
    settings.RUN_EVENTS_UNFOLLOWED_FLUSH_SECONDS = 600
    yield server
    server.stop()


def started(writer: RedisBroker) -> tuple[Script, Run]:
    script = Script()
    run = new_run(script)
    run.session_id = f"write-test-{uuid.uuid4().hex}"
    writer.run_started(run)
    return script, run


async def in_redis(broker: RedisBroker, run: Run) -> int:
    """How many of the run's events its stream in Redis holds."""
    last = await broker.client.xrevrange(f"{PREFIX}{run.session_id}:{run.turn_id}", count=1)
    return int(last[0][0].split(b"-")[0]) if last else 0


async def until(get: Callable[[], Awaitable[object]], want: object, what: str) -> None:
    """Until ``await get()`` is ``want`` (a wait for an effect, not a speed check)."""
    for _ in range(500):
        if await get() == want:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(what)


async def logged(run: Run) -> int:
    return len(run.log)


async def test_a_run_nobody_else_reads_waits_then_a_reader_elsewhere_gets_it_fresh(
    private_redis: PrivateRedis,
) -> None:
    writer, reader = RedisBroker(), RedisBroker()
    script, run = started(writer)
    # A new run is written at once, so that other workers see it running.
    await until(lambda: reader.client.exists(PREFIX + run.session_id), 1, "the run never showed")
    for i in range(5):
        script.queue.put_nowait(TextDelta(str(i)))
    await until(lambda: logged(run), 5, "the run never took its events")
    await asyncio.sleep(0.2)  # a hundred times the prompt flush
    assert await in_redis(reader, run) == 0  # nobody asked: not written yet

    info = await reader.run_info(session_id=run.session_id)

    assert info is not None
    assert not info.ended
    assert info.last_event_id == run.base + 5  # as fresh as the run itself
    assert await in_redis(reader, run) == 5
    # Asked for once, it is written promptly until it ends.
    script.queue.put_nowait(TextDelta("more"))
    await until(lambda: logged(run), 6, "the run never took its event")
    await until(lambda: in_redis(reader, run), 6, "an asked-for run was not written promptly")
    script.queue.put_nowait(TurnFinished("stop", "completed", {}))
    script.queue.put_nowait(None)
    await run.task
    await until(lambda: in_redis(reader, run), 7, "the end was not written")
    got = await collect(reader.run_read(info=info, after=0))
    assert got == [(run.base + n, e) for n, e in enumerate(run.log, start=1)]


async def test_a_resumed_reader_elsewhere_follows_live_without_the_slow_flush(
    private_redis: PrivateRedis,
) -> None:
    writer, reader = RedisBroker(), RedisBroker()
    script, run = started(writer)
    script.queue.put_nowait(TextDelta("first"))
    await until(lambda: logged(run), 1, "the run never took its event")
    info = await reader.run_info(session_id=run.session_id)
    assert info is not None
    following = asyncio.ensure_future(collect(reader.run_read(info=info, after=0)))
    for i in range(20):
        script.queue.put_nowait(TextDelta(str(i)))
        await asyncio.sleep(0.003)
    script.queue.put_nowait(TurnFinished("stop", "completed", {}))
    script.queue.put_nowait(None)
    got = await asyncio.wait_for(following, 30)  # far below the slow flush
    assert got == [(run.base + n, e) for n, e in enumerate(run.log, start=1)]


async def test_a_busy_worker_writes_many_events_in_one_round_trip(
    private_redis: PrivateRedis,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    settings.RUN_EVENTS_UNFOLLOWED_FLUSH_SECONDS = 0.2
    writer = RedisBroker()
    runs = [started(writer) for _ in range(5)]
    keys = [PREFIX + run.session_id for _, run in runs]
    await until(lambda: writer.client.exists(*keys), len(keys), "the runs never showed")
    await writer.client.config_resetstat()
    for i in range(40):  # 200 events over about 0.4 s, at the prompt flush's pace
        for script, _ in runs:
            script.queue.put_nowait(TextDelta(str(i)))
        await asyncio.sleep(0.01)
    for script, run in runs:
        script.queue.put_nowait(TurnFinished("stop", "completed", {}))
        script.queue.put_nowait(None)
        await run.task
    for _, run in runs:
        await until(lambda run=run: in_redis(writer, run), 41, "a run was not written whole")  # type: ignore[misc]
    stats = await writer.client.info("commandstats")
    # About one write per 0.2 s for the events, and one for the ends; not one per event.
    assert stats["cmdstat_evalsha"]["calls"] <= 6


async def test_the_workers_own_runs_are_read_from_memory(private_redis: PrivateRedis) -> None:
    broker = RedisBroker()
    script, run = started(broker)
    await until(lambda: broker.client.exists(PREFIX + run.session_id), 1, "the run never showed")
    for i in range(3):
        script.queue.put_nowait(TextDelta(str(i)))
    await until(lambda: logged(run), 3, "the run never took its events")
    assert await in_redis(broker, run) == 0

    assert await broker.run_info(session_id=run.session_id) == run_info_of(run)
    info = run_info_of(run)
    following = asyncio.ensure_future(collect(broker.run_read(info=info, after=1)))
    script.queue.put_nowait(TurnFinished("stop", "completed", {}))
    script.queue.put_nowait(None)
    got = await asyncio.wait_for(following, 30)
    assert got == [(run.base + n, e) for n, e in enumerate(run.log, start=1)][1:]


async def test_a_request_for_a_run_the_worker_no_longer_has_is_answered(
    private_redis: PrivateRedis,
) -> None:
    writer, reader = RedisBroker(), RedisBroker()
    script, run = started(writer)
    script.queue.put_nowait(TurnFinished("stop", "completed", {}))
    script.queue.put_nowait(None)
    await run.task
    await until(lambda: in_redis(reader, run), 1, "the end was not written")

    request = {"s": run.session_id, "t": run.turn_id, "r": "test:reply"}
    await reader.client.xadd(writer.requests_key, request)  # as another worker asks

    assert await reader.client.blpop([b"test:reply"], 10) == (b"test:reply", b"1")


async def test_a_gone_worker_is_not_waited_for(private_redis: PrivateRedis) -> None:
    reader = RedisBroker()
    session_id = f"write-test-{uuid.uuid4().hex}"
    # A running run whose worker's request stream expired with its worker.
    await reader.client.hset(
        PREFIX + session_id,
        mapping={
            "turn": "t1",
            "base": 1_000_000_000,
            "started": "2026-12-02T00:00:00+00:00",
            "ended": "",
            "owner": "agent_runtime:worker:gone",
        },
    )
    await reader.client.xadd(f"{PREFIX}{session_id}:t1", {"e": b'[1,["a","b"]]'}, id="2-0")
    await reader.client.config_resetstat()

    info = await reader.run_info(session_id=session_id)

    assert info is not None
    assert (info.last_event_id, info.ended) == (1_000_000_002, False)
    stats = await reader.client.info("commandstats")
    assert "cmdstat_blpop" not in stats  # nobody to wait for
