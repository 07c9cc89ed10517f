"""Future ping-pong: two tasks hand a counter back and forth.

Each exchange creates two fresh futures with ``loop.create_future()`` and
wakes each task once, so it measures future creation, completion callbacks
and task wake-ups, the core of every ``await`` on I/O.
Verified: every value arrives exactly once and in sequence.
"""
import asyncio

from .base import VerificationError


async def unit(loop, exchanges=5_000):
    first = loop.create_future()

    async def ponger(inbox):
        for expected in range(exchanges):
            value, reply, next_inbox = await inbox
            if value != expected:
                raise VerificationError(f"ponger got {value}, expected {expected}")
            reply.set_result(value + 1)
            inbox = next_inbox

    async def pinger(outbox):
        for i in range(exchanges):
            reply = loop.create_future()
            next_outbox = loop.create_future()
            outbox.set_result((i, reply, next_outbox))
            answer = await reply
            if answer != i + 1:
                raise VerificationError(f"pinger got {answer}, expected {i + 1}")
            outbox = next_outbox

    await asyncio.gather(loop.create_task(ponger(first)), loop.create_task(pinger(first)))
    return exchanges
