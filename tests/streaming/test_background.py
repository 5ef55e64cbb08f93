import asyncio
import gc
import weakref

from streaming.background import task_kept


async def test_a_task_nobody_holds_is_not_collected() -> None:
    async def wait() -> None:
        # A future only this task refers to: the loop then holds the task by nothing strong.
        await asyncio.get_running_loop().create_future()

    ref = weakref.ref(task_kept(wait()))
    await asyncio.sleep(0)
    gc.collect()
    task = ref()
    assert task is not None
    assert not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
