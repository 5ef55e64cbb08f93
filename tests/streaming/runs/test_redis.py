"""The Redis broker against a real Redis: what one worker writes, another reads whole."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from streaming.engine.events import TextDelta, ToolCallArgsDelta, TurnFinished
from streaming.runs.redis import PREFIX, RedisBroker
from tests.redis_server import shared_redis_url
from tests.streaming.runs.test_run import Script, collect, new_run


@pytest.fixture
def redis_url(settings) -> str:
    settings.REDIS_URL = shared_redis_url()
    settings.RUN_EVENTS_TTL_SECONDS = 60
    return settings.REDIS_URL


async def test_runs_written_together_are_read_whole_elsewhere(redis_url: str) -> None:
    writer, reader = RedisBroker(), RedisBroker()
    scripts = [Script(), Script()]
    runs = []
    for k, script in enumerate(scripts):
        run = new_run(script, turn_number=k + 1)
        run.session_id = f"redis-test-{uuid.uuid4().hex}"
        writer.run_started(run)
        runs.append(run)
    # Newlines in the events' text: the write separates its fields with them.
    sent = [
        [TextDelta("line\nnext"), ToolCallArgsDelta("c1", '{"a":\n1}'), TextDelta("")],
        [TextDelta(f"{i}\n") for i in range(40)],
    ]
    for script, events in zip(scripts, sent, strict=True):
        for event in events:
            script.queue.put_nowait(event)
    await asyncio.sleep(0.05)  # some written before the end, in more than one write
    for script in scripts:
        script.queue.put_nowait(TurnFinished("stop", "completed", {}))
        script.queue.put_nowait(None)
    for run in runs:
        await run.task

    for run, events in zip(runs, sent, strict=True):
        info = await reader.run_info(session_id=run.session_id)
        assert info is not None
        assert info.turn_id == run.turn_id
        assert info.base == run.base
        got = await collect(reader.run_read(info=info, after=0))
        assert got == [(run.base + n, e) for n, e in enumerate(run.log, start=1)]
        assert [e for _, e in got[:-1]] == events
        assert info.ended
        assert info.last_event_id == run.base + len(events) + 1
        later = await collect(reader.run_read(info=info, after=2))
        assert later == got[2:]
        ttl = await reader.client.ttl(f"{PREFIX}{run.session_id}:{run.turn_id}")
        assert 0 < ttl <= 60
        assert 0 < await reader.client.ttl(PREFIX + run.session_id) <= 60


async def test_a_live_reader_gets_each_event_once_in_order(redis_url: str) -> None:
    writer, reader = RedisBroker(), RedisBroker()
    script = Script()
    run = new_run(script)
    run.session_id = f"redis-test-{uuid.uuid4().hex}"
    writer.run_started(run)
    script.queue.put_nowait(TextDelta("first"))
    await asyncio.sleep(0.05)
    info = await reader.run_info(session_id=run.session_id)
    assert info is not None
    assert not info.ended
    following = asyncio.ensure_future(collect(reader.run_read(info=info, after=0)))
    for i in range(30):
        script.queue.put_nowait(TextDelta(str(i)))
        if i % 7 == 0:
            await asyncio.sleep(0.003)  # across writes
    script.queue.put_nowait(TurnFinished("stop", "completed", {}))
    script.queue.put_nowait(None)
    got = await asyncio.wait_for(following, 10)
    assert got == [(run.base + n, e) for n, e in enumerate(run.log, start=1)]
    assert len(got) == 32
