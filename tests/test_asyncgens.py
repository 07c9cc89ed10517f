"""Async generator hooks: finalization while running, shutdown_asyncgens."""
import asyncio
import gc
import sys
import warnings

import helpers


def make_agen(log, name):
    async def agen():
        try:
            for i in range(100):
                yield i
        finally:
            # An await in the finalizer proves it runs as a task on the loop.
            await asyncio.sleep(0)
            log.append(name)

    return agen()


def test_dropped_async_generator_is_finalized_on_the_loop(loop):
    log = []

    async def main():
        gen = make_agen(log, "dropped")
        assert await gen.__anext__() == 0
        del gen
        gc.collect()
        for _ in range(10):
            await asyncio.sleep(0)
            if log:
                break
        return list(log)

    assert helpers.run(loop, main()) == ["dropped"]


def test_async_generator_run_to_completion_needs_no_finalizer(loop):
    async def agen():
        yield 1
        yield 2

    async def main():
        return [x async for x in agen()]

    assert helpers.run(loop, main()) == [1, 2]


def test_shutdown_asyncgens_closes_pending_generators(loop):
    log = []
    kept = []

    async def main():
        for name in ("a", "b", "c"):
            gen = make_agen(log, name)
            await gen.__anext__()
            kept.append(gen)
        await loop.shutdown_asyncgens()
        return sorted(log)

    assert helpers.run(loop, main()) == ["a", "b", "c"]
    for gen in kept:
        assert gen.ag_frame is None  # closed


def test_shutdown_asyncgens_reports_errors_to_the_exception_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def bad():
        try:
            yield 1
        finally:
            raise ValueError("error while closing")

    async def main():
        gen = bad()
        await gen.__anext__()
        await loop.shutdown_asyncgens()
        return gen

    helpers.run(loop, main())
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], ValueError)
    assert "asyncgen" in contexts[0]


def test_first_iteration_after_shutdown_asyncgens_warns(loop):
    async def agen():
        yield 1

    async def main():
        await loop.shutdown_asyncgens()
        gen = agen()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await gen.__anext__()
        await gen.aclose()
        return caught

    caught = helpers.run(loop, main())
    assert any(issubclass(w.category, ResourceWarning) for w in caught)


def test_shutdown_asyncgens_with_nothing_pending(loop):
    helpers.run(loop, loop.shutdown_asyncgens())


def test_hooks_are_installed_only_while_running(loop):
    before = sys.get_asyncgen_hooks()
    seen = []

    async def main():
        seen.append(sys.get_asyncgen_hooks())

    helpers.run(loop, main())
    assert seen[0].firstiter is not None
    assert seen[0].finalizer is not None
    assert sys.get_asyncgen_hooks() == before
