"""A timer that asks for a heartbeat after ``interval`` seconds without any event."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class HeartbeatTimer:
    def __init__(self, *, interval: float, beat: Callable[[], None]) -> None:
        self.loop = asyncio.get_running_loop()
        self.interval = interval
        self.beat = beat
        self.last_event_at = self.loop.time()
        self.handle = self.loop.call_later(interval, self._tick)

    def touch(self) -> None:
        """An event went out: the quiet period starts again."""
        self.last_event_at = self.loop.time()

    def stop(self) -> None:
        self.handle.cancel()

    def _tick(self) -> None:
        if self.loop.time() - self.last_event_at >= self.interval * 0.9:
            self.beat()
        self.handle = self.loop.call_later(self.interval, self._tick)
