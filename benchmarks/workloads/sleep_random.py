"""10,000 concurrent ``asyncio.sleep`` calls with random delays, all firing.

Each operation is a task created, a timer pushed on the heap, popped when
due, and the task woken. Delays are spread over 0-2 ms, so by the time all
tasks are created most timers are due: the measure is the loop's timer and
wake-up throughput, not the wall time of the longest sleep.
Verified: every sleeper wakes exactly once, and none wakes early by more than
a clock tick (2 ms tolerance: some loops round timers to milliseconds).
"""
import asyncio
import random

from .base import VerificationError

_EARLY_TOLERANCE = 0.002


async def unit(loop, sleepers=10_000, max_delay=0.002):
    delays = random.Random(sleepers).sample(range(sleepers), sleepers)
    woke = 0
    early = []

    async def sleeper(delay):
        nonlocal woke
        start = loop.time()
        await asyncio.sleep(delay)
        if loop.time() < start + delay - _EARLY_TOLERANCE:
            early.append(delay)
        woke += 1

    scale = max_delay / sleepers
    await asyncio.gather(*[sleeper(d * scale) for d in delays])
    if woke != sleepers:
        raise VerificationError(f"{woke} of {sleepers} sleepers woke")
    if early:
        raise VerificationError(f"{len(early)} sleeps returned early (e.g. a {early[0]:.4f} s sleep)")
    return sleepers
