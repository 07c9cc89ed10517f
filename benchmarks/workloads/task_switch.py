"""Task switches: ``await asyncio.sleep(0)`` by 1 task or by 1,000 tasks.

``sleep(0)`` yields to the loop without a timer, so each operation is one
task step scheduled through ``call_soon`` and resumed by the loop.
Verified: every task completes all its switches, and with many tasks they
resume in strict round-robin order, which is what FIFO ``call_soon``
ordering guarantees (task ``j`` of ``n`` resumes at global tick ``s*n + j``).
"""
import asyncio

from .base import VerificationError


async def unit(loop, tasks=1, switches=10_000):
    if tasks == 1:
        for _ in range(switches):
            await asyncio.sleep(0)
        return switches

    per_task = max(1, switches // tasks)
    tick = 0

    async def worker(j):
        nonlocal tick
        for step in range(per_task):
            if tick != step * tasks + j:
                raise VerificationError(
                    f"task {j} resumed at tick {tick} for step {step}, "
                    f"expected {step * tasks + j}: resumption is not FIFO"
                )
            tick += 1
            await asyncio.sleep(0)

    # Tasks are created in order, so their first steps are queued in order.
    await asyncio.gather(*[loop.create_task(worker(j)) for j in range(tasks)])
    if tick != per_task * tasks:
        raise VerificationError(f"{tick} task steps ran, expected {per_task * tasks}")
    return per_task * tasks
