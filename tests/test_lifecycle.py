"""run_forever / stop / run_until_complete / close / is_running / is_closed."""
import asyncio
import gc
import threading
import warnings

import pytest

import helpers


def test_fresh_loop_state(loop):
    assert isinstance(loop, asyncio.AbstractEventLoop)
    assert not loop.is_running()
    assert not loop.is_closed()


def test_is_running_inside_a_callback(loop):
    seen = []
    loop.call_soon(lambda: seen.append(loop.is_running()))
    helpers.run_once(loop)
    assert seen == [True]
    assert not loop.is_running()


def test_get_running_loop_inside_a_callback_and_a_coroutine(loop):
    seen = []
    loop.call_soon(lambda: seen.append(asyncio.get_running_loop()))
    helpers.run_once(loop)

    async def main():
        return asyncio.get_running_loop()

    assert helpers.run(loop, main()) is loop
    assert seen == [loop]
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_run_forever_until_stop(loop):
    ran = []
    loop.call_later(0.01, ran.append, "timer")
    loop.call_later(0.02, loop.stop)
    assert helpers.run_forever(loop)
    assert ran == ["timer"]
    assert not loop.is_running()


def test_loop_can_run_again_after_stop(loop):
    ran = []
    for i in range(3):
        loop.call_soon(ran.append, i)
        loop.call_soon(loop.stop)
        assert helpers.run_forever(loop)
    assert ran == [0, 1, 2]


def test_stop_before_run_forever_runs_one_iteration(loop):
    ran = []

    def first():
        ran.append("first")
        loop.call_soon(ran.append, "second-iteration")

    loop.call_soon(first)
    loop.stop()
    assert helpers.run_forever(loop)
    assert ran == ["first"]
    # The stop request was consumed: the next run_forever runs normally.
    loop.call_soon(loop.stop)
    assert helpers.run_forever(loop)
    assert ran == ["first", "second-iteration"]


def test_stop_twice_is_one_stop(loop):
    loop.stop()
    loop.stop()
    assert helpers.run_forever(loop)
    loop.call_later(0.01, loop.stop)
    ran = []
    loop.call_soon(ran.append, 1)
    assert helpers.run_forever(loop)
    assert ran == [1]


def test_run_until_complete_with_a_coroutine(loop):
    async def main(x):
        await asyncio.sleep(0)
        return x * 2

    assert loop.run_until_complete(main(21)) == 42
    assert not loop.is_running()


def test_run_until_complete_propagates_the_exception(loop):
    class Boom(Exception):
        pass

    async def main():
        await asyncio.sleep(0)
        raise Boom("bang")

    with pytest.raises(Boom, match="bang"):
        loop.run_until_complete(main())


def test_run_until_complete_with_a_future(loop):
    fut = loop.create_future()
    loop.call_later(0.01, fut.set_result, "done")
    assert loop.run_until_complete(fut) == "done"


def test_run_until_complete_with_a_done_future(loop):
    fut = loop.create_future()
    fut.set_result(7)
    assert loop.run_until_complete(fut) == 7


def test_run_until_complete_with_an_awaitable(loop):
    class Awaitable:
        def __await__(self):
            yield from asyncio.sleep(0).__await__()
            return "awaited"

    assert loop.run_until_complete(Awaitable()) == "awaited"


def test_run_until_complete_rejects_non_awaitables(loop):
    with pytest.raises(TypeError):
        loop.run_until_complete(42)
    with pytest.raises(TypeError):
        loop.run_until_complete(lambda: None)


def test_run_until_complete_with_a_future_of_another_loop(loop, new_loop):
    other = new_loop()
    fut = other.create_future()
    with pytest.raises(ValueError):
        loop.run_until_complete(fut)
    fut.cancel()


def test_run_until_complete_cancelled_future(loop):
    fut = loop.create_future()
    loop.call_soon(fut.cancel)
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(fut)


def test_event_loop_stopped_before_future_completed(loop):
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError, match="Event loop stopped before Future completed."):
        loop.run_until_complete(fut)
    assert not fut.done()
    fut.cancel()


def test_task_of_stopped_run_until_complete_can_be_resumed(loop):
    async def main():
        await asyncio.sleep(0.01)
        return "finished"

    task = loop.create_task(main())
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError):
        loop.run_until_complete(task)
    assert loop.run_until_complete(task) == "finished"


# Each nested-run attempt gets its own loop: after a refused nested run,
# CPython 3.13.0's run_forever cleanup wrongly resets the running loop's
# state, so a second attempt in the same iteration proves nothing.

def _attempt_in_callback(loop, attempt):
    errors = []

    def callback():
        errors.append(helpers.raised_by(attempt))

    loop.call_soon(callback)
    helpers.run_once(loop)
    assert len(errors) == 1
    return errors[0]


def test_run_forever_on_an_already_running_loop(loop):
    error = _attempt_in_callback(loop, loop.run_forever)
    assert isinstance(error, RuntimeError)
    assert "already running" in str(error)


def test_run_until_complete_on_an_already_running_loop(loop):
    coro = asyncio.sleep(0)
    try:
        error = _attempt_in_callback(loop, lambda: loop.run_until_complete(coro))
    finally:
        coro.close()
    assert isinstance(error, RuntimeError)
    assert "already running" in str(error)


def test_run_forever_of_a_second_loop_in_a_thread_where_one_runs(loop, new_loop):
    other = new_loop()
    error = _attempt_in_callback(loop, other.run_forever)
    assert isinstance(error, RuntimeError)
    assert not other.is_running()


def test_run_until_complete_of_a_second_loop_in_a_thread_where_one_runs(loop, new_loop):
    other = new_loop()
    coro = asyncio.sleep(0)
    try:
        error = _attempt_in_callback(loop, lambda: other.run_until_complete(coro))
    finally:
        coro.close()
    assert isinstance(error, RuntimeError)
    assert not other.is_running()


def _running_state_after(loop, attempt):
    """Inside a callback: make a refused attempt, then report whether the
    loop still knows it is running."""
    state = []

    def callback():
        error = helpers.raised_by(attempt)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        state.append((type(error), loop.is_running(), running is loop))

    loop.call_soon(callback)
    helpers.run_once(loop)
    return state[0]


def test_refused_nested_run_forever_leaves_the_loop_running(loop, impl):
    helpers.skip_asyncio_with_gh130145(impl)
    assert _running_state_after(loop, loop.run_forever) == (RuntimeError, True, True)


def test_refused_nested_run_until_complete_leaves_the_loop_running(loop, impl):
    helpers.skip_asyncio_with_gh130145(impl)
    fut = loop.create_future()
    assert _running_state_after(loop, lambda: loop.run_until_complete(fut)) == (RuntimeError, True, True)
    fut.cancel()


def test_refused_run_of_another_loop_leaves_this_one_running(loop, new_loop, impl):
    helpers.skip_asyncio_with_gh130145(impl)
    other = new_loop()
    assert _running_state_after(loop, other.run_forever) == (RuntimeError, True, True)
    assert not other.is_running()


def test_refused_run_of_a_closed_loop_leaves_the_running_one_alone(loop, new_loop, impl):
    helpers.skip_asyncio_with_gh130145(impl)
    closed = new_loop()
    closed.close()
    assert _running_state_after(loop, closed.run_forever) == (RuntimeError, True, True)


def test_refused_run_from_another_thread_leaves_the_loop_running(loop, impl):
    """run_forever() called from a second thread on a loop running in the
    first is refused, and must not corrupt the running loop's state (if it
    did, close() would then tear the loop down under its own thread)."""
    helpers.skip_asyncio_with_gh130145(impl)
    with helpers.running_in_thread(loop):
        with pytest.raises(RuntimeError):
            loop.run_forever()
        assert loop.is_running(), "a refused run_forever() marked the running loop as stopped"
        with pytest.raises(RuntimeError):
            loop.close()
        # The loop still works and still stops when asked.
        done = threading.Event()
        loop.call_soon_threadsafe(done.set)
        assert done.wait(helpers.SAFETY)


def test_close_a_running_loop(loop):
    errors = []
    loop.call_soon(lambda: errors.append(helpers.raised_by(loop.close)))
    helpers.run_once(loop)
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
    assert not loop.is_closed()


def test_close_is_idempotent(loop):
    loop.close()
    assert loop.is_closed()
    loop.close()
    assert loop.is_closed()


def test_closed_loop_refuses_work(loop):
    loop.close()

    def check(fn, *args, **kwargs):
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            fn(*args, **kwargs)

    check(loop.call_soon, lambda: None)
    check(loop.call_later, 1, lambda: None)
    check(loop.call_at, loop.time() + 1, lambda: None)
    check(loop.call_soon_threadsafe, lambda: None)
    check(loop.run_forever)
    check(loop.run_in_executor, None, lambda: None)
    coro = asyncio.sleep(0)
    try:
        check(loop.run_until_complete, coro)
        check(loop.create_task, coro)
    finally:
        coro.close()


@helpers.windows_skip("add_reader/add_writer: asyncio's Windows (proactor) loop has none")
def test_closed_loop_refuses_fd_watchers(loop):
    a, b = helpers.socketpair()
    with a, b:
        loop.close()
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            loop.add_reader(a.fileno(), lambda: None)
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            loop.add_writer(a.fileno(), lambda: None)


def test_close_discards_pending_callbacks(loop):
    ran = []
    loop.call_soon(ran.append, "soon")
    loop.call_later(0.001, ran.append, "later")
    loop.close()
    assert ran == []


def test_run_forever_in_another_thread(loop):
    ran = []
    with helpers.running_in_thread(loop) as thread:
        done = threading.Event()
        loop.call_soon_threadsafe(lambda: (ran.append(threading.current_thread()), done.set()))
        assert done.wait(helpers.SAFETY)
        assert loop.is_running()
    assert ran == [thread]
    assert not loop.is_running()


def test_keyboard_interrupt_leaves_the_loop_reusable(loop):
    def interrupt():
        raise KeyboardInterrupt

    loop.call_soon(interrupt)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert not loop.is_running()
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    ran = []
    loop.call_soon(ran.append, "again")
    helpers.run_once(loop)
    assert ran == ["again"]


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_in_a_coroutine_propagates_from_run_until_complete(loop, exc_type):
    async def main():
        await asyncio.sleep(0)
        raise exc_type()

    with pytest.raises(exc_type):
        loop.run_until_complete(main())
    assert not loop.is_running()
    assert helpers.run(loop, asyncio.sleep(0, "usable")) == "usable"


def test_unclosed_loop_warns_and_releases_its_fds(impl):
    """A loop dropped without close() warns (ResourceWarning, like asyncio)
    and gives its fds back when collected, even from a reference cycle
    through a pending callback."""
    make = helpers.loop_factory(impl)
    before = set(helpers.open_fds())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dropped = make()
        dropped.call_soon(dropped.stop)  # a cycle: loop -> handle -> bound method -> loop
        dropped.call_later(3600, dropped.stop)
        del dropped
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) and "unclosed event loop" in str(w.message)
               for w in caught)
    assert set(helpers.open_fds()) <= before


def test_many_loops_created_run_and_closed(new_loop):
    """Creating, running and closing loops over and over leaks nothing (the
    fixture checks fds) and never crashes."""
    for i in range(300):
        lp = new_loop()
        lp.call_soon(lp.stop)
        lp.run_forever()
        lp.close()
        lp.close()


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_loop_left_in_the_policy_at_exit_warns_cleanly(debug):
    """A loop still set as the thread's loop when the interpreter exits is
    collected after module globals are gone; its __del__ must still warn
    and close it (which, in debug mode, logs), not fail with an ignored
    AttributeError."""
    out = helpers.python_subprocess(
        "import asyncio, logging, os, warnings\n"
        "os.dup2(1, 2)\n"
        "warnings.simplefilter('always')\n"
        "logging.basicConfig(level=logging.DEBUG, format='LOG %(message)s')\n"
        "import loopx\n"
        "loop = loopx.new_event_loop()\n"
        f"loop.set_debug({debug})\n"
        "with warnings.catch_warnings():\n"
        "    warnings.simplefilter('ignore', DeprecationWarning)\n"
        "    asyncio.set_event_loop(loop)\n"
        "del loop\n"
        "print('started', flush=True)\n")
    assert "started" in out
    assert "Exception ignored" not in out and "AttributeError" not in out, out
    assert "unclosed event loop" in out, out
    if debug:
        assert "LOG Close <Loop" in out, out


_PENDING_AT_EXIT = {
    "sleeping task": "loop.create_task(asyncio.sleep(1000))",
    "sock_accept": "listener = socket.create_server(('127.0.0.1', 0)); listener.setblocking(False)\n"
                   "    keep.append(listener); loop.create_task(loop.sock_accept(listener))",
    "sock_recv": "loop.create_task(loop.sock_recv(a, 100))",
    "stream read": "reader, writer = await asyncio.open_connection(sock=a)\n"
                   "    keep.append(writer); loop.create_task(reader.read(100))",
    "open transport": "keep.append(await loop.connect_accepted_socket(asyncio.Protocol, a))\n"
                      "    loop.create_task(asyncio.wait_for(loop.create_future(), 1000))",
}


@pytest.mark.parametrize("pending", list(_PENDING_AT_EXIT), ids=list(_PENDING_AT_EXIT))
def test_loop_left_with_pending_tasks_at_exit_does_not_crash(impl, pending):
    """Never closed, still the thread's loop, tasks pending: the loop is
    collected in the interpreter's last collection, after _asyncio has freed
    its module globals.  The pending task's finalizer still reports to the
    loop's exception handler; on 3.11 a repr() of that task there crashed
    loopx (exit by SIGSEGV), while asyncio's handler silently fails."""
    factory = "loopx.new_event_loop" if impl == "loopx" else "asyncio.new_event_loop"
    out = helpers.python_subprocess(
        "import asyncio, socket, warnings\n"
        "import loopx\n"
        f"loop = {factory}()\n"
        "with warnings.catch_warnings():\n"
        "    warnings.simplefilter('ignore', DeprecationWarning)\n"
        "    asyncio.set_event_loop(loop)\n"
        "a, b = socket.socketpair()\n"
        "a.setblocking(False)\n"
        "keep = [a, b]\n"
        "async def main():\n"
        f"    {_PENDING_AT_EXIT[pending]}\n"
        "    await asyncio.sleep(0.01)\n"
        "loop.run_until_complete(main())\n"
        "print('started', flush=True)\n")
    assert "started" in out


def test_private_run_once_runs_one_iteration(loop):
    # asyncio's private stepping method: test helpers and outer event loops
    # (3.13's _run_forever_setup/_run_forever_cleanup hooks) call it.
    calls = []
    loop.call_soon(calls.append, "first")
    loop.call_soon(lambda: loop.call_soon(calls.append, "next iteration"))
    loop._run_once()
    assert calls == ["first"]
    loop._run_once()
    assert calls == ["first", "next iteration"]
    loop.call_later(0.01, calls.append, "timer")
    loop._run_once()  # waits for the timer, as asyncio's does
    assert calls[-1] == "timer"


def test_outer_loop_drives_iterations_between_setup_and_cleanup(loop, impl):
    if not hasattr(loop, "_run_forever_setup"):
        pytest.skip("asyncio has the integration hooks from 3.13 only")
    seen = []

    async def inside():
        seen.append(asyncio.get_running_loop())

    task = loop.create_task(inside())
    loop._run_forever_setup()
    try:
        while not task.done():
            loop._run_once()
    finally:
        loop._run_forever_cleanup()
    assert seen == [loop]
    assert not loop.is_running()
    assert asyncio._get_running_loop() is None


@helpers.only("loopx")
def test_private_run_once_on_a_closed_loop_raises(loop):
    """asyncio's fails on its missing selector (AttributeError); loopx says why."""
    loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        loop._run_once()


def test_close_leaves_no_new_objects_on_the_loop(loop):
    # Memory-leak checks (grpclib's) diff gc.get_objects() around a run and
    # close() of a warmed-up loop: closing must not allocate what it keeps.
    async def step():
        await asyncio.sleep(0)

    loop.run_until_complete(step())
    gc.collect()
    gc.disable()
    try:
        before = {id(o) for o in gc.get_objects()}
        loop.run_until_complete(step())
        loop.close()
        new = [o for o in gc.get_objects() if id(o) not in before and o is not before]
        held = [o for o in new if any(r is loop for r in gc.get_referrers(o))]
    finally:
        gc.enable()
    assert held == []
