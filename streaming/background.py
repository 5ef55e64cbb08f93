"""Tasks that go on without anyone awaiting them."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# The event loop keeps only weak references to its tasks: these keep each alive until it ends.
_running: set[asyncio.Task[Any]] = set()


def task_kept(coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task of ``coroutine`` that runs to its end even when nobody holds it."""
    task = asyncio.get_running_loop().create_task(coroutine)
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task
