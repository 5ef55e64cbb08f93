"""One call to the model: its deltas fed to the turn's queue, with retries before any delta."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from agent_runtime.errors import UpstreamError, UpstreamProtocolError
from streaming import telemetry
from streaming.llm_client import ChatClient, ChatStream
from streaming.upstream_retry import retry_delay

logger = logging.getLogger(__name__)

#: Put on the queue after the call's last delta.
CALL_END = object()

#: Deltas the turn may leave untaken before the call stops reading the model until the turn
#: has taken all but ``BACKLOG_RESUME`` of them: a turn whose client reads slowly reads the
#: model slowly too, instead of buffering it (the model server's socket then fills up).
BACKLOG_PAUSE = 32
BACKLOG_RESUME = 8


class ModelCall:
    """Feeds one model call's deltas to ``put``; ``hang_up`` stops it from any task."""

    def __init__(
        self,
        *,
        client: ChatClient,
        put: Callable[[Any], None],
        backlog: Callable[[], int] = lambda: 0,
    ) -> None:
        self.client = client
        self.put = put
        #: How many deltas the turn has not taken yet.
        self.backlog = backlog
        #: Set while the call waits for the turn to take its deltas (``take``).
        self.paused: asyncio.Future[None] | None = None
        self.upstream: ChatStream | None = None
        #: True while a response is being read (cancelling the task then would leave the
        #: connection pool inconsistent: hang up instead).
        self.reading = False
        self.stopping = False

    async def run(
        self, *, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> None:
        put, backlog = self.put, self.backlog
        loop = asyncio.get_running_loop()
        attempt = 0
        first_try = loop.time()
        while True:
            attempt += 1
            produced = False
            try:
                self.upstream = self.client.stream_chat(messages=messages, tools=tools)
                self.reading = True
                async for delta in self.upstream:
                    produced = True
                    put(delta)
                    if backlog() > BACKLOG_PAUSE and not self.stopping:
                        self.paused = loop.create_future()
                        await self.paused
                put(CALL_END)
                return
            except UpstreamError as exc:
                if self.stopping:
                    return
                delay = (
                    None
                    if produced
                    else retry_delay(error=exc, attempt=attempt, elapsed=loop.time() - first_try)
                )
                telemetry.upstream_failed(
                    code=exc.code, attempt=attempt, will_retry=delay is not None
                )
                if delay is None:
                    put(exc)
                    return
                self.reading = False
                await asyncio.sleep(delay)
            except Exception:  # a bug in a client must end the turn, not hang it
                logger.exception("the LLM client failed")
                put(UpstreamProtocolError())
                return

    def taken(self) -> None:
        """The turn took deltas: read the model again if it has few left."""
        if self.backlog() <= BACKLOG_RESUME:
            self._resume()

    def _resume(self) -> None:
        paused, self.paused = self.paused, None
        if paused is not None and not paused.done():
            paused.set_result(None)

    async def hang_up(self) -> None:
        """Close the connection, which tells the model server to stop generating."""
        self.stopping = True
        self._resume()
        if self.upstream is not None:
            await self.upstream.hang_up()
