"""Gives the memory of ended runs back to the system.

An ended request leaves reference cycles behind (an aborted upstream call's response, stream
reader and exception; a request's exception and its frames), which only a full garbage
collection frees, and a large heap rarely runs one: after 200 turns ended together (clients
that never read, docs/security.md "Slow readers") they held 7 MB until one ran. And glibc's
allocator keeps what a process frees for its next allocations, returning only what lies at
the top of its heap. So once runs stop ending and connections stop closing for
``TRIM_DELAY_SECONDS``, a full collection runs, then ``malloc_trim`` hands the free pages back
(it walks the heap: about a millisecond per 100 MB). The collection is cheap because the
objects of start-up are frozen (``freeze_startup_objects``): it walks only those made since.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
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


class _Pending:
    """A trim to come: when the first call waiting for it came, the last one, and the last
    one its timer was set for."""

    __slots__ = ("armed", "first", "last")

    def __init__(self, now: float) -> None:
        self.first = self.last = self.armed = now


#: Per event loop: the pending trim.
_pending: dict[asyncio.AbstractEventLoop, _Pending] = {}


def release_freed_memory_soon(_run: Any = None) -> None:
    """Called as a run ends (a ``Run.on_end`` callback) and as a connection closes: collect
    and trim once they stop for a moment (what a run held is dropped a little after its end),
    and at least every ``TRIM_MAX_WAIT_SECONDS``."""
    loop = asyncio.get_running_loop()
    now = loop.time()
    pending = _pending.get(loop)
    if pending is None:
        _pending[loop] = _Pending(now)
        loop.call_later(TRIM_DELAY_SECONDS, _trim_due, loop)
    elif now - pending.first <= TRIM_MAX_WAIT_SECONDS:
        # One timer, set again when it comes due (``_trim_due``), not one per call: runs end
        # and connections close at every turn.
        pending.last = now


def _trim_due(loop: asyncio.AbstractEventLoop) -> None:
    pending = _pending[loop]
    if pending.last > pending.armed:
        pending.armed = pending.last
        loop.call_at(pending.last + TRIM_DELAY_SECONDS, _trim_due, loop)
        return
    del _pending[loop]
    gc.collect()
    if _trim is not None:
        _trim(0)


def freeze_startup_objects() -> None:
    """Keep the objects made at start-up (modules, classes, functions: most of the heap) out of
    every later garbage collection, once the garbage among them is collected."""
    gc.collect()
    gc.freeze()
