"""Following live runs in Redis: one ``XREAD`` per worker process, whatever its readers.

Each reader of a live run joins its stream here. One task, on a connection of its own, blocks
in one ``XREAD`` over every stream this process follows and hands each entry to that stream's
readers. A reader that joins behind the shared cursor, or lets more than
``RUN_READER_MAX_LAG_EVENTS`` entries pile up, reads what it lacks by ``XRANGE`` at its own
pace; each reader skips events it already has by their number, so that it gets every event
once, in order.

The ``XREAD`` also covers the process's request stream (``REQUESTS_PREFIX``), so the task runs
while the process follows a stream or runs turns. Other workers ask there for a run of this
process (``streaming.runs.redis_write.RunWriter.ask``); a reader of a stream that the ``XREAD``
in flight does not cover adds an entry there too, so that the next ``XREAD`` does. (Stream
commands only: ``CLIENT UNBLOCK`` would need ``@admin``.)
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio as redis
from django.conf import settings
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from agent_runtime.errors import BrokerUnavailable
from streaming.engine.events import HEARTBEAT
from streaming.runs.codec import events_decode
from streaming.runs.run import Logged

#: Entries per stream in one read.
CHUNK = 512

#: The streams that wake a process's reading task and carry other workers' requests, one per
#: process.
REQUESTS_PREFIX = "agent_runtime:worker:"
#: The most entries a request stream keeps (about: trimmed approximately).
REQUESTS_MAX_ENTRIES = 1000
#: How long a request stream outlives the last sign of its process, in seconds.
REQUESTS_TTL_SECONDS = 90

Entries = list[tuple[bytes, dict[bytes, bytes]]]


class _Reader:
    """One reader's entries, handed over by the reading task."""

    __slots__ = ("behind", "entries", "error", "wake")

    def __init__(self, *, behind: bool) -> None:
        self.entries: Entries = []
        #: It must read from Redis what it lacks before it takes handed entries.
        self.behind = behind
        self.error: BaseException | None = None
        self.wake = asyncio.Event()

    def hand(self, entries: Entries) -> None:
        if len(self.entries) < settings.RUN_READER_MAX_LAG_EVENTS:
            self.entries += entries
        else:  # it lags: drop what it holds, it reads from Redis when it comes back
            self.entries = []
            self.behind = True
        self.wake.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.wake.set()


class _Stream:
    """One followed stream: where the shared ``XREAD`` is, and its readers here."""

    __slots__ = ("cursor", "readers")

    def __init__(self, cursor: bytes) -> None:
        self.cursor = cursor
        self.readers: set[_Reader] = set()


class Followers:
    """The live readers of one process and the task that reads for all of them."""

    def __init__(
        self,
        client: redis.Redis,
        url: str,
        *,
        serving: Callable[[], bool],
        on_request: Callable[[str, str, bytes], None],
    ) -> None:
        #: For the readers' own reads and for waking the reading task.
        self.client = client
        #: This process's request stream; also the name of the reading connection.
        self.key = f"{REQUESTS_PREFIX}{uuid.uuid4().hex}".encode()
        # Its own connection (a pool of one): it is blocked in XREAD most of the time.
        self.reading = redis.Redis.from_url(
            url,
            client_name=self.key.decode(),
            max_connections=1,
            socket_connect_timeout=1.0,
            # Above the longest XREAD BLOCK, so that a quiet run is not taken for a dead server.
            socket_timeout=settings.HEARTBEAT_SECONDS + 10,
            retry=Retry(NoBackoff(), 1),
        )
        #: The last request the task saw: it returns at once for any later one.
        self._requests_cursor = b"0-0"
        self._requests_refreshed_at = 0.0
        #: Whether the process runs turns (the task must then serve requests).
        self._serving = serving
        #: Called with a request's session id, turn id and reply list (empty: none).
        self._on_request = on_request
        self._streams: dict[bytes, _Stream] = {}
        #: The streams of the ``XREAD`` in flight, if any.
        self._listening: dict[bytes, bytes] = {}
        self._task: asyncio.Task[None] | None = None

    async def follow(
        self, *, stream: str, meta: str, turn: bytes, base: int, after: int
    ) -> AsyncIterator[Logged]:
        """A live run's events after its ``after``-th, until its end mark; heartbeats when it
        is quiet for ``HEARTBEAT_SECONDS``; ends when the run is gone from Redis."""
        key = stream.encode()
        reader = self._join(key, after)
        position = after
        try:
            await self._include(key)
            while True:
                if reader.error is not None:
                    raise BrokerUnavailable() from reader.error
                if reader.behind:
                    reader.behind = False
                    reader.entries = []  # what comes from now on is handed; the rest is read
                    entries = await self._read(stream, position)
                    reader.behind = reader.behind or len(entries) == CHUNK
                elif reader.entries:
                    entries, reader.entries = reader.entries, []
                else:
                    reader.wake.clear()
                    try:
                        async with asyncio.timeout(settings.HEARTBEAT_SECONDS):
                            await reader.wake.wait()
                    except TimeoutError:
                        # Quiet for a heartbeat's time: is this run still there?
                        if await self._turn_of(meta) != turn:
                            return
                        yield None, HEARTBEAT
                    continue
                for _, fields in entries:
                    first, events = events_decode(fields[b"e"])
                    for n, event in enumerate(events, start=first):
                        if n > position:
                            position = n
                            yield base + n, event
                    if b"end" in fields:
                        return
        finally:
            self._leave(key, reader)

    async def _read(self, stream: str, position: int) -> Entries:
        try:
            return await self.client.xrange(stream, min=f"({position}-0", count=CHUNK)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable() from exc

    async def _turn_of(self, meta: str) -> Any:
        try:
            return await self.client.hget(meta, "turn")
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable() from exc

    def _join(self, key: bytes, after: int) -> _Reader:
        cursor = b"%d-0" % after
        followed = self._streams.get(key)
        if followed is None:
            followed = self._streams[key] = _Stream(cursor)
        reader = _Reader(behind=followed.cursor != cursor)
        followed.readers.add(reader)
        self.serve()
        return reader

    def serve(self) -> None:
        """Makes sure the reading task runs."""
        if self._task is None:
            # A fresh context: the task outlives the request that started it.
            self._task = asyncio.get_running_loop().create_task(
                self._read_loop(), context=contextvars.Context()
            )

    def _leave(self, key: bytes, reader: _Reader) -> None:
        followed = self._streams.get(key)
        if followed is None:
            return
        followed.readers.discard(reader)
        if not followed.readers:
            # The task ends when its XREAD returns with no stream left to follow. It is not
            # cancelled: its XREAD would stay blocked in Redis, in the way of the next command.
            del self._streams[key]

    async def _include(self, key: bytes) -> None:
        """Makes sure the reading task's ``XREAD`` covers ``key``: the one in flight, if it was
        built before ``key`` was followed, returns for an entry on the wake stream."""
        if not self._listening or key in self._listening:
            return  # the next XREAD is built from the streams followed now
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.xadd(self.key, {b"w": b""}, maxlen=REQUESTS_MAX_ENTRIES)
                pipe.expire(self.key, REQUESTS_TTL_SECONDS)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable() from exc

    async def _read_loop(self) -> None:
        block_ms = max(int(settings.HEARTBEAT_SECONDS * 1000), 1)
        requests = self.key
        loop = asyncio.get_running_loop()
        while True:
            streams = {requests: self._requests_cursor}
            for key, followed in self._streams.items():
                streams[key] = followed.cursor
            self._listening = streams
            try:
                pipe = self.reading.pipeline(transaction=False)
                refresh = loop.time() - self._requests_refreshed_at > REQUESTS_TTL_SECONDS / 4
                if refresh:  # it lives while this task does; other workers look for it
                    pipe.xadd(requests, {b"w": b""}, maxlen=REQUESTS_MAX_ENTRIES)
                    pipe.expire(requests, REQUESTS_TTL_SECONDS)
                # Before Redis 7.2 a blocked XREAD over several streams is answered with the
                # first stream that got an entry only: a second XREAD, queued behind it, takes
                # every stream the same write filled, in the same round trip.
                pipe.xread(streams, block=block_ms, count=CHUNK)
                pipe.xread(streams, count=CHUNK)
                *_, woken, ready = await pipe.execute()
            except (RedisError, OSError) as exc:
                self._listening = {}
                self._fail(exc)
                return
            if refresh:
                self._requests_refreshed_at = loop.time()
            self._listening = {}
            if not (ready or woken) and not self._streams and not self._serving():
                # A whole block with nothing to do: nobody needs it now. (It does not stop as
                # soon as its last run ends: a worker may have seen that run running and ask.)
                break
            # From the same cursors: the later reply has all of the earlier one.
            for key, entries in ready or woken or ():
                if key == requests:
                    self._requests_cursor = entries[-1][0]
                    self._serve_requests(entries)
                    continue
                followed = self._streams.get(key)
                if followed is None or not entries:
                    continue
                followed.cursor = entries[-1][0]
                for reader in followed.readers:
                    reader.hand(entries)
        self._task = None

    def _serve_requests(self, entries: Entries) -> None:
        for _, fields in entries:
            session_id = fields.get(b"s")
            if session_id is not None:  # not a wake-up
                turn_id = fields.get(b"t", b"").decode()
                self._on_request(session_id.decode(), turn_id, fields.get(b"r", b""))

    def _fail(self, error: BaseException) -> None:
        """Redis failed: every reader ends; the next to join starts a new task."""
        self._task = None
        for followed in self._streams.values():
            for reader in followed.readers:
                reader.fail(error)
        self._streams.clear()
