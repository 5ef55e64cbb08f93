"""Writing runs to Redis: one task per process copies the new events of all its runs.

A run that a reader on another worker asked for (``ask``), a run that just started and a run
that ended are written within ``RUN_EVENTS_FLUSH_SECONDS``; the others, which nobody elsewhere
reads, within ``RUN_EVENTS_UNFOLLOWED_FLUSH_SECONDS``, so that a busy worker pays one round trip
for many events. Each write is one script call holding every changed run's news, sent on a
connection of the writer's own.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging

import redis.asyncio as redis
from django.conf import settings
from redis.exceptions import NoScriptError, RedisError

from streaming.runs.codec import events_encode
from streaming.runs.redis_follow import REQUESTS_TTL_SECONDS
from streaming.runs.run import Run

logger = logging.getLogger(__name__)

PREFIX = "agent_runtime:run:"

# One write of every changed run's news, in one round trip. ``ARGV[4]`` holds, per run, its
# session id and turn id (its keys; ``PREFIX`` is ARGV[5]), an op string and the ops' fields,
# each ended by a newline (none holds one: session ids are validated, orjson escapes it):
# ``h`` turn, base, started, owner: the new run's hash, naming the request stream of the worker
# that runs it (created if missing, expiring in ARGV[6] seconds); ``x`` entry id, events: an
# entry; ``X`` the same, ending the run; ``e`` turn: the run ended, its keys expire in ARGV[2]
# seconds; ``r``: its keys expire in ARGV[3] seconds (a running run's, refreshed); ``p`` key: a
# reader's request was served, tell it on that list. One command with a few arguments, not a
# pipeline of commands per run: the client's CPU goes per command and per argument, not per
# byte. (The keys are not declared: right for one Redis server, not for Redis Cluster.)
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
      local turn, base, started, owner = field(), field(), field(), field()
      redis.call('HSET', meta, 'turn', turn, 'base', base, 'started', started, 'ended', '',
                 'owner', owner)
      if redis.call('EXISTS', owner) == 0 then
        redis.call('XADD', owner, '*', 'w', '')
        redis.call('EXPIRE', owner, ARGV[6])
      end
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
    elseif op == 'p' then
      local reply = field()
      redis.call('RPUSH', reply, 1)
      redis.call('EXPIRE', reply, 10)
    end
  end
end
return 0
"""


class _Copy:
    """How much of one run is in Redis, and how soon its news must follow."""

    __slots__ = ("asked", "ids", "refreshed_at", "replies", "turn", "written")

    def __init__(self, run: Run) -> None:
        self.ids = f"{run.session_id}\n{run.turn_id}".encode()
        self.turn = run.turn_id.encode()
        self.written = -1  # -1: not even its hash
        self.refreshed_at = 0.0
        #: A reader on another worker asked for it: written promptly until it ends.
        self.asked = False
        #: The lists of readers waiting for its next write.
        self.replies: list[bytes] = []


class RunWriter:
    """The runs of this process and the task that copies them to Redis."""

    def __init__(self, client: redis.Redis, url: str, *, owner: bytes) -> None:
        # Its own connection, outside any pool: a command through the client costs the pool's
        # lock and bookkeeping, and a socket timeout costs a task per send; one timeout bounds
        # each write instead.
        self._connection = redis.ConnectionPool.from_url(
            url, socket_connect_timeout=1.0
        ).make_connection()
        self._sha = client.register_script(_WRITE).sha
        #: This process's request stream (``streaming.runs.redis_follow``).
        self.owner = owner
        self._copies: dict[Run, _Copy] = {}
        #: The running runs by session, while they are copied.
        self.runs: dict[str, Run] = {}
        #: The runs changed since the last write, in order (a dict as an ordered set).
        self._changed_runs: dict[Run, None] = {}
        #: Requests for runs this process no longer copies: answered in the next write.
        self._unknown: list[bytes] = []
        self._swept_at = 0.0
        self._news = asyncio.Event()
        self._urgent_news = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def run_started(self, run: Run) -> None:
        copy = self._copies[run] = _Copy(run)
        self.runs[run.session_id] = run
        changed = self._changed_runs
        news, urgent_news = self._news, self._urgent_news

        def on_change() -> None:  # per event: as little as can be
            changed[run] = None
            news.set()
            # Prompt: a run asked for, one not yet in Redis at all, its end.
            if copy.asked or copy.written < 0 or run.ended:
                urgent_news.set()

        run.on_change = on_change
        self._start()
        on_change()

    def _start(self) -> None:
        if self._task is None or self._task.done():
            # A fresh context: the writer outlives the request that started it.
            self._task = asyncio.get_running_loop().create_task(
                self._write_loop(), context=contextvars.Context()
            )

    def ask(self, *, session_id: str, turn_id: str, reply: bytes) -> None:
        """A reader on another worker asked for a run: write it promptly from now on; push to
        ``reply`` (if any) once its news so far is in Redis."""
        run = self.runs.get(session_id)
        if run is None or run.turn_id != turn_id:
            if reply:  # all of it is in Redis already, or never will be
                self._unknown += (f"{session_id}\n{turn_id}".encode(), b"p", reply)
                self._start()
                self._news.set()
                self._urgent_news.set()
            return
        copy = self._copies[run]  # ``runs`` holds the runs being copied
        copy.asked = True
        if reply:
            copy.replies.append(reply)
        if run.on_change is not None:  # set while it is copied
            run.on_change()

    @property
    def copying(self) -> bool:
        return bool(self._copies)

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._copies or self._unknown:
            await self._news.wait()
            if not self._urgent_news.is_set():
                # Only runs nobody elsewhere reads changed: wait longer, for more of their
                # news, unless a prompt one comes.
                try:
                    async with asyncio.timeout(settings.RUN_EVENTS_UNFOLLOWED_FLUSH_SECONDS):
                        await self._urgent_news.wait()
                except TimeoutError:
                    pass
            self._news.clear()
            self._urgent_news.clear()
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
        news, self._unknown = self._unknown, []
        written: list[tuple[Run, _Copy, int, bool]] = []
        for run in runs:
            copy = self._copies.get(run)
            if copy is None:  # forgotten since it changed
                continue
            ops, fields = self._news_of(run, copy, now, running_ttl)
            if ops:
                news += (copy.ids, ops, *fields)
                written.append((run, copy, len(run.log), run.ended))
        if not news:
            return
        news.append(b"")
        args = (settings.RUN_EVENTS_MAX_ENTRIES, ttl, running_ttl, b"\n".join(news), PREFIX)
        try:
            async with asyncio.timeout(settings.HEARTBEAT_SECONDS):
                await self._send((*args, REQUESTS_TTL_SECONDS))
        except (RedisError, OSError, TimeoutError):
            logger.warning("event broker: writing to Redis failed", exc_info=True)
            # Their copies now have a gap: stop copying these runs; they still run and store.
            for run, _, _, _ in written:
                self._forget(run)
            return
        for run, copy, count, ended in written:
            copy.written = count
            if ended:  # as it was when written: it may have ended since, unwritten
                self._forget(run)

    def _news_of(
        self, run: Run, copy: _Copy, now: float, running_ttl: int
    ) -> tuple[bytes, list[bytes]]:
        """A run's ops and their fields since its last write (none: nothing to write)."""
        count, ended = len(run.log), run.ended
        first = max(copy.written, 0)
        ops = b""
        fields: list[bytes] = []
        if copy.written < 0:
            ops += b"h"
            started = run.started_at.isoformat().encode()
            fields += (copy.turn, b"%d" % run.base, started, self.owner)
        if count > first:
            ops += b"X" if ended else b"x"
            fields += (b"%d-0" % count, events_encode(first + 1, run.log[first:count]))
        elif ended:  # an end mark without events
            ops += b"X"
            fields += (b"%d-1" % count, events_encode(count + 1, []))
        if ended:
            # The turn's id, not a flag: a newer turn may already have taken the hash.
            ops += b"e"
            fields.append(copy.turn)
        elif now - copy.refreshed_at > running_ttl / 3 or (first == 0 and count):
            # Also when its stream is new, so that it never lives without a TTL.
            copy.refreshed_at = now
            ops += b"r"
        if copy.replies:
            ops += b"p" * len(copy.replies)
            fields += copy.replies
            copy.replies = []
        return ops, fields

    async def _send(self, args: tuple[object, ...]) -> None:
        connection = self._connection
        try:
            await connection.send_command("EVALSHA", self._sha, 0, *args)
            try:
                await connection.read_response()
            except NoScriptError:  # a restarted or flushed Redis: load it, then again
                await connection.send_command("SCRIPT", "LOAD", _WRITE)
                await connection.read_response()
                await connection.send_command("EVALSHA", self._sha, 0, *args)
                await connection.read_response()
        except BaseException:
            # A reply may be left unread: the next write starts on a new connection.
            await connection.disconnect(nowait=True)
            raise

    def _forget(self, run: Run) -> None:
        self._copies.pop(run, None)
        if self.runs.get(run.session_id) is run:
            del self.runs[run.session_id]
        run.on_change = None
