"""Per-thread loop semantics (the policy layer) and the ways to run loopx."""
import asyncio
import contextvars
import threading
import warnings

import pytest

import helpers


def _policy_class(impl):
    if impl == "asyncio":
        with helpers.quiet_policy_warnings():
            return asyncio.DefaultEventLoopPolicy
    return helpers.import_loopx().EventLoopPolicy


def _loop_class(impl):
    return asyncio.SelectorEventLoop if impl == "asyncio" else helpers.import_loopx().Loop


@pytest.fixture
def policy(impl, policy_guard):
    """A fresh policy of the implementation under test, installed."""
    fresh = _policy_class(impl)()
    with helpers.quiet_policy_warnings():
        asyncio.set_event_loop_policy(fresh)
    return fresh


def _in_thread(fn):
    return helpers.call_in_thread(fn)


def test_new_event_loop_through_the_policy(policy, impl):
    loops = [asyncio.new_event_loop() for _ in range(2)]
    try:
        assert all(isinstance(lp, _loop_class(impl)) for lp in loops)
        assert loops[0] is not loops[1]
    finally:
        for lp in loops:
            lp.close()


def test_thread_without_a_loop_has_none(policy):
    def probe():
        with pytest.raises(RuntimeError):
            asyncio.get_event_loop()
        with pytest.raises(RuntimeError):
            policy.get_event_loop()
        return True

    assert _in_thread(probe)


def test_set_event_loop_in_a_thread(policy, impl):
    def body():
        loop = asyncio.new_event_loop()
        try:
            asyncio.set_event_loop(loop)
            first = asyncio.get_event_loop()
            second = asyncio.get_event_loop()
            via_policy = policy.get_event_loop()
            asyncio.set_event_loop(None)
            return loop, first, second, via_policy
        finally:
            loop.close()

    loop, first, second, via_policy = _in_thread(body)
    assert first is loop and second is loop and via_policy is loop
    assert isinstance(loop, _loop_class(impl))


def test_loops_are_per_thread(policy):
    barrier = threading.Barrier(3)
    results = {}

    def worker(name):
        loop = asyncio.new_event_loop()
        try:
            asyncio.set_event_loop(loop)
            barrier.wait(helpers.SAFETY)  # all threads have set their loop
            results[name] = (loop, [asyncio.get_event_loop() for _ in range(5)])
            barrier.wait(helpers.SAFETY)
            asyncio.set_event_loop(None)
        finally:
            loop.close()

    def bystander():
        barrier.wait(helpers.SAFETY)
        try:
            asyncio.get_event_loop()
        except RuntimeError:
            results["bystander"] = "no loop"
        barrier.wait(helpers.SAFETY)

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    threads.append(threading.Thread(target=bystander))
    for t in threads:
        t.start()
    for t in threads:
        t.join(helpers.SAFETY)
    assert results["bystander"] == "no loop"
    for name in ("a", "b"):
        loop, seen = results[name]
        assert all(s is loop for s in seen)
    assert results["a"][0] is not results["b"][0]


def test_get_event_loop_inside_a_running_loop_returns_it(policy):
    def body():
        loop = asyncio.new_event_loop()
        try:
            async def main():
                return asyncio.get_event_loop(), asyncio.get_running_loop()

            seen = loop.run_until_complete(main())
            return loop, seen
        finally:
            loop.close()

    loop, (got, running) = _in_thread(body)
    assert got is loop and running is loop


def _main_thread_get_event_loop():
    """What asyncio.get_event_loop() does in the main thread with no loop set,
    under the installed policy: (exception type, warning types, loop)."""
    assert threading.current_thread() is threading.main_thread()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            loop = asyncio.get_event_loop()
            error = None
        except Exception as exc:
            loop, error = None, type(exc)
    categories = sorted({w.category.__name__ for w in caught})
    if loop is not None:
        again = asyncio.get_event_loop()
        assert again is loop, "get_event_loop() must return the same loop every time"
        asyncio.set_event_loop(None)
        loop.close()
    return error, categories, loop


@helpers.only("loopx")
def test_main_thread_without_a_loop_follows_this_python(impl, policy_guard):
    """3.11 creates a loop, 3.12/3.13 create one with a DeprecationWarning,
    3.14+ raise RuntimeError: whatever asyncio's own policy does here."""
    loopx = helpers.import_loopx()
    with helpers.quiet_policy_warnings():
        asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    ref_error, ref_warnings, ref_loop = _main_thread_get_event_loop()
    with helpers.quiet_policy_warnings():
        asyncio.set_event_loop_policy(loopx.EventLoopPolicy())
    error, categories, loop = _main_thread_get_event_loop()
    assert (error, categories) == (ref_error, ref_warnings)
    assert (loop is None) == (ref_loop is None)
    if loop is not None:
        assert isinstance(loop, loopx.Loop)


def test_main_thread_after_set_event_loop_none(policy):
    asyncio.set_event_loop(None)
    with pytest.raises(RuntimeError):
        asyncio.get_event_loop()


def test_main_thread_set_event_loop(policy, impl):
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a set loop is returned silently
            assert asyncio.get_event_loop() is loop
            assert asyncio.get_event_loop() is loop
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def test_set_event_loop_rejects_non_loops(policy):
    with pytest.raises(TypeError):
        asyncio.set_event_loop(object())


@pytest.mark.skipif(helpers.PY314, reason="child watchers were removed in Python 3.14")
def test_child_watcher_api_like_asyncio(policy):
    """3.11-3.13 code still calls asyncio.get_child_watcher() (deprecated in
    3.12): under the policy it must give a watcher, as asyncio's does."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        watcher = asyncio.get_child_watcher()
        assert isinstance(watcher, asyncio.AbstractChildWatcher)
        assert policy.get_child_watcher() is watcher


# -- running loopx ------------------------------------------------------------

async def _describe_running_loop():
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0)
    return loop, loop.get_debug(), asyncio.current_task() is not None


@helpers.only("loopx")
def test_loopx_run(impl):
    loopx = helpers.import_loopx()
    loop, debug, in_task = loopx.run(_describe_running_loop())
    assert isinstance(loop, loopx.Loop)
    assert debug is helpers.DEBUG_BY_DEFAULT
    assert in_task
    assert loop.is_closed()


@helpers.only("loopx")
def test_loopx_run_debug(impl):
    loopx = helpers.import_loopx()
    _, debug, _ = loopx.run(_describe_running_loop(), debug=True)
    assert debug is True


@helpers.only("loopx")
def test_loopx_run_propagates_exceptions(impl):
    loopx = helpers.import_loopx()

    async def fails():
        raise ArithmeticError("from main")

    with pytest.raises(ArithmeticError, match="from main"):
        loopx.run(fails())


@helpers.only("loopx")
def test_loopx_run_does_not_set_a_current_loop(impl, policy_guard):
    loopx = helpers.import_loopx()
    with helpers.quiet_policy_warnings():
        asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    asyncio.set_event_loop(None)
    loopx.run(_describe_running_loop())
    with pytest.raises(RuntimeError):
        asyncio.get_event_loop()


def test_run_inside_a_running_loop_is_refused(loop, impl):
    """loopx.run, like asyncio.run, refuses to nest in a running loop."""
    run = asyncio.run if impl == "asyncio" else helpers.import_loopx().run

    async def main():
        coro = asyncio.sleep(0)
        try:
            with pytest.raises(RuntimeError):
                run(coro)
        finally:
            coro.close()

    helpers.run(loop, main())


@helpers.only("loopx")
def test_loopx_run_finalizes_asyncgens_and_the_executor(impl):
    loopx = helpers.import_loopx()
    log = []
    kept = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            log.append("agen closed")

    async def main():
        gen = agen()
        await gen.__anext__()
        kept.append(gen)
        loop = asyncio.get_running_loop()
        name = await loop.run_in_executor(None, lambda: threading.current_thread().name)
        return name

    worker_name = loopx.run(main())
    assert log == ["agen closed"]
    leftover = [t for t in threading.enumerate() if t.name == worker_name]
    assert not leftover, "the default executor was not shut down"


@pytest.mark.skipif(not helpers.PY312, reason="asyncio.run(loop_factory=) is new in Python 3.12")
def test_asyncio_run_with_loop_factory(new_loop, impl):
    loop, _, _ = asyncio.run(_describe_running_loop(), loop_factory=new_loop)
    assert isinstance(loop, _loop_class(impl))
    assert loop.is_closed()


def test_runner_with_loop_factory(new_loop, impl):
    with asyncio.Runner(loop_factory=new_loop) as runner:
        first, _, _ = runner.run(_describe_running_loop())
        second, _, _ = runner.run(_describe_running_loop())
        assert runner.get_loop() is first is second
        assert isinstance(first, _loop_class(impl))
    assert first.is_closed()


def test_runner_with_loop_factory_and_context(new_loop):
    var = contextvars.ContextVar("runner_var", default="unset")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "ctx")

    async def main():
        return var.get()

    with asyncio.Runner(loop_factory=new_loop) as runner:
        assert runner.run(main(), context=ctx) == "ctx"


@helpers.only("loopx")
def test_install(impl, policy_guard):
    loopx = helpers.import_loopx()
    if helpers.PY314:
        with pytest.warns(DeprecationWarning):
            loopx.install()
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loopx.install()
    with helpers.quiet_policy_warnings():
        assert isinstance(asyncio.get_event_loop_policy(), loopx.EventLoopPolicy)
    loop = asyncio.new_event_loop()
    try:
        assert isinstance(loop, loopx.Loop)
    finally:
        loop.close()
    ran_on, _, _ = asyncio.run(_describe_running_loop())
    assert isinstance(ran_on, loopx.Loop)


@helpers.only("loopx")
def test_policy_repr_and_type(impl):
    loopx = helpers.import_loopx()
    policy = loopx.EventLoopPolicy()
    assert isinstance(policy, asyncio.AbstractEventLoopPolicy)
    assert "loopx" in repr(policy)
