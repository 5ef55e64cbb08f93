"""What a turn waits for, in arrival order: upstream deltas, tool outcomes, cancel, heartbeats.

One reader (the turn) and any number of writers, all on the event loop. Lighter than an
``asyncio.Queue`` (no task accounting, no bound, no getter list), since a delta passes
through it for every relayed token.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class Inbox:
    __slots__ = ("items", "loop", "waiter")

    def __init__(self) -> None:
        self.items: deque[Any] = deque()
        self.loop = asyncio.get_running_loop()
        #: The reader's future while it waits for an item.
        self.waiter: asyncio.Future[None] | None = None

    def put(self, item: Any) -> None:
        self.items.append(item)
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def get(self) -> Any:
        items = self.items
        while not items:
            self.waiter = waiter = self.loop.create_future()
            await waiter
        return items.popleft()
