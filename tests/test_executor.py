"""run_in_executor, set_default_executor, shutdown_default_executor."""
import asyncio
import concurrent.futures
import sys
import threading
import warnings

import pytest

import helpers


def test_run_in_default_executor(loop):
    async def main():
        return await loop.run_in_executor(None, lambda a, b: (a + b, threading.get_ident()), 2, 3)

    (total, ident) = helpers.run(loop, main())
    assert total == 5
    assert ident != threading.get_ident()


def test_run_in_executor_returns_an_asyncio_future(loop):
    async def main():
        fut = loop.run_in_executor(None, lambda: "x")
        assert isinstance(fut, asyncio.Future)
        assert fut.get_loop() is loop
        return await fut

    assert helpers.run(loop, main()) == "x"


def test_run_in_executor_propagates_exceptions(loop):
    def fails():
        raise LookupError("in executor")

    async def main():
        with pytest.raises(LookupError, match="in executor"):
            await loop.run_in_executor(None, fails)

    helpers.run(loop, main())


def test_run_in_a_given_executor(loop):
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="given-pool") as pool:

        async def main():
            return await loop.run_in_executor(pool, lambda: threading.current_thread().name)

        assert helpers.run(loop, main()).startswith("given-pool")


def test_many_jobs_in_the_default_executor(loop):
    async def main():
        return await asyncio.gather(*(loop.run_in_executor(None, pow, i, 2) for i in range(200)))

    assert helpers.run(loop, main()) == [i * i for i in range(200)]


def test_set_default_executor(loop):
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="default-pool") as pool:
        loop.set_default_executor(pool)

        async def main():
            return await loop.run_in_executor(None, lambda: threading.current_thread().name)

        assert helpers.run(loop, main()).startswith("default-pool")


class NotAThreadPool(concurrent.futures.Executor):
    def submit(self, fn, *args, **kwargs):
        fut = concurrent.futures.Future()
        fut.set_result(fn(*args, **kwargs))
        return fut


def test_set_default_executor_requires_a_thread_pool(loop):
    # Python 3.11 made this a TypeError (it was a DeprecationWarning before).
    with pytest.raises(TypeError):
        loop.set_default_executor(NotAThreadPool())


def test_shutdown_default_executor_waits_for_running_jobs(loop):
    finished = []
    release = threading.Event()

    def job():
        release.wait(helpers.SAFETY)
        finished.append(True)

    async def main():
        fut = loop.run_in_executor(None, job)
        loop.call_later(0.05, release.set)
        await loop.shutdown_default_executor()
        assert finished == [True]
        assert fut.done() or await fut is None

    helpers.run(loop, main())


def test_run_in_default_executor_after_shutdown(loop):
    async def main():
        await loop.run_in_executor(None, lambda: None)
        await loop.shutdown_default_executor()
        with pytest.raises(RuntimeError):
            loop.run_in_executor(None, lambda: None)

    helpers.run(loop, main())


def test_shutdown_default_executor_without_an_executor(loop):
    helpers.run(loop, loop.shutdown_default_executor())


@pytest.mark.skipif(
    sys.version_info < (3, 12, 3),
    reason="shutdown_default_executor(timeout=) is new in 3.12 and was only honoured "
    "while waiting from 3.12.3 on (gh-111358)",
)
def test_shutdown_default_executor_timeout(loop):
    release = threading.Event()

    async def main():
        loop.run_in_executor(None, release.wait, helpers.SAFETY)
        await asyncio.sleep(0.01)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await loop.shutdown_default_executor(timeout=0.1)
        return caught

    try:
        caught, took = helpers.elapsed(helpers.run, loop, main())
    finally:
        release.set()
    assert took < helpers.PROMPT + 0.1
    assert any(issubclass(w.category, RuntimeWarning) for w in caught), [str(w.message) for w in caught]


def test_close_shuts_down_the_default_executor(loop):
    names = []

    async def main():
        await loop.run_in_executor(None, lambda: names.append(threading.current_thread().name))

    helpers.run(loop, main())
    worker_threads = [t for t in threading.enumerate() if t.name == names[0]]
    loop.close()
    for t in worker_threads:
        t.join(helpers.SAFETY)
        assert not t.is_alive()


def test_run_in_executor_rejects_coroutine_functions_in_debug(loop):
    loop.set_debug(True)

    async def coro_fn():
        pass

    with pytest.raises(TypeError):
        loop.run_in_executor(None, coro_fn)
