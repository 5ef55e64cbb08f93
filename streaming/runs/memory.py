"""Gives the memory of ended runs back to the system.

glibc's allocator keeps the memory a process frees for its next allocations, and returns only
what lies at the top of its heap: after many turns end together (200 clients that never read,
docs/security.md "Slow readers") the resident set stays tens of MB above what the process
still uses. ``malloc_trim`` hands the free pages back; runs' ends ask for it, once they stop ending
for ``TRIM_DELAY_SECONDS`` (it walks the heap: about a millisecond per 100 MB).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable
from typing import Any

#: After a run ends, how long to wait for more to end before trimming once for all.
TRIM_DELAY_SECONDS = 0.5
TRIM_MAX_WAIT_SECONDS = 10.0


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``; None under another C library (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_trim = _malloc_trim()
#: Per event loop: the pending trim, and when the first run waiting for it ended.
_pending: dict[asyncio.AbstractEventLoop, tuple[asyncio.TimerHandle, float]] = {}


def release_freed_memory_soon(_run: Any = None) -> None:
    """A ``Run.on_end`` callback: trim the heap once runs stop ending for a moment (what a
    run held is dropped a little after its end), and at least every ``TRIM_MAX_WAIT_SECONDS``."""
    if _trim is None:
        return
    loop = asyncio.get_running_loop()
    now = loop.time()
    handle, first = _pending.get(loop, (None, now))
    if handle is not None:
        if now - first > TRIM_MAX_WAIT_SECONDS:
            return
        handle.cancel()
    _pending[loop] = (loop.call_later(TRIM_DELAY_SECONDS, _trim_now, loop), first)


def _trim_now(loop: asyncio.AbstractEventLoop) -> None:
    _pending.pop(loop, None)
    if _trim is not None:
        _trim(0)
