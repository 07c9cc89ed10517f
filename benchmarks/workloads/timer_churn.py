"""Timer churn: ``call_later`` + ``cancel`` with 10,000 timers pending.

The pattern of every timeout that is set and then cancelled because the I/O
came first (``asyncio.timeout``, ``wait_for``, keep-alive timers). It
measures the timer heap and how the loop disposes of cancelled timers.
One operation is one ``call_later`` paired with one ``cancel``; the 10,000
timers set up first and cancelled last count as operations too.

Churn goes in slices of 1,000 with a loop iteration between slices, because
an iteration is where loops purge cancelled timers from their heaps.
Verified: no cancelled timer ever fires and every handle reports cancelled.
"""
import asyncio

from .base import VerificationError

# Far enough ahead that no timer is due during a run; deterministic spread
# so every loop sees the same heap shapes.
_DELAYS = [60.0 + (i * 7919 % 1000) * 0.06 for i in range(1000)]


async def unit(loop, pending=10_000, churn=20_000, slice_size=1_000):
    fired = []

    def must_not_fire(i):
        fired.append(i)

    handles = [loop.call_later(_DELAYS[i % 1000], must_not_fire, i) for i in range(pending)]
    k = 0
    while k < churn:
        for _ in range(min(slice_size, churn - k)):
            j = k % pending
            handles[j].cancel()
            handles[j] = loop.call_later(_DELAYS[k % 1000], must_not_fire, j)
            k += 1
        await asyncio.sleep(0)
    for handle in handles:
        handle.cancel()
    await asyncio.sleep(0)
    if fired:
        raise VerificationError(f"{len(fired)} cancelled timers fired (first: {fired[0]})")
    if not all(handle.cancelled() for handle in handles):
        raise VerificationError("a cancelled TimerHandle does not report cancelled()")
    return pending + churn
