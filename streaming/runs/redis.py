"""The Redis Streams broker: every run's log copied to Redis, readable from any worker or host.

Per session, a hash ``agent_runtime:run:<session_id>`` names the current run (``turn``,
``base``, ``started``, and ``ended``: the id of the turn once it ended); per turn, a stream
``agent_runtime:run:<session_id>:<turn>`` holds its events. One task per process writes, at
most every ``RUN_EVENTS_FLUSH_SECONDS``, the new events of all its runs in one script call: each
entry holds the events of one run since the last write, and its id is ``<n of its last
event>-0`` (``<n>-1`` for an end mark without events), so that ``XREAD`` from ``<n>-0``
returns exactly what follows event ``n``. Nothing is written to the database per event. When
Redis fails, the runs go on and are stored; only their copies in Redis stop. Readers of live
runs are served by one ``XREAD`` per process (``streaming.runs.redis_follow``).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator
from datetime import datetime

import redis.asyncio as redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from agent_runtime.errors import BrokerUnavailable
from streaming.runs.broker import RunBroker, RunInfo
from streaming.runs.codec import events_decode, events_encode
from streaming.runs.memory import release_freed_memory_soon
from streaming.runs.redis_follow import Followers
from streaming.runs.run import Logged, Run

logger = logging.getLogger(__name__)

PREFIX = "agent_runtime:run:"


def _keys(session_id: str, turn_id: str) -> tuple[str, str]:
    return PREFIX + session_id, f"{PREFIX}{session_id}:{turn_id}"


# One write of every changed run's news, in one round trip. ``ARGV[4]`` holds, per run, its
# session id and turn id (its keys; ``PREFIX`` is ARGV[5]), an op string and the ops' fields,
# each ended by a newline (none holds one: session ids are validated, orjson escapes it):
# ``h`` turn, base, started: the new run's hash; ``x`` entry id, events: an entry; ``X`` the
# same, ending the run; ``e`` turn: the run ended, its keys expire in ARGV[2] seconds; ``r``:
# its keys expire in ARGV[3] seconds (a running run's, refreshed). One command with five
# arguments, not a pipeline of several commands per run: the client's CPU goes per command and
# per argument (packing, reading replies), not per byte. (The keys are not declared: right for
# one Redis server, not for Redis Cluster, which the pipeline across runs did not suit either.)
_WRITE = """
local maxlen, ttl, running_ttl, news, PREFIX = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local at = 1
local function field()
  local stop = string.find(news, '\\n', at, true)
  local value = string.sub(news, at, stop - 1)
  at = stop + 1
  return value
end
while at <= #news do
  local meta = PREFIX .. field()
  local stream = meta .. ':' .. field()
  local ops = field()
  for i = 1, #ops do
    local op = string.sub(ops, i, i)
    if op == 'h' then
      local turn, base, started = field(), field(), field()
      redis.call('HSET', meta, 'turn', turn, 'base', base, 'started', started, 'ended', '')
    elseif op == 'x' then
      local id, events = field(), field()
      redis.call('XADD', stream, 'MAXLEN', '~', maxlen, id, 'e', events)
    elseif op == 'X' then
      local id, events = field(), field()
      redis.call('XADD', stream, 'MAXLEN', '~', maxlen, id, 'e', events, 'end', 1)
    elseif op == 'e' then
      redis.call('HSET', meta, 'ended', field())
      redis.call('EXPIRE', meta, ttl)
      redis.call('EXPIRE', stream, ttl)
    elseif op == 'r' then
      redis.call('EXPIRE', meta, running_ttl)
      redis.call('EXPIRE', stream, running_ttl)
    end
  end
end
return 0
"""


class _Copy:
    """How much of one run is in Redis."""

    __slots__ = ("ids", "refreshed_at", "turn", "written")

    def __init__(self, run: Run) -> None:
        self.ids = f"{run.session_id}\n{run.turn_id}".encode()
        self.turn = run.turn_id.encode()
        self.written = -1  # -1: not even its hash
        self.refreshed_at = 0.0


class RedisBroker(RunBroker):
    def __init__(self) -> None:
        if not settings.REDIS_URL:
            raise ImproperlyConfigured("The Redis broker needs AGENT_RUNTIME__REDIS_URL.")
        self.client = redis.Redis.from_url(
            settings.REDIS_URL,
            socket_connect_timeout=1.0,
            socket_timeout=settings.HEARTBEAT_SECONDS + 10,
            retry=Retry(NoBackoff(), 1),
        )
        self._followers = Followers(self.client, settings.REDIS_URL)
        self._write_script = self.client.register_script(_WRITE)
        self._copies: dict[Run, _Copy] = {}
        #: The runs changed since the last write, in order (a dict as an ordered set).
        self._changed_runs: dict[Run, None] = {}
        self._swept_at = 0.0
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    # Writing. ---------------------------------------------------------------------------------

    def run_started(self, run: Run) -> None:
        self._copies[run] = _Copy(run)
        run.on_end.append(release_freed_memory_soon)
        changed = self._changed_runs
        wake = self._wake

        def on_change() -> None:  # per event: as little as can be
            changed[run] = None
            wake.set()

        run.on_change = on_change
        if self._writer is None or self._writer.done():
            # A fresh context: the writer outlives the request that started it.
            self._writer = asyncio.get_running_loop().create_task(
                self._write_loop(), context=contextvars.Context()
            )
        on_change()

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._copies:
            await self._wake.wait()
            self._wake.clear()
            began = loop.time()
            await self._write(began)
            pause = settings.RUN_EVENTS_FLUSH_SECONDS - (loop.time() - began)
            if pause > 0:
                await asyncio.sleep(pause)

    async def _write(self, now: float) -> None:
        """One command with the news of every changed run; then forget the runs that ended."""
        ttl = int(settings.RUN_EVENTS_TTL_SECONDS)
        # While a run goes on its keys are refreshed; a dead worker's expire by themselves.
        running_ttl = ttl + int(settings.TURN_LEASE_SECONDS)
        runs = self._changed_runs.copy()  # the runs' hooks hold the dict itself
        self._changed_runs.clear()
        if now - self._swept_at > running_ttl / 3:  # the quiet runs' keys too
            self._swept_at = now
            runs.update(dict.fromkeys(self._copies))
        news: list[bytes] = []
        written: list[tuple[Run, int, bool]] = []
        for run in runs:
            copy = self._copies.get(run)
            if copy is None:  # forgotten since it changed
                continue
            count, ended = len(run.log), run.ended
            first = max(copy.written, 0)
            ops = b""
            at = len(news)
            news.append(ops)
            if copy.written < 0:
                ops += b"h"
                news += (copy.turn, b"%d" % run.base, run.started_at.isoformat().encode())
            if count > first:
                ops += b"X" if ended else b"x"
                news += (b"%d-0" % count, events_encode(first + 1, run.log[first:count]))
            elif ended:  # an end mark without events
                ops += b"X"
                news += (b"%d-1" % count, events_encode(count + 1, []))
            if ended:
                # The turn's id, not a flag: a newer turn may already have taken the hash.
                ops += b"e"
                news.append(copy.turn)
            elif now - copy.refreshed_at > running_ttl / 3 or (first == 0 and count):
                # Also when its stream is new, so that it never lives without a TTL.
                copy.refreshed_at = now
                ops += b"r"
            if not ops:
                news.pop()
                continue
            news[at] = ops
            news.insert(at, copy.ids)
            written.append((run, count, ended))
        if not written:
            return
        news.append(b"")
        args = (settings.RUN_EVENTS_MAX_ENTRIES, ttl, running_ttl, b"\n".join(news), PREFIX)
        try:
            await self._write_script(args=args)
        except (RedisError, OSError):
            logger.warning("event broker: writing to Redis failed", exc_info=True)
            # Their copies now have a gap: stop copying these runs; they still run and store.
            for run, _, _ in written:
                self._forget(run)
            return
        for run, count, ended in written:
            copy = self._copies.get(run)
            if copy is None:
                continue
            copy.written = count
            if ended:  # as it was when written: it may have ended since, unwritten
                self._forget(run)

    def _forget(self, run: Run) -> None:
        self._copies.pop(run, None)
        run.on_change = None

    # Reading. ---------------------------------------------------------------------------------

    async def run_info(self, *, session_id: str) -> RunInfo | None:
        try:
            meta = await self.client.hgetall(PREFIX + session_id)
            if not meta:
                return None
            turn_id = meta[b"turn"].decode()
            last = await self.client.xrevrange(_keys(session_id, turn_id)[1], count=1)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable() from exc
        base = int(meta[b"base"])
        n = int(last[0][0].split(b"-")[0]) if last else 0
        return RunInfo(
            session_id=session_id,
            turn_id=turn_id,
            base=base,
            started_at=datetime.fromisoformat(meta[b"started"].decode()),
            last_event_id=base + n if n else None,
            ended=meta[b"ended"] == meta[b"turn"],
        )

    def run_read(self, *, info: RunInfo, after: int) -> AsyncIterator[Logged]:
        meta, stream = _keys(info.session_id, info.turn_id)
        if info.ended:
            return self._read_ended(stream, base=info.base, after=after)
        turn = info.turn_id.encode()
        return self._followers.follow(
            stream=stream, meta=meta, turn=turn, base=info.base, after=after
        )

    async def _read_ended(self, stream: str, *, base: int, after: int) -> AsyncIterator[Logged]:
        try:  # all of it at once, before it expires
            entries = await self.client.xrange(stream, min=f"({after}-0")
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable() from exc
        position = after
        for _, fields in entries:
            first, events = events_decode(fields[b"e"])
            for n, event in enumerate(events, start=first):
                if n > position:
                    position = n
                    yield base + n, event

    async def available(self) -> bool:
        try:
            async with asyncio.timeout(1.0):
                await self.client.ping()
        except (RedisError, OSError, TimeoutError):
            return False
        return True
