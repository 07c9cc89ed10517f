"""call_soon and Handle: ordering, iteration boundaries, cancellation, contexts."""
import asyncio
import contextvars
import sys
import weakref

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import helpers

var = contextvars.ContextVar("var", default="unset")


def test_call_soon_runs_callbacks_in_fifo_order(loop):
    order = []
    for i in range(1000):
        loop.call_soon(order.append, i)
    helpers.run_once(loop)
    assert order == list(range(1000))


def test_call_soon_passes_positional_args(loop):
    seen = []
    loop.call_soon(lambda *args: seen.append(args), 1, "two", None, (3,))
    helpers.run_once(loop)
    assert seen == [(1, "two", None, (3,))]


SCHEDULERS = {
    "call_soon": lambda loop, cb, *args, **kw: loop.call_soon(cb, *args, **kw),
    "call_later": lambda loop, cb, *args, **kw: loop.call_later(0, cb, *args, **kw),
    "call_at": lambda loop, cb, *args, **kw: loop.call_at(loop.time(), cb, *args, **kw),
}


@pytest.mark.parametrize("nargs", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("method", sorted(SCHEDULERS))
def test_every_scheduling_method_passes_any_number_of_arguments(loop, method, nargs):
    """loopx keeps up to two arguments in the handle and more in a tuple:
    both sides of that line, through each entry point."""
    args = tuple(7000 + i for i in range(nargs))
    seen = []
    loop.set_debug(True)   # reprs show arguments in debug mode on every Python
    handle = SCHEDULERS[method](loop, lambda *a: seen.append(a), *args)
    assert "(" + ", ".join(map(str, args)) + ")" in repr(handle)
    loop.call_later(0.01, loop.stop)
    assert helpers.run_forever(loop)
    assert seen == [args]


def test_handle_repr_shows_arguments_as_this_python_does(loop):
    """3.13 shows a callback's arguments only in debug mode (they may be
    secrets); 3.11 and 3.12 always do."""
    handle = loop.call_soon(print, "a-secret-argument")
    reference = asyncio.Handle(print, ("a-secret-argument",), loop)
    shown = "a-secret-argument" in repr(handle)
    assert shown == ("a-secret-argument" in repr(reference))
    loop.set_debug(True)
    assert "a-secret-argument" in repr(handle)
    helpers.run_once(loop)


@pytest.mark.parametrize("method", sorted(SCHEDULERS))
def test_scheduling_takes_the_callback_by_keyword(loop, method):
    ran = []
    if method == "call_soon":
        loop.call_soon(callback=ran.append, context=contextvars.copy_context())
    elif method == "call_later":
        loop.call_later(delay=0, callback=lambda: ran.append(None))
    else:
        loop.call_at(when=loop.time(), callback=lambda: ran.append(None))
    loop.call_later(0.01, loop.stop)
    # call_soon(callback=ran.append) calls it with no argument: TypeError,
    # which goes to the exception handler; the others run.
    errors = []
    loop.set_exception_handler(lambda loop, ctx: errors.append(ctx["exception"]))
    assert helpers.run_forever(loop)
    if method == "call_soon":
        assert ran == [] and isinstance(errors[0], TypeError)
    else:
        assert ran == [None] and errors == []


@pytest.mark.parametrize("call", [
    lambda loop: loop.call_soon(print, callback=print),
    lambda loop: loop.call_later(1, print, delay=2),
    lambda loop: loop.call_at(1, print, callback=print),
    lambda loop: loop.call_soon(print, contxt=None),
    lambda loop: loop.call_later(callback=print),
    lambda loop: loop.call_at(),
], ids=["dup-callback", "dup-delay", "dup-at-callback", "unknown-kw", "no-delay", "nothing"])
def test_scheduling_rejects_bad_arguments_with_type_error(loop, call):
    with pytest.raises(TypeError):
        call(loop)
    helpers.run_once(loop)   # nothing was scheduled, nothing breaks


def _schedule_outcome(loop, method, positional, keywords):
    """What loop.<method>(*positional, **keywords) does: the TypeError's
    class name, or the arguments the callback then receives."""
    seen = []

    def record(*args):
        seen.append(tuple("CB" if a is record else a for a in args))

    positional = [record if p == "CB" else p for p in positional]
    keywords = {k: (record if v == "CB" else v) for k, v in keywords.items()}
    try:
        getattr(loop, method)(*positional, **keywords)
    except TypeError:
        return "TypeError"
    loop.call_later(0.005, loop.stop)
    loop.run_forever()
    return seen


@settings(max_examples=150, deadline=None)
@given(
    method=st.sampled_from(["call_soon", "call_later", "call_at"]),
    positional=st.lists(st.sampled_from(["CB", 0, 1, "x", None]), max_size=5),
    keywords=st.dictionaries(
        st.sampled_from(["callback", "delay", "when", "context", "bogus"]),
        st.sampled_from(["CB", 0, None]), max_size=3),
)
def test_property_scheduling_arguments_are_parsed_as_asyncio_does(method, positional, keywords):
    """Any mix of positional and keyword arguments: loopx's own parser
    (sched_call.h) raises TypeError exactly when asyncio's Python signature
    does, and otherwise passes the callback the same arguments.  (In debug
    mode, where asyncio too rejects a callback that is not callable.)"""
    if keywords.get("context", None) is not None:
        keywords["context"] = None   # only None or a Context is meaningful
    outcomes = []
    for impl in helpers.IMPLS:
        loop = helpers.loop_factory(impl)()
        loop.set_debug(True)
        try:
            outcome = _schedule_outcome(loop, method, positional, keywords)
        except Exception as exc:   # a callback that is not callable, a bad delay
            outcome = type(exc).__name__
        finally:
            loop.close()
        outcomes.append(outcome)
    assert outcomes[0] == outcomes[1], (positional, keywords)


def test_callback_cancelling_its_own_handle_keeps_its_arguments(loop):
    """Cancelling drops the handle's references; the running call's own must
    survive it (the arguments may have no other owner)."""
    seen = []
    handles = []

    def callback(a, b):
        handles[0].cancel()
        seen.append((a.value, b.value))

    p1, p2 = helpers.Payload(), helpers.Payload()
    p1.value, p2.value = 1, 2
    handles.append(loop.call_soon(callback, p1, p2))
    del p1, p2
    helpers.run_once(loop)
    assert seen == [(1, 2)]


def test_timer_handles_compare_by_deadline_callback_and_arguments(loop):
    when = loop.time() + 3600
    a = loop.call_at(when, print, 1, 2)
    b = loop.call_at(when, print, 1, 2)
    c = loop.call_at(when, print, 1, 3)
    d = loop.call_at(when, print, 1, 2, 3)
    assert a == b and a <= b and a >= b
    assert a != c and a != d
    for h in (a, b, c, d):
        h.cancel()


def test_a_subclass_overriding_call_soon_sees_the_loops_own_calls(loop):
    """asyncio's C tasks and futures look call_soon up on the loop: an
    override must see their calls, and super() must reach the fast one."""
    calls = []

    class Recording(type(loop)):
        def call_soon(self, callback, *args, context=None):
            calls.append(len(args))
            return super().call_soon(callback, *args, context=context)

    recording = Recording()
    try:
        async def main():
            await asyncio.sleep(0)
            return "done"
        assert recording.run_until_complete(main()) == "done"
    finally:
        recording.close()
    assert calls, "the override was not called"


def test_scheduling_methods_have_asyncios_signatures(loop):
    import inspect
    assert str(inspect.signature(loop.call_soon)) == "(callback, *args, context=None)"
    assert str(inspect.signature(loop.call_later)) == "(delay, callback, *args, context=None)"
    assert str(inspect.signature(loop.call_at)) == "(when, callback, *args, context=None)"


def test_call_soon_returns_a_handle(loop):
    handle = loop.call_soon(lambda: None)
    # loopx's handles are native, and still asyncio Handles to isinstance().
    assert isinstance(handle, asyncio.Handle)
    assert not isinstance(handle, asyncio.TimerHandle)
    assert type(handle).__name__ == "Handle"
    assert callable(handle.cancel)
    assert not handle.cancelled()
    helpers.run_once(loop)


def test_callback_scheduled_during_an_iteration_runs_in_the_next_one(loop):
    order = []

    def first():
        order.append("first")
        loop.call_soon(order.append, "scheduled-by-first")

    loop.call_soon(first)
    loop.call_soon(order.append, "second")
    helpers.run_once(loop)
    # Only what was ready when the iteration began ran.
    assert order == ["first", "second"]
    helpers.run_once(loop)
    assert order == ["first", "second", "scheduled-by-first"]


def test_stop_inside_a_callback_lets_the_iteration_finish(loop):
    order = []

    def stopper():
        order.append("stopper")
        loop.stop()
        loop.call_soon(order.append, "next-iteration")

    loop.call_soon(stopper)
    loop.call_soon(order.append, "same-iteration")
    assert helpers.run_forever(loop)
    assert order == ["stopper", "same-iteration"]
    helpers.run_once(loop)
    assert order == ["stopper", "same-iteration", "next-iteration"]


def test_self_rescheduling_callback_does_not_starve_timers(loop):
    spins = []

    def spin():
        spins.append(None)
        loop.call_soon(spin)

    loop.call_soon(spin)
    loop.call_later(0.05, loop.stop)
    assert helpers.run_forever(loop), "a timer never fired behind a busy ready queue"
    assert len(spins) > 1


def test_cancelled_handle_does_not_run(loop):
    ran = []
    keep = loop.call_soon(ran.append, "kept")
    drop = loop.call_soon(ran.append, "dropped")
    drop.cancel()
    assert drop.cancelled()
    assert not keep.cancelled()
    helpers.run_once(loop)
    assert ran == ["kept"]


def test_cancel_twice_and_after_running_is_harmless(loop):
    ran = []
    handle = loop.call_soon(ran.append, 1)
    helpers.run_once(loop)
    assert ran == [1]
    handle.cancel()
    handle.cancel()
    assert handle.cancelled()
    helpers.run_once(loop)
    assert ran == [1]


def test_callback_cancelling_a_later_callback_of_the_same_iteration(loop):
    ran = []
    handles = []
    loop.call_soon(lambda: handles[0].cancel())
    handles.append(loop.call_soon(ran.append, "victim"))
    loop.call_soon(ran.append, "after")
    helpers.run_once(loop)
    assert ran == ["after"]


def test_callback_runs_in_a_copy_of_the_scheduling_context(loop):
    seen = []

    def callback():
        seen.append(var.get())
        var.set("changed-in-callback")

    token = var.set("outer")
    try:
        loop.call_soon(callback)
        var.set("changed-after-scheduling")
        helpers.run_once(loop)
        assert seen == ["outer"]
        assert var.get() == "changed-after-scheduling"
    finally:
        var.reset(token)


def test_call_soon_with_context_runs_in_that_context(loop):
    ctx = contextvars.copy_context()
    ctx.run(var.set, "in-ctx")
    seen = []

    def callback(tag):
        seen.append((tag, var.get()))
        var.set("set-by-callback")

    loop.call_soon(callback, "a", context=ctx)
    helpers.run_once(loop)
    assert seen == [("a", "in-ctx")]
    # The callback ran *in* ctx, not in a copy of it.
    assert ctx[var] == "set-by-callback"
    assert var.get() == "unset"


@pytest.mark.skipif(not helpers.PY312, reason="Handle.get_context() is new in Python 3.12")
def test_handle_get_context(loop):
    ctx = contextvars.copy_context()
    explicit = loop.call_soon(lambda: None, context=ctx)
    assert explicit.get_context() is ctx
    implicit = loop.call_soon(lambda: None)
    assert isinstance(implicit.get_context(), contextvars.Context)
    timer = loop.call_later(0, lambda: None, context=ctx)
    assert timer.get_context() is ctx
    helpers.run_once(loop)


def test_handle_repr_names_the_callback(loop):
    def a_distinctive_callback_name():
        pass

    handle = loop.call_soon(a_distinctive_callback_name)
    assert "a_distinctive_callback_name" in repr(handle)
    handle.cancel()
    assert "cancelled" in repr(handle)
    helpers.run_once(loop)


def test_many_callbacks_in_one_iteration(loop):
    count = [0]

    def bump():
        count[0] += 1

    for _ in range(100_000):
        loop.call_soon(bump)
    helpers.run_once(loop)
    assert count[0] == 100_000


def test_callback_scheduling_chain_runs_one_step_per_iteration(loop):
    steps = []

    def step(n):
        steps.append(n)
        if n < 4:
            loop.call_soon(step, n + 1)

    loop.call_soon(step, 0)
    for expected in range(5):
        helpers.run_once(loop)
        assert steps == list(range(expected + 1))


def test_callback_arguments_are_released_after_running(loop):
    payload = helpers.Payload()
    ref = weakref.ref(payload)
    loop.call_soon(lambda p: None, payload)
    del payload
    helpers.run_once(loop)
    assert helpers.released(ref)


def test_cancelled_callback_releases_its_arguments(loop):
    payload = helpers.Payload()
    ref = weakref.ref(payload)
    handle = loop.call_soon(lambda p: None, payload)
    handle.cancel()
    del payload
    helpers.run_once(loop)
    assert helpers.released(ref)


def test_cancelled_timer_releases_its_arguments_before_its_deadline(loop):
    payload = helpers.Payload()
    ref = weakref.ref(payload)
    timer = loop.call_later(3600, lambda p: None, payload)
    timer.cancel()
    del payload
    assert helpers.released(ref)


def test_fired_timer_releases_its_arguments(loop):
    payload = helpers.Payload()
    ref = weakref.ref(payload)
    loop.call_later(0, lambda p: None, payload)
    del payload
    loop.call_later(0.01, loop.stop)
    assert helpers.run_forever(loop)
    assert helpers.released(ref)


def test_closed_loop_releases_pending_callbacks(loop):
    payloads = [helpers.Payload() for _ in range(3)]
    refs = [weakref.ref(p) for p in payloads]
    loop.call_soon(lambda p: None, payloads[0])
    loop.call_later(3600, lambda p: None, payloads[1])
    loop.call_soon_threadsafe(lambda p: None, payloads[2])
    del payloads
    loop.close()
    assert all(helpers.released(r) for r in refs)


# Reference cycles through handles.  loopx hides the handles only it holds from
# the garbage collector (csrc/owned.h); these check that every cycle a user
# can build through a handle is still collected, as it is with asyncio.

class _Holder:
    """Keeps the handle of its own callback: obj -> handle -> obj (through
    the bound method, or through the arguments tuple with via_args)."""

    def __init__(self, loop, timer, via_args=False):
        self.ran = False
        cb, args = (_Holder.cb, (self, 1)) if via_args else (self.cb, ())
        self.handle = loop.call_later(0, cb, *args) if timer else loop.call_soon(cb, *args)

    def cb(self, *unused):
        self.ran = True


@pytest.mark.parametrize("via_args", [False, True], ids=["method", "args"])
@pytest.mark.parametrize("timer", [False, True], ids=["call_soon", "call_later"])
def test_cycle_through_a_handle_that_ran_is_collected(loop, timer, via_args):
    holder = _Holder(loop, timer, via_args)
    ref = weakref.ref(holder)
    del holder
    loop.call_later(0.01, loop.stop)
    assert helpers.run_forever(loop)
    assert ref() is not None and ref().ran
    assert helpers.released(ref)


@pytest.mark.parametrize("timer", [False, True], ids=["call_soon", "call_later"])
def test_cycle_through_a_cancelled_handle_is_collected(loop, timer):
    holder = _Holder(loop, timer)
    holder.handle.cancel()
    ref = weakref.ref(holder)
    del holder
    helpers.run_once(loop)
    assert helpers.released(ref)


def test_cycle_through_a_handle_dropped_by_close_is_collected(loop):
    holders = [_Holder(loop, False), _Holder(loop, True)]
    refs = [weakref.ref(h) for h in holders]
    del holders
    loop.close()
    assert all(helpers.released(r) for r in refs)


def test_pending_handle_keeps_its_callback_alive_through_a_collection(loop):
    """A queued handle is the only path to its callback's objects; a garbage
    collection meanwhile must not free them (the handle still runs)."""
    import gc
    ran = []

    class Node:
        def __init__(self):
            self.me = self  # a cycle of its own: only gc can free it

        def cb(self):
            ran.append(self.me is self)

    loop.call_soon(Node().cb)
    loop.call_later(0, Node().cb)
    gc.collect()
    loop.call_later(0.01, loop.stop)
    assert helpers.run_forever(loop)
    assert ran == [True, True]


def test_unclosed_loop_with_pending_cycles_is_collected(impl):
    """A loop dropped without close() whose pending handles are in cycles with
    it and with their callbacks' objects is still collected (and warns)."""
    import gc
    import warnings
    make = helpers.loop_factory(impl)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        dropped = make()
        holders = [_Holder(dropped, False), _Holder(dropped, True)]
        refs = [weakref.ref(dropped)] + [weakref.ref(h) for h in holders]
        del holders, dropped
        gc.collect()
    assert all(r() is None for r in refs)


@helpers.windows_skip("add_reader on a pipe (the proactor loop has no add_reader)")
def test_unclosed_loop_in_a_cycle_through_its_reader_is_collected(impl):
    """The fd table's handles are ordinary GC objects: a reader callback bound
    to an object that holds the loop is a cycle the collector finds."""
    import gc
    import os
    import warnings
    rfd, wfd = os.pipe()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            dropped = helpers.loop_factory(impl)()

            class Reader:
                def __init__(self, loop):
                    self.loop = loop
                    loop.add_reader(rfd, self.on_read)

                def on_read(self):
                    pass

            ref = weakref.ref(Reader(dropped))
            loop_ref = weakref.ref(dropped)
            del dropped
            gc.collect()
        assert ref() is None and loop_ref() is None
    finally:
        os.close(rfd)
        os.close(wfd)


# Handle memory is reused (csrc/handle_freelist.h): a reused handle must be
# indistinguishable from a new one.

def test_handles_made_after_many_died_start_clean(loop):
    ctx = contextvars.copy_context()
    ran = []
    for i in range(300):
        h = loop.call_soon(ran.append, i)
        t = loop.call_later(0, ran.append, -i)
        if i % 2:
            h.cancel()
            t.cancel()
    del h, t
    helpers.run_once(loop)
    ran.clear()

    handles = [loop.call_soon(ran.append, i, context=ctx) for i in range(300)]
    start = loop.time()
    timers = [loop.call_later(3600 + i, ran.append, i) for i in range(300)]
    assert not any(h.cancelled() for h in handles + timers)
    if hasattr(asyncio.Handle, "get_context"):   # 3.12+ in asyncio
        assert all(h.get_context() is ctx for h in handles)
    assert all(t.when() >= start + 3600 + i for i, t in enumerate(timers))
    helpers.run_once(loop)
    assert ran == list(range(300))
    for t in timers:
        t.cancel()


def test_weakref_to_a_dead_handle_stays_dead_when_its_memory_is_reused(loop):
    refs = [weakref.ref(loop.call_soon(lambda: None)), weakref.ref(loop.call_later(0, lambda: None))]
    helpers.run_once(loop)
    assert all(helpers.released(r) for r in refs)
    later = [loop.call_soon(lambda: None) for _ in range(10)] + [loop.call_later(0, lambda: None) for _ in range(10)]
    assert all(r() is None for r in refs)
    helpers.run_once(loop)
    del later


@helpers.only("loopx")
def test_reused_handles_do_not_count_toward_garbage_collection(loop):
    """asyncio makes a new object per handle; loopx reuses dead ones, which
    the garbage collector does not count as new allocations."""
    import gc
    ctx = contextvars.copy_context()
    loop.set_debug(False)   # debug mode (-X dev) records a traceback per handle

    def schedule():
        # Explicit context and no arguments: the handles are all that is
        # allocated (no context copy, no argument tuple).
        for _ in range(1000):
            loop.call_soon(int, context=ctx)
            loop.call_later(0, int, context=ctx)

    schedule()
    helpers.run_once(loop)
    gc.disable()
    try:
        gc.collect()
        before = gc.get_count()[0]
        schedule()
        allocated = gc.get_count()[0] - before
    finally:
        gc.enable()
    helpers.run_once(loop)
    assert allocated < 100


def test_callback_whose_context_is_already_entered_goes_to_the_handler(loop):
    """Running the loop inside the very context a callback must enter: the
    enter fails (RuntimeError, as context.run raises); the exception handler
    gets it and the loop carries on."""
    ctx = contextvars.copy_context()
    ran = []
    errors = helpers.collect_errors(loop)
    loop.call_soon(ran.append, "in ctx", context=ctx)
    loop.call_soon(ran.append, "next")
    ctx.run(helpers.run_once, loop)
    assert ran == ["next"]
    if sys.version_info >= (3, 12):
        # 3.12+ runs the handler in the handle's context too, which fails the
        # same way: asyncio logs that instead of calling the handler.
        assert errors == []
    else:
        assert len(errors) == 1
        assert isinstance(errors[0]["exception"], RuntimeError)
        assert errors[0]["message"].startswith("Exception in callback")


@helpers.only("loopx")
def test_python_subclass_of_a_handle_type_is_an_ordinary_gc_object(impl):
    """The handle types' allocator hands out untracked objects (the loop owns
    them); a Python subclass inherits it but must be tracked, as it can hold
    anything in its __dict__."""
    import gc
    loop = helpers.import_loopx().new_event_loop()
    handle_type = type(loop.call_soon(int))
    loop.close()

    class Sub(handle_type):
        pass

    obj = Sub.__new__(Sub)
    obj.me = obj
    assert gc.is_tracked(obj)
    ref = weakref.ref(obj)
    del obj
    gc.collect()
    assert ref() is None
