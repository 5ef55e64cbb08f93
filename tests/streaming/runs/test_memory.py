"""Trimming the heap after runs end."""

import asyncio
import gc
import weakref

from streaming.runs import memory


async def test_runs_ending_together_trim_the_heap_once_after_the_last(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls: list[int] = []
    monkeypatch.setattr(memory, "_trim", calls.append)
    monkeypatch.setattr(memory, "TRIM_DELAY_SECONDS", 0.05)
    for _ in range(3):
        memory.release_freed_memory_soon()
        await asyncio.sleep(0.02)
    assert calls == []
    await asyncio.sleep(0.1)
    assert calls == [0]


async def test_runs_that_never_stop_ending_still_trim_every_max_wait(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls: list[int] = []
    monkeypatch.setattr(memory, "_trim", calls.append)
    monkeypatch.setattr(memory, "TRIM_DELAY_SECONDS", 0.05)
    monkeypatch.setattr(memory, "TRIM_MAX_WAIT_SECONDS", 0.1)
    for _ in range(25):  # a run ends every 0.02 s: never quiet for TRIM_DELAY_SECONDS
        memory.release_freed_memory_soon()
        await asyncio.sleep(0.02)
    assert len(calls) >= 2


async def test_the_trim_first_collects_the_cycles_that_ended_requests_leave(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(memory, "TRIM_DELAY_SECONDS", 0.01)

    class Node:
        pass

    node = Node()
    node.self = node  # type: ignore[attr-defined]
    gone = weakref.ref(node)
    del node
    gc.disable()  # so that only the trim's collection can free it
    try:
        memory.release_freed_memory_soon()
        await asyncio.sleep(0.05)
        assert gone() is None
    finally:
        gc.enable()
