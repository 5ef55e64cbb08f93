"""The Redis Streams broker: every run's log copied to Redis, readable from any worker or host.

Per session, a hash ``agent_runtime:run:<session_id>`` names the current run (``turn``,
``base``, ``started``, ``ended``: the id of the turn once it ended, and ``owner``: the request
stream of the worker that runs it); per turn, a stream ``agent_runtime:run:<session_id>:<turn>``
holds its events. Each entry holds the events of one run since the last write
(``streaming.runs.redis_write``), and its id is ``<n of its last event>-0`` (``<n>-1`` for an
end mark without events), so that ``XREAD`` from ``<n>-0`` returns exactly what follows event
``n``. Nothing is written to the database per event. When Redis fails, the runs go on and are
stored; only their copies in Redis stop.

A reader of a run on another worker first asks that worker, through its request stream, to
write the run at once and promptly from then on, and waits (at most ``OWNER_REPLY_SECONDS``)
until it has: what it reads is then as fresh as what the run's own client saw. Readers of live
runs are served by one ``XREAD`` per process (``streaming.runs.redis_follow``); readers of this
process's own runs read them from memory.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import redis.asyncio as redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from agent_runtime.errors import BrokerUnavailable
from streaming.runs.broker import RunBroker, RunInfo, run_info_of
from streaming.runs.codec import events_decode
from streaming.runs.memory import release_freed_memory_soon
from streaming.runs.redis_follow import REQUESTS_MAX_ENTRIES, Followers
from streaming.runs.redis_write import PREFIX, RunWriter
from streaming.runs.run import Logged, Run

logger = logging.getLogger(__name__)

#: The lists on which a worker tells a reader that it wrote the run asked for.
REPLY_PREFIX = "agent_runtime:reply:"
#: The longest a reader waits for the worker of a run it asked for (a busy or dead one).
OWNER_REPLY_SECONDS = 0.5


def _keys(session_id: str, turn_id: str) -> tuple[str, str]:
    return PREFIX + session_id, f"{PREFIX}{session_id}:{turn_id}"


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
        self._followers = Followers(
            self.client,
            settings.REDIS_URL,
            serving=lambda: self._writer.copying,
            on_request=self._asked,
        )
        self._writer = RunWriter(self.client, settings.REDIS_URL, owner=self._followers.key)

    @property
    def requests_key(self) -> bytes:
        """This process's request stream, also the client name of its reading connection."""
        return self._followers.key

    # Writing. ---------------------------------------------------------------------------------

    def run_started(self, run: Run) -> None:
        run.on_end.append(release_freed_memory_soon)
        self._writer.run_started(run)
        self._followers.serve()  # for other workers' requests

    def _asked(self, session_id: str, turn_id: str, reply: bytes) -> None:
        self._writer.ask(session_id=session_id, turn_id=turn_id, reply=reply)

    # Reading. ---------------------------------------------------------------------------------

    async def run_info(self, *, session_id: str) -> RunInfo | None:
        local = self._writer.runs.get(session_id)
        if local is not None:
            return run_info_of(local)
        try:
            meta = await self.client.hgetall(PREFIX + session_id)
            running_elsewhere = meta and meta[b"ended"] != meta[b"turn"] and meta.get(b"owner")
            if running_elsewhere and await self._ask(meta[b"owner"], session_id, meta[b"turn"]):
                meta = await self.client.hgetall(PREFIX + session_id)  # as fresh as its run
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

    async def _ask(self, owner: bytes, session_id: str, turn: bytes) -> bool:
        """Asks the worker of a live run to write it now and promptly from then on; whether it
        did within ``OWNER_REPLY_SECONDS``."""
        reply = f"{REPLY_PREFIX}{uuid.uuid4().hex}"
        asked = await self.client.xadd(
            owner,
            {b"s": session_id, b"t": turn, b"r": reply},
            maxlen=REQUESTS_MAX_ENTRIES,
            nomkstream=True,  # its worker is gone: nobody would answer
        )
        return asked is not None and bool(await self.client.blpop([reply], OWNER_REPLY_SECONDS))

    def run_read(self, *, info: RunInfo, after: int) -> AsyncIterator[Logged]:
        local = self._writer.runs.get(info.session_id)
        if local is not None and local.turn_id == info.turn_id:
            return local.read(after)
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
