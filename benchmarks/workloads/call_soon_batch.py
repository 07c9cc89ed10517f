"""``call_soon`` in batches of 1,000 per loop iteration.

Where the chain measures one callback per iteration, this measures the ready
queue under load: 1,000 handles queued at once, then drained in one
iteration, and the last one queues the next batch.
Verified: every callback runs exactly once, in scheduling order.
"""
from .base import VerificationError


async def unit(loop, batch=1_000, batches=20):
    total = batch * batches
    done = loop.create_future()
    expected = 0

    def callback(i):
        nonlocal expected
        if done.done():
            return
        if i != expected:
            done.set_exception(VerificationError(f"callback {i} ran when {expected} was due"))
            return
        expected += 1
        if expected % batch == 0:
            if expected == total:
                done.set_result(total)
            else:
                schedule(expected)

    def schedule(start):
        for i in range(start, start + batch):
            loop.call_soon(callback, i)

    schedule(0)
    return await done
