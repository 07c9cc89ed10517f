"""``call_soon`` self-rescheduling chain: each callback schedules the next.

This is the loop's bare dispatch cost: one handle allocated, queued, popped
and run per operation, with one loop iteration per callback.
Verified: every callback runs exactly once and in order.
"""
from .base import VerificationError


async def unit(loop, length=20_000):
    done = loop.create_future()
    ran = 0

    def step(i):
        nonlocal ran
        if i != ran:
            # Raising here would only reach the exception handler; failing
            # the future makes run_until_complete raise in the harness.
            done.set_exception(VerificationError(f"callback {i} ran when {ran} was due"))
            return
        ran += 1
        if ran < length:
            loop.call_soon(step, ran)
        else:
            done.set_result(ran)

    loop.call_soon(step, 0)
    return await done
