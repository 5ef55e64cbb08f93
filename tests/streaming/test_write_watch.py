"""Dropping a client that accepts nothing: ``write_watched`` without a server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing

import pytest

from streaming.runs.run import ReaderLagging
from streaming.write_watch import write_watched


class Frames:
    def __init__(self, count: int, *, then: BaseException | None = None) -> None:
        self.count, self.then = count, then
        self.closed = False

    async def frames(self) -> AsyncIterator[bytes]:
        try:
            for i in range(self.count):
                yield b"%d" % i
            if self.then is not None:
                raise self.then
        finally:
            self.closed = True


async def test_a_write_that_never_completes_drops_the_stream_and_closes_its_frames() -> None:
    source = Frames(10)

    async def respond() -> list[bytes]:  # as Django does: await send() after each frame
        sent = []
        async with aclosing(write_watched(source.frames(), idle=0.05)) as frames:
            async for frame in frames:
                sent.append(frame)
                await asyncio.Event().wait()  # a send() the client never lets complete
        return sent

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.ensure_future(respond()), timeout=5)
    assert source.closed


async def test_a_client_that_takes_every_frame_in_time_is_not_dropped() -> None:
    source = Frames(5)
    sent = []
    async with aclosing(write_watched(source.frames(), idle=0.5)) as frames:
        async for frame in frames:
            await asyncio.sleep(0.2)  # each write within the timeout, together longer
            sent.append(frame)
    assert sent == [b"0", b"1", b"2", b"3", b"4"]


async def test_a_lagging_reader_ends_its_stream_without_an_error() -> None:
    source = Frames(2, then=ReaderLagging())
    frames = [frame async for frame in write_watched(source.frames(), idle=5)]
    assert frames == [b"0", b"1"]
    assert source.closed
