"""Live readers of the Redis broker: one blocking ``XREAD`` per process, whatever the readers.

Against a private Redis, so that its command counts and clients are the test's alone.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agent_runtime.errors import BrokerUnavailable
from streaming.engine.events import TextDelta, TurnFinished
from streaming.runs.broker import RunInfo
from streaming.runs.redis import RedisBroker
from streaming.runs.run import Run
from tests.redis_server import PrivateRedis
from tests.streaming.runs.test_run import Script, collect, new_run


@pytest.fixture
def private_redis(tmp_path: Path, settings) -> Iterator[PrivateRedis]:  # type: ignore[no-untyped-def]
    server = PrivateRedis(tmp_path)
    settings.REDIS_URL = server.url
    settings.RUN_EVENTS_TTL_SECONDS = 60
    yield server
    server.stop()


def started(writer: RedisBroker, count: int) -> tuple[list[Script], list[Run]]:
    scripts = [Script() for _ in range(count)]
    runs = []
    for k, script in enumerate(scripts):
        run = new_run(script, turn_number=k + 1)
        run.session_id = f"follow-test-{uuid.uuid4().hex}"
        writer.run_started(run)
        runs.append(run)
    return scripts, runs


async def live_info(reader: RedisBroker, run: Run) -> RunInfo:
    for _ in range(500):
        info = await reader.run_info(session_id=run.session_id)
        if info is not None and info.last_event_id is not None:
            assert not info.ended
            return info
        await asyncio.sleep(0.01)
    raise AssertionError("the run's first event never reached Redis")


async def blocked_xreads(reader: RedisBroker, via: RedisBroker | None = None) -> int:
    """How many of ``reader``'s connections are blocked in XREAD (seen through ``via``'s
    client, for a reader whose Redis user may not list clients)."""
    clients = await (via or reader).client.client_list()
    name = reader.requests_key.decode()
    return sum("b" in c["flags"] and c["cmd"] == "xread" and c["name"] == name for c in clients)


async def until_blocked(reader: RedisBroker, via: RedisBroker | None = None) -> None:
    """Until a read blocks in XREAD (a wait, not a speed check)."""
    for _ in range(1000):
        if await blocked_xreads(reader, via):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no reader ever blocked in XREAD")


async def test_one_xread_serves_every_reader_of_a_process(private_redis: PrivateRedis) -> None:
    writer, reader = RedisBroker(), RedisBroker()
    scripts, runs = started(writer, 4)
    for script in scripts:
        script.queue.put_nowait(TextDelta("first"))
    infos = [await live_info(reader, run) for run in runs]
    # One reader per run, two more of the first run: one from its start, one from event 1.
    following = [asyncio.ensure_future(collect(reader.run_read(info=i, after=0))) for i in infos]
    following += [
        asyncio.ensure_future(collect(reader.run_read(info=infos[0], after=after)))
        for after in (0, 1)
    ]
    await until_blocked(reader)
    for _ in range(30):  # while the readers settle: six readers, one blocked read
        assert await blocked_xreads(reader) == 1
        await asyncio.sleep(0.01)

    await reader.client.config_resetstat()
    for i in range(30):
        for script in scripts:
            script.queue.put_nowait(TextDelta(str(i)))
        await asyncio.sleep(0.004)  # across writes
    for script in scripts:
        script.queue.put_nowait(TurnFinished("stop", "completed", {}))
        script.queue.put_nowait(None)
    got = await asyncio.wait_for(asyncio.gather(*following), 30)

    for run, items in zip(runs, got[:4], strict=True):
        assert items == [(run.base + n, e) for n, e in enumerate(run.log, start=1)]
        assert len(items) == 32
    assert got[4] == got[0]
    assert got[5] == got[0][1:]
    stats = await reader.client.info("commandstats")
    writes = stats["cmdstat_evalsha"]["calls"]
    # Not one XREAD per reader and write: two per write (the blocked one and the one queued
    # behind it for the streams it was not answered with), plus the ones in flight at the
    # reset and one per reader whose join may have woken it since.
    assert stats["cmdstat_xread"]["calls"] <= 2 * (writes + 1 + len(following))
    assert writes >= 5


async def test_a_reader_that_lags_reads_what_it_missed(
    private_redis: PrivateRedis,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    settings.RUN_READER_MAX_LAG_EVENTS = 2  # entries handed to it and not yet taken
    writer, reader = RedisBroker(), RedisBroker()
    (script,), (run,) = started(writer, 1)
    script.queue.put_nowait(TextDelta("first"))
    info = await live_info(reader, run)
    slow = reader.run_read(info=info, after=0)
    brisk = asyncio.ensure_future(collect(reader.run_read(info=info, after=0)))
    assert await anext(slow) == (run.base + 1, TextDelta("first"))
    await until_blocked(reader)
    for i in range(40):
        script.queue.put_nowait(TextDelta(str(i)))
        if i % 4 == 0:
            await asyncio.sleep(0.004)  # across writes, more than two of them
    script.queue.put_nowait(TurnFinished("stop", "completed", {}))
    script.queue.put_nowait(None)
    await run.task
    rest = await asyncio.wait_for(collect(slow), 30)
    whole = [(run.base + n, e) for n, e in enumerate(run.log, start=1)]
    assert rest == whole[1:]
    assert await asyncio.wait_for(brisk, 30) == whole


async def test_redis_going_down_ends_every_live_reader(private_redis: PrivateRedis) -> None:
    writer, reader = RedisBroker(), RedisBroker()
    scripts, runs = started(writer, 2)
    for script in scripts:
        script.queue.put_nowait(TextDelta("first"))
    infos = [await live_info(reader, run) for run in runs]

    async def drain(items: AsyncIterator[object]) -> None:
        async for _ in items:
            pass

    following = [asyncio.ensure_future(drain(reader.run_read(info=i, after=0))) for i in infos]
    await until_blocked(reader)
    private_redis.stop()
    for future in following:
        with pytest.raises(BrokerUnavailable):
            await asyncio.wait_for(future, 30)
    for script in scripts:  # the runs themselves go on
        script.queue.put_nowait(TurnFinished("stop", "completed", {}))
        script.queue.put_nowait(None)
    for run in runs:
        await run.task
        assert run.ended


async def test_readers_that_come_after_all_others_left_are_served(
    private_redis: PrivateRedis,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    # A read left blocked in Redis by the readers who left would hold the next ones this long:
    # past the hang guard below.
    settings.HEARTBEAT_SECONDS = 300
    writer, reader = RedisBroker(), RedisBroker()
    for _ in range(2):
        scripts, runs = started(writer, 2)
        for script in scripts:
            script.queue.put_nowait(TextDelta("first"))
        infos = [await live_info(reader, run) for run in runs]
        following = [
            asyncio.ensure_future(collect(reader.run_read(info=i, after=0))) for i in infos
        ]
        await until_blocked(reader)
        for i in range(10):
            for script in scripts:
                script.queue.put_nowait(TextDelta(str(i)))
        for script in scripts:
            script.queue.put_nowait(TurnFinished("stop", "completed", {}))
            script.queue.put_nowait(None)
        got = await asyncio.wait_for(asyncio.gather(*following), 60)
        for run, items in zip(runs, got, strict=True):
            assert items == [(run.base + n, e) for n, e in enumerate(run.log, start=1)]


async def test_a_redis_user_without_admin_commands_serves_live_readers(
    private_redis: PrivateRedis,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    admin = RedisBroker()
    await admin.client.acl_setuser(
        "runtime",
        enabled=True,
        passwords=["+secret"],
        categories=["+@all", "-@admin", "-@dangerous"],
        keys=["*"],
        channels=["*"],
    )
    settings.REDIS_URL = private_redis.url.replace("://", "://runtime:secret@")
    settings.HEARTBEAT_SECONDS = 300  # a read not woken would wait this long: past the guard
    writer, reader = RedisBroker(), RedisBroker()
    scripts, runs = started(writer, 2)
    for script in scripts:
        script.queue.put_nowait(TextDelta("first"))
    infos = [await live_info(reader, run) for run in runs]
    first = asyncio.ensure_future(collect(reader.run_read(info=infos[0], after=0)))
    await until_blocked(reader, via=admin)
    # The XREAD in flight does not cover the second run's stream, and the first run stays
    # quiet: only the wake makes the next XREAD cover it.
    second = asyncio.ensure_future(collect(reader.run_read(info=infos[1], after=0)))
    for i in range(10):
        scripts[1].queue.put_nowait(TextDelta(str(i)))
    scripts[1].queue.put_nowait(TurnFinished("stop", "completed", {}))
    scripts[1].queue.put_nowait(None)
    got = [await asyncio.wait_for(second, 60)]
    scripts[0].queue.put_nowait(TurnFinished("stop", "completed", {}))
    scripts[0].queue.put_nowait(None)
    got.append(await asyncio.wait_for(first, 60))
    for run, items in zip((runs[1], runs[0]), got, strict=True):
        assert items == [(run.base + n, e) for n, e in enumerate(run.log, start=1)]
