import asyncio
import gc

from streaming.background import task_kept


async def test_a_task_nobody_holds_runs_to_its_end() -> None:
    finished = asyncio.Event()

    async def work() -> None:
        for _ in range(3):
            await asyncio.sleep(0)
            gc.collect()  # a task only the loop referred to (weakly) would be gone here
        finished.set()

    task_kept(work())
    await asyncio.wait_for(finished.wait(), timeout=5)
