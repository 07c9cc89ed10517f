"""create_future, create_task and task factories."""
import asyncio
import contextvars
import gc
import weakref

import pytest

import helpers

var = contextvars.ContextVar("task_var", default="unset")


def test_create_future_belongs_to_the_loop(loop):
    fut = loop.create_future()
    assert isinstance(fut, asyncio.Future)
    assert fut.get_loop() is loop
    assert not fut.done()
    loop.call_soon(fut.set_result, 3)
    assert loop.run_until_complete(fut) == 3


def test_create_future_belongs_to_its_loop_while_another_runs(new_loop):
    # loopx makes a future without loop= when its loop is the running one;
    # a future of a loop that is not running must still be that loop's.
    running, other = new_loop(), new_loop()

    async def main():
        here, there = running.create_future(), other.create_future()
        return here.get_loop(), there.get_loop()

    assert running.run_until_complete(main()) == (running, other)


def test_create_future_with_the_pure_python_running_loop_functions(loop, monkeypatch):
    # Tests swap asyncio.events' C functions for the pure-Python ones, which
    # keep the running loop where the C Future does not look.
    from asyncio import events
    for name in ("_get_running_loop", "_set_running_loop", "get_running_loop", "get_event_loop"):
        monkeypatch.setattr(events, name, getattr(events, "_py_" + name))
        monkeypatch.setattr(asyncio, name, getattr(events, "_py_" + name), raising=False)

    async def main():
        fut = loop.create_future()
        loop.call_soon(fut.set_result, fut.get_loop())
        return await fut

    assert loop.run_until_complete(main()) is loop


def test_create_task_returns_an_asyncio_task(loop):
    async def main():
        return asyncio.current_task()

    task = loop.create_task(main())
    assert isinstance(task, asyncio.Task)
    assert task.get_loop() is loop
    assert loop.run_until_complete(task) is task


def test_create_task_name(loop):
    async def main():
        return asyncio.current_task().get_name()

    task = loop.create_task(main(), name="the-name")
    assert task.get_name() == "the-name"
    assert loop.run_until_complete(task) == "the-name"
    unnamed = loop.create_task(main())
    assert unnamed.get_name().startswith("Task-")
    loop.run_until_complete(unnamed)


def test_create_task_context(loop):
    ctx = contextvars.copy_context()
    ctx.run(var.set, "from-ctx")

    async def main():
        seen = var.get()
        var.set("set-in-task")
        return seen

    task = loop.create_task(main(), context=ctx)
    assert loop.run_until_complete(task) == "from-ctx"
    assert ctx[var] == "set-in-task"
    assert var.get() == "unset"


def test_create_task_rejects_non_coroutines(loop):
    with pytest.raises(TypeError):
        loop.create_task(lambda: None)
    with pytest.raises(TypeError):
        loop.create_task(42)


def test_all_tasks_and_current_task_see_the_loop(loop):
    async def child(ev):
        await ev.wait()

    async def main():
        ev = asyncio.Event()
        t = asyncio.ensure_future(child(ev))
        await asyncio.sleep(0)
        tasks = asyncio.all_tasks()
        current = asyncio.current_task()
        ev.set()
        await t
        return tasks, current, t

    tasks, current, child_task = helpers.run(loop, main())
    assert child_task in tasks
    assert current in tasks
    assert current.get_loop() is loop
    assert asyncio.all_tasks(loop) == set()


def test_task_factory_get_and_set(loop):
    assert loop.get_task_factory() is None
    made = []

    def factory(loop_arg, coro, **kwargs):
        task = asyncio.Task(coro, loop=loop_arg, **kwargs)
        made.append((loop_arg, task))
        return task

    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory

    async def main():
        return 5

    task = loop.create_task(main(), name="via-factory")
    assert made == [(loop, task)]
    assert task.get_name() == "via-factory"
    assert loop.run_until_complete(task) == 5
    loop.set_task_factory(None)
    assert loop.get_task_factory() is None
    plain = loop.create_task(main())
    assert len(made) == 1
    loop.run_until_complete(plain)


def test_task_factory_used_by_run_until_complete_and_ensure_future(loop):
    made = []

    class MyTask(asyncio.Task):
        pass

    def factory(loop_arg, coro, **kwargs):
        task = MyTask(coro, loop=loop_arg, **kwargs)
        made.append(task)
        return task

    loop.set_task_factory(factory)

    async def inner():
        return "inner"

    async def main():
        return await asyncio.ensure_future(inner())

    assert loop.run_until_complete(main()) == "inner"
    assert len(made) == 2
    assert all(isinstance(t, MyTask) for t in made)


def test_task_factory_receives_context(loop):
    ctx = contextvars.copy_context()
    ctx.run(var.set, "factory-ctx")
    received = []

    def factory(loop_arg, coro, **kwargs):
        received.append(kwargs.get("context"))
        return asyncio.Task(coro, loop=loop_arg, **kwargs)

    loop.set_task_factory(factory)

    async def main():
        return var.get()

    assert loop.run_until_complete(loop.create_task(main(), context=ctx)) == "factory-ctx"
    assert received == [ctx]


def test_invalid_task_factory(loop):
    with pytest.raises(TypeError):
        loop.set_task_factory(42)
    with pytest.raises(TypeError):
        loop.set_task_factory("not callable")
    assert loop.get_task_factory() is None


@pytest.mark.skipif(not helpers.PY312, reason="asyncio.eager_task_factory is new in Python 3.12")
def test_eager_task_factory_finishes_inside_create_task(loop):
    loop.set_task_factory(asyncio.eager_task_factory)
    steps = []

    async def quick():
        steps.append("quick ran")
        return "eager"

    async def blocking():
        steps.append("blocking started")
        await asyncio.sleep(0)
        steps.append("blocking resumed")
        return "later"

    async def main():
        t1 = loop.create_task(quick())
        assert t1.done() and t1.result() == "eager"
        assert steps == ["quick ran"]
        t2 = loop.create_task(blocking())
        assert steps == ["quick ran", "blocking started"]
        assert not t2.done()
        return await t2

    assert helpers.run(loop, main()) == "later"
    assert steps[-1] == "blocking resumed"


def test_unretrieved_task_exception_reaches_the_exception_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def fails():
        raise ZeroDivisionError

    task = loop.create_task(fails())
    helpers.run_once(loop)
    assert task.done()
    del task
    gc.collect()
    assert len(contexts) == 1
    assert contexts[0]["message"] == "Task exception was never retrieved"
    assert isinstance(contexts[0]["exception"], ZeroDivisionError)


def test_cancel_a_pending_task(loop):
    started = []

    async def sleeper():
        started.append(True)
        await asyncio.sleep(3600)

    async def main():
        task = asyncio.ensure_future(sleeper())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task

    task = helpers.run(loop, main())
    assert started == [True]
    assert task.cancelled()


def test_gather_many_tasks(loop):
    async def work(i):
        await asyncio.sleep(0)
        return i * i

    async def main():
        return await asyncio.gather(*(work(i) for i in range(2000)))

    assert helpers.run(loop, main()) == [i * i for i in range(2000)]


def test_a_loop_that_ran_is_freed_by_its_last_reference(impl):
    # No reference cycle through the loop outlives a run (loopx keeps one
    # while running, for create_future and create_task), so dropping a
    # closed loop frees it at once, without the cyclic garbage collector.
    loop = helpers.loop_factory(impl)()

    async def main():
        await asyncio.sleep(0)
        return loop.create_future().get_loop()

    assert loop.run_until_complete(main()) is loop
    loop.close()
    gc.collect()
    gc.disable()
    try:
        ref = weakref.ref(loop)
        del loop
        assert ref() is None
    finally:
        gc.enable()
