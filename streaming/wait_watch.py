"""A timer for waits that may last too long: a stream's pending write, an upstream read.

The waiting code sets ``began`` (``loop.time()``) when a wait begins and 0.0 when it ends, two
attribute stores per wait; the timer runs once per ``timeout``, not once per wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class WaitWatch:
    __slots__ = ("began", "expire", "expired", "handle", "loop", "timeout")

    def __init__(
        self, timeout: float, expire: Callable[[float], object], *, began: float = 0.0
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.timeout = timeout
        #: Called once, with how long the wait lasted, when one lasts ``timeout``.
        self.expire = expire
        self.expired = False
        #: When the pending wait began (``loop.time()``); 0.0 while none is pending.
        self.began = began
        self.handle = self.loop.call_later(timeout, self._check)

    def _check(self) -> None:
        began = self.began
        waited = self.loop.time() - began if began else 0.0
        if waited < self.timeout:
            self.handle = self.loop.call_later(self.timeout - waited, self._check)
            return
        self.expired = True
        self.expire(waited)

    def stop(self) -> None:
        self.handle.cancel()
