"""call_later / call_at, TimerHandle and loop.time()."""
import asyncio
import contextvars
import heapq
import math
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import helpers

# asyncio itself may run a timer up to the clock's resolution "early"
# (it treats deadlines within one resolution of now as due).
RESOLUTION = time.get_clock_info("monotonic").resolution


def test_timers_fire_in_deadline_order(loop):
    order = []
    loop.call_later(0.03, order.append, "c")
    loop.call_later(0.01, order.append, "a")
    loop.call_later(0.02, order.append, "b")
    loop.call_later(0.04, loop.stop)
    assert helpers.run_forever(loop)
    assert order == ["a", "b", "c"]


def test_call_at_fires_in_deadline_order(loop):
    order = []
    now = loop.time()
    for i, offset in enumerate([0.05, 0.0, 0.03, 0.01, 0.02, 0.04]):
        loop.call_at(now + offset, order.append, i)
    loop.call_at(now + 0.06, loop.stop)
    assert helpers.run_forever(loop)
    assert order == [1, 3, 4, 2, 5, 0]


@helpers.only("loopx")
def test_equal_deadlines_keep_scheduling_order(loop):
    """loopx orders its heap by (when, seq).  asyncio does not promise this
    ("it is undefined which will be called first") and its heap does not keep
    it, so the test runs on loopx only."""
    order = []
    when = loop.time() + 0.01
    for i in range(2000):
        loop.call_at(when, order.append, i)
    loop.call_at(when + 0.01, loop.stop)
    assert helpers.run_forever(loop)
    assert order == list(range(2000))


def test_timer_passes_args_and_runs_in_given_context(loop):
    var = contextvars.ContextVar("timer_var", default="unset")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "ctx-value")
    seen = []
    loop.call_later(0, lambda *a: seen.append((a, var.get())), 1, 2, context=ctx)
    loop.call_later(0.01, loop.stop)
    assert helpers.run_forever(loop)
    assert seen == [((1, 2), "ctx-value")]


def test_cancel_before_fire(loop):
    fired = []
    handle = loop.call_later(0.01, fired.append, "cancelled-one")
    loop.call_later(0.01, fired.append, "kept")
    handle.cancel()
    assert handle.cancelled()
    loop.call_later(0.05, loop.stop)
    assert helpers.run_forever(loop)
    assert fired == ["kept"]


def test_cancel_most_of_ten_thousand_timers(loop):
    fired = []
    now = loop.time()
    handles = [loop.call_at(now + 0.02 + (i % 50) * 0.0005, fired.append, i) for i in range(10_000)]
    survivors = set(range(0, 10_000, 97))
    for i, handle in enumerate(handles):
        if i not in survivors:
            handle.cancel()
    assert sum(h.cancelled() for h in handles) == 10_000 - len(survivors)
    loop.call_at(now + 0.1, loop.stop)
    assert helpers.run_forever(loop)
    assert sorted(fired) == sorted(survivors)
    whens = [handles[i].when() for i in fired]
    assert whens == sorted(whens)


def test_cancel_a_timer_from_a_callback_of_the_same_iteration(loop):
    fired = []
    when = loop.time() + 0.01
    victim = []
    loop.call_at(when, lambda: victim[0].cancel())
    victim.append(loop.call_at(when + 0.0001, fired.append, "victim"))
    loop.call_at(when + 0.05, loop.stop)
    # Wait long enough that both timers are due in the same iteration.
    time.sleep(0.03)
    assert helpers.run_forever(loop)
    assert fired == []


def test_timer_handle_when(loop):
    when = loop.time() + 100
    handle = loop.call_at(when, lambda: None)
    assert handle.when() == when
    before = loop.time()
    later = loop.call_later(5, lambda: None)
    after = loop.time()
    assert before + 5 <= later.when() <= after + 5
    # asyncio.TimerHandle's private _when, which code and tests read, too.
    assert handle._when == handle.when() and later._when == later.when()
    handle.cancel()
    later.cancel()


def test_call_at_keeps_an_int_deadline_an_int(loop):
    # asyncio's TimerHandle hands back the deadline as given: code that
    # rounds deadlines with math.ceil() (aiohttp) checks for the int.
    def callback():
        pass

    when = math.ceil(loop.time() + 100)
    handle = loop.call_at(when, callback)
    assert handle.when() == when and type(handle.when()) is int
    assert type(handle._when) is int
    assert f"when={when} " in repr(handle)
    assert type(loop.call_at(when + 0.5, callback).when()) is float
    # Equality and ordering go by the value, whatever its type.
    assert loop.call_at(float(when), callback) == handle
    assert loop.call_at(when - 0.5, callback) < handle < loop.call_at(when + 1, callback)


def _fire_order(loop, clock, steps):
    """Advance a fake clock step by step, running the loop a little after each."""
    fired = []
    loop.call_at(clock.now + 75, fired.append, "call_at")
    loop.call_later(76, fired.append, "call_later")
    loop.call_later(30, fired.append, "sooner")
    for step in steps:
        clock.now += step
        helpers.run_once(loop)
        helpers.run_once(loop)
        fired.append(f"t+{step}")
    return fired


class _FakeClock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def test_a_patched_loop_time_drives_the_timers(loop):
    # mock.patch.object(loop, "time"), as test suites do to fast-forward
    # keep-alive and timeout logic: timers are scheduled and fire by it.
    from unittest import mock

    clock = _FakeClock(loop.time())
    with mock.patch.object(loop, "time", clock):
        assert loop.time() == clock.now
        assert loop.call_later(10, lambda: None).when() == clock.now + 10
        fired = _fire_order(loop, clock, [29, 1, 44, 1, 1])
    assert fired == ["t+29", "sooner", "t+1", "t+44", "call_at", "t+1", "call_later", "t+1"]
    # The patch is gone: the real clock again.
    assert abs(loop.time() - time.monotonic()) < 1
    done = []
    loop.call_later(0.01, done.append, 1)
    deadline = time.monotonic() + 5
    while not done and time.monotonic() < deadline:
        helpers.run_once(loop)
    assert done == [1]


def test_a_subclass_clock_drives_the_timers(impl):
    base = asyncio.SelectorEventLoop if impl == "asyncio" else helpers.import_loopx().Loop
    clock = _FakeClock(1000.0)

    class FakeClockLoop(base):
        def time(self):
            return clock()

    loop = FakeClockLoop()
    try:
        assert _fire_order(loop, clock, [30, 45, 1]) == ["sooner", "t+30", "call_at", "t+45",
                                                        "call_later", "t+1"]
    finally:
        loop.close()


def test_call_later_zero_returns_a_timer_handle(loop):
    handle = loop.call_later(0, lambda: None)
    assert isinstance(handle, asyncio.TimerHandle)
    assert isinstance(handle, asyncio.Handle)
    assert type(handle).__name__ == "TimerHandle"
    assert isinstance(handle.when(), float)
    helpers.run_once(loop)


def test_ready_and_scheduled_show_what_is_pending(loop, impl):
    """asyncio's loop._ready and loop._scheduled, which diagnostics and test
    helpers read: loopx shows snapshots of its native queue and heap."""
    soon = loop.call_soon(lambda: None)
    later = loop.call_later(60, lambda: None)
    gone = loop.call_later(30, lambda: None)
    gone.cancel()   # cancelled timers stay until the loop drops them, in both
    assert list(loop._ready) == [soon]
    assert len(loop._scheduled) == 2 and later in loop._scheduled and gone in loop._scheduled
    assert all(isinstance(h, asyncio.TimerHandle) for h in loop._scheduled)
    helpers.run_once(loop)
    assert len(loop._ready) == 0 and not loop._ready
    assert later in loop._scheduled
    if impl == "loopx":
        # Snapshots: changing one fails instead of changing nothing.
        with pytest.raises(AttributeError):
            loop._ready.append(soon)
        with pytest.raises(TypeError):
            heapq.heappush(loop._scheduled, later)
    later.cancel()


def test_test_helpers_can_fast_forward_timers(loop):
    """zeroconf's and Home Assistant's test helpers walk loop._scheduled and
    run what a mocked clock makes due, through asyncio's private handle API:
    _run(), then cancel() so that the loop does not run it again."""
    fired = []
    due = loop.call_later(5, fired.append, "due")
    not_due = loop.call_later(500, fired.append, "not due")
    assert due._scheduled and not due._cancelled and due._args == ("due",)
    assert due._callback == fired.append and due._loop is loop
    assert due._context is not None and due._context.run(lambda: 1) == 1

    async def fast_forward(seconds):
        now = loop.time()
        for handle in list(loop._scheduled):
            if isinstance(handle, asyncio.TimerHandle) and not handle.cancelled():
                if handle.when() <= now + seconds:
                    handle._run()
                    handle.cancel()

    helpers.run(loop, fast_forward(10))
    assert fired == ["due"]
    assert due._cancelled and due._args is None and due._callback is None
    helpers.run(loop, asyncio.sleep(0.01))
    assert fired == ["due"]   # cancelled after its run: the loop skips it
    not_due.cancel()


def test_a_handle_run_by_hand_reports_its_exception(loop):
    """Handle._run() reports what the callback raises to the exception
    handler, as when the loop runs it."""
    seen = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))

    def boom():
        raise ZeroDivisionError

    handle = loop.call_soon(boom)
    handle._run()
    assert isinstance(seen[0]["exception"], ZeroDivisionError) and seen[0]["handle"] is handle
    handle.cancel()
    helpers.run_once(loop)
    assert len(seen) == 1


def test_timers_never_fire_early(loop):
    results = []

    def check(handle_box, scheduled_monotonic, delay):
        results.append((loop.time(), time.monotonic(), handle_box[0].when(), scheduled_monotonic + delay))

    for delay in [0, 0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.0333, 0.05]:
        box = []
        box.append(loop.call_later(delay, check, box, time.monotonic(), delay))
    loop.call_later(0.1, loop.stop)
    assert helpers.run_forever(loop)
    assert len(results) == 11
    for loop_now, mono_now, when, mono_deadline in results:
        assert loop_now >= when - RESOLUTION, f"loop.time() {loop_now} < when {when}"
        assert mono_now >= mono_deadline - RESOLUTION


def test_sleep_is_not_early(loop):
    async def main():
        for delay in (0.001, 0.01, 0.02):
            start = time.monotonic()
            await asyncio.sleep(delay)
            assert time.monotonic() - start >= delay - RESOLUTION

    helpers.run(loop, main())


def test_loop_time_agrees_with_monotonic(loop):
    for _ in range(100):
        low = time.monotonic()
        now = loop.time()
        high = time.monotonic()
        assert low - 0.001 <= now <= high + 0.001


def test_loop_time_agrees_with_monotonic_while_running(loop):
    samples = []

    def sample():
        low = time.monotonic()
        now = loop.time()
        high = time.monotonic()
        samples.append((low, now, high))
        if len(samples) < 20:
            loop.call_later(0.001, sample)
        else:
            loop.stop()

    loop.call_soon(sample)
    assert helpers.run_forever(loop)
    for low, now, high in samples:
        assert low - 0.001 <= now <= high + 0.001


def test_far_future_timer_does_not_block_stop(loop):
    far = loop.call_later(3600, lambda: None)
    loop.call_later(0.01, loop.stop)
    _, took = helpers.elapsed(helpers.run_forever, loop)
    assert took < helpers.PROMPT
    assert not far.cancelled()
    far.cancel()


def test_huge_delays_do_not_break_the_loop(loop):
    """Delays far beyond any poll timeout must not overflow it."""
    fired = []
    huge = [loop.call_later(delay, fired.append, delay) for delay in (1e6, 1e9, 1e12, 1e15)]
    loop.call_later(0.01, fired.append, "short")
    loop.call_later(0.02, loop.stop)
    _, took = helpers.elapsed(helpers.run_forever, loop)
    assert fired == ["short"]
    assert took < helpers.PROMPT
    for handle in huge:
        handle.cancel()


def test_timer_in_the_past_runs_on_the_next_iteration(loop):
    fired = []
    loop.call_at(loop.time() - 10, fired.append, "past")
    loop.call_later(-5, fired.append, "negative")
    helpers.run_once(loop)
    assert sorted(fired) == ["negative", "past"]


def test_call_later_integer_delay(loop):
    handle = loop.call_later(1, lambda: None)
    assert isinstance(handle.when(), float)
    handle.cancel()


def test_cancelled_timer_repr_and_state(loop):
    handle = loop.call_later(10, lambda: None)
    assert not handle.cancelled()
    handle.cancel()
    assert handle.cancelled()
    assert "cancelled" in repr(handle)


def test_timer_scheduled_from_a_timer(loop):
    fired = []

    def first():
        fired.append(("first", loop.time()))
        loop.call_later(0.01, second)

    def second():
        fired.append(("second", loop.time()))
        loop.stop()

    loop.call_later(0.01, first)
    assert helpers.run_forever(loop)
    assert [name for name, _ in fired] == ["first", "second"]
    assert fired[1][1] - fired[0][1] >= 0.01 - RESOLUTION


@helpers.only("loopx")
def test_nan_delay_does_not_hang_or_crash(loop):
    """loopx either refuses a NaN delay (ValueError/TypeError) or runs the
    timer; either way the loop keeps working.  loopx-only: asyncio is no
    reference here (3.11 runs the timer at once, 3.13's selector raises
    ValueError out of run_forever)."""
    fired = []
    try:
        handle = loop.call_later(math.nan, fired.append, "nan")
    except (ValueError, TypeError):
        handle = None
    loop.call_later(0.01, fired.append, "after")
    loop.call_later(0.02, loop.stop)
    _, took = helpers.elapsed(helpers.run_forever, loop)
    assert took < helpers.PROMPT
    assert "after" in fired
    if handle is not None:
        handle.cancel()


def test_none_delay_and_none_when_raise_type_error(loop):
    with pytest.raises(TypeError):
        loop.call_later(None, lambda: None)
    with pytest.raises(TypeError):
        loop.call_at(None, lambda: None)


def test_non_numeric_delay_raises_type_error(loop):
    with pytest.raises(TypeError):
        loop.call_later("1", lambda: None)


# -- property: whatever is scheduled fires in deadline order ------------------

# Deadlines come from a few distinct values so that ties are common.
delays = st.lists(st.sampled_from([0.0, 0.001, 0.002, 0.004, 0.008]), min_size=1, max_size=60)


def _fire(loop, offsets, cancel_mask):
    order = []
    base = loop.time() + 0.002
    handles = [loop.call_at(base + d, order.append, i) for i, d in enumerate(offsets)]
    for handle, cancel in zip(handles, cancel_mask):
        if cancel:
            handle.cancel()
    loop.call_at(base + 0.02, loop.stop)
    assert helpers.run_forever(loop)
    return order, handles


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offsets=delays, data=st.data())
def test_property_timers_fire_by_deadline(new_loop, offsets, data):
    cancel_mask = data.draw(st.lists(st.booleans(), min_size=len(offsets), max_size=len(offsets)))
    loop = new_loop()
    try:
        order, handles = _fire(loop, offsets, cancel_mask)
    finally:
        loop.close()
    assert sorted(order) == [i for i, c in enumerate(cancel_mask) if not c]
    whens = [handles[i].when() for i in order]
    assert whens == sorted(whens)


@helpers.only("loopx")
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offsets=delays, data=st.data())
def test_property_ties_keep_scheduling_order(new_loop, offsets, data):
    """loopx-only: asyncio leaves the order of equal deadlines undefined."""
    cancel_mask = data.draw(st.lists(st.booleans(), min_size=len(offsets), max_size=len(offsets)))
    loop = new_loop()
    try:
        order, _ = _fire(loop, offsets, cancel_mask)
    finally:
        loop.close()
    live = [i for i, c in enumerate(cancel_mask) if not c]
    assert order == sorted(live, key=lambda i: (offsets[i], i))


def test_timeout_context_fires_and_reschedules(loop):
    async def main():
        start = loop.time()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.02):
                await asyncio.sleep(10)
        expired_after = loop.time() - start
        async with asyncio.timeout(0.01) as cm:
            cm.reschedule(loop.time() + 0.05)
            await asyncio.sleep(0.03)  # past the first deadline, before the new one
        return expired_after

    assert helpers.run(loop, main()) >= 0.02 - RESOLUTION
