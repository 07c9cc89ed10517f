"""call_soon_threadsafe: many producers, waking a blocked poll, contexts."""
import asyncio
import contextvars
import threading
import time

import helpers

var = contextvars.ContextVar("ts_var", default="unset")


def test_many_threads_each_callback_runs_exactly_once(loop):
    threads_n, per_thread = 8, 1000
    total = threads_n * per_thread
    seen = []
    barrier = threading.Barrier(threads_n)

    def record(item):
        seen.append(item)
        if len(seen) == total:
            loop.stop()

    def producer(tid):
        barrier.wait()
        for i in range(per_thread):
            loop.call_soon_threadsafe(record, (tid, i))

    threads = [threading.Thread(target=producer, args=(t,)) for t in range(threads_n)]
    for t in threads:
        t.start()
    try:
        assert helpers.run_forever(loop), f"only {len(seen)} of {total} callbacks ran"
    finally:
        for t in threads:
            t.join(helpers.SAFETY)
    assert sorted(seen) == [(t, i) for t in range(threads_n) for i in range(per_thread)]
    # Each producer's own callbacks keep its order.
    for tid in range(threads_n):
        mine = [i for t, i in seen if t == tid]
        assert mine == list(range(per_thread))


def test_wakes_a_loop_blocked_in_poll(loop):
    woke = []

    def later():
        time.sleep(0.2)  # let the loop settle into an unbounded poll
        loop.call_soon_threadsafe(lambda: (woke.append(time.monotonic()), loop.stop()))

    thread = threading.Thread(target=later)
    start = time.monotonic()
    thread.start()
    try:
        stopped = helpers.run_forever(loop)
    finally:
        thread.join(helpers.SAFETY)
    assert stopped, "call_soon_threadsafe did not wake the loop"
    assert woke and woke[0] - start < helpers.PROMPT


def test_wakes_a_loop_waiting_for_a_far_timer(loop):
    far = loop.call_later(3600, lambda: None)

    def later():
        time.sleep(0.1)
        loop.call_soon_threadsafe(loop.stop)

    thread = threading.Thread(target=later)
    thread.start()
    try:
        _, took = helpers.elapsed(helpers.run_forever, loop)
    finally:
        thread.join(helpers.SAFETY)
    assert took < helpers.PROMPT
    far.cancel()


def test_repeated_wakeups(loop):
    """Each of many separate wake-ups gets through (no lost wakeup)."""
    rounds = 200
    done = []

    def producer():
        for i in range(rounds):
            ev = threading.Event()
            loop.call_soon_threadsafe(lambda i=i, ev=ev: (done.append(i), ev.set()))
            assert ev.wait(helpers.SAFETY)
        loop.call_soon_threadsafe(loop.stop)

    thread = threading.Thread(target=producer)
    thread.start()
    try:
        assert helpers.run_forever(loop)
    finally:
        thread.join(helpers.SAFETY)
    assert done == list(range(rounds))


def test_threadsafe_with_context(loop):
    ctx = contextvars.copy_context()
    ctx.run(var.set, "threadsafe-ctx")
    seen = []

    def callback(arg):
        seen.append((arg, var.get()))
        var.set("changed")
        loop.stop()

    helpers.call_in_thread(lambda: loop.call_soon_threadsafe(callback, "arg", context=ctx))
    assert helpers.run_forever(loop)
    assert seen == [("arg", "threadsafe-ctx")]
    assert ctx[var] == "changed"


def test_threadsafe_handle_can_be_cancelled_before_it_runs(loop):
    ran = []
    handle = helpers.call_in_thread(lambda: loop.call_soon_threadsafe(ran.append, 1))
    handle.cancel()
    assert handle.cancelled()
    helpers.run_once(loop)
    assert ran == []


def test_threadsafe_from_the_loop_thread(loop):
    ran = []
    loop.call_soon(lambda: loop.call_soon_threadsafe(ran.append, "inner"))
    loop.call_later(0.01, loop.stop)
    assert helpers.run_forever(loop)
    assert ran == ["inner"]


def test_run_coroutine_threadsafe(loop):
    async def compute(x):
        await asyncio.sleep(0.01)
        return x + 1

    with helpers.running_in_thread(loop):
        fut = asyncio.run_coroutine_threadsafe(compute(1), loop)
        assert fut.result(helpers.SAFETY) == 2


def test_loops_running_in_several_threads_at_once(new_loop):
    """Four loops, each in its own thread, exchange callbacks through
    call_soon_threadsafe while running timers and tasks of their own."""
    loops = [new_loop() for _ in range(4)]
    rounds = 300
    received = [[] for _ in loops]

    async def worker(index):
        me = asyncio.get_running_loop()
        assert me is loops[index]
        peer = loops[(index + 1) % len(loops)]
        for i in range(rounds):
            peer.call_soon_threadsafe(received[(index + 1) % len(loops)].append, (index, i))
            if i % 50 == 0:
                await asyncio.sleep(0.001)
            else:
                await asyncio.sleep(0)
        deadline = me.time() + helpers.SAFETY
        while len(received[index]) < rounds and me.time() < deadline:
            await asyncio.sleep(0.001)
        return list(received[index])

    results = [None] * len(loops)

    def run(index):
        results[index] = loops[index].run_until_complete(worker(index))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(loops))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(helpers.SAFETY * 2)
    for index, got in enumerate(results):
        sender = (index - 1) % len(loops)
        assert got == [(sender, i) for i in range(rounds)]
