"""Bad arguments: refused with the right exception; the loop stays usable.

The scheduling methods validate their callback in debug mode only, on both
loops; outside it a callback that cannot be called fails when it runs,
through the exception handler.
"""
import asyncio
import logging
import math
import warnings

import pytest

import helpers


async def a_coroutine_function():
    pass


SCHEDULERS = {
    "call_soon": lambda loop, cb: loop.call_soon(cb),
    "call_later": lambda loop, cb: loop.call_later(0.001, cb),
    "call_at": lambda loop, cb: loop.call_at(loop.time(), cb),
    "call_soon_threadsafe": lambda loop, cb: loop.call_soon_threadsafe(cb),
}


def _still_works(loop):
    ran = []
    loop.call_soon(ran.append, "ok")
    loop.call_later(0.001, ran.append, "timer")
    loop.call_later(0.01, loop.stop)
    assert helpers.run_forever(loop)
    assert ran == ["ok", "timer"]


@pytest.mark.parametrize("method", sorted(SCHEDULERS))
def test_coroutine_object_is_refused_in_debug_mode(loop, method):
    loop.set_debug(True)
    coro = a_coroutine_function()
    try:
        with pytest.raises(TypeError):
            SCHEDULERS[method](loop, coro)
    finally:
        coro.close()
    _still_works(loop)


@pytest.mark.parametrize("method", sorted(SCHEDULERS))
@pytest.mark.parametrize("bad", [None, 42, "callback", object()], ids=["None", "int", "str", "object"])
def test_non_callable_is_refused_in_debug_mode(loop, method, bad):
    loop.set_debug(True)
    with pytest.raises(TypeError):
        SCHEDULERS[method](loop, bad)
    _still_works(loop)


@pytest.mark.parametrize("method", sorted(SCHEDULERS))
def test_outside_debug_mode_a_non_callable_fails_when_it_runs(loop, method):
    """Sanic's tests schedule a Task (call_later(0.01, task)): asyncio takes
    it, and reports the TypeError through the exception handler when the
    time comes; the program goes on."""
    loop.set_debug(False)   # (-X dev turns it on)
    errors = helpers.collect_errors(loop)

    async def noop():
        pass

    task = loop.create_task(noop())
    handle = SCHEDULERS[method](loop, task)
    _still_works(loop)
    assert [type(e.get("exception")) for e in errors] == [TypeError]
    assert errors[0]["message"].startswith("Exception in callback")
    assert errors[0]["handle"] is handle


@pytest.mark.parametrize("method", sorted(SCHEDULERS))
def test_outside_debug_mode_a_coroutine_function_is_called(loop, method):
    """asyncio calls it like any callable: the coroutine it returns is never
    awaited (a RuntimeWarning), and nothing else happens."""
    loop.set_debug(False)   # (-X dev turns it on)
    errors = helpers.collect_errors(loop)

    async def coroutine_function():
        pass

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        SCHEDULERS[method](loop, coroutine_function)
        _still_works(loop)
    assert any("never awaited" in str(w.message) for w in caught)
    assert errors == []


@pytest.mark.parametrize("method", sorted(SCHEDULERS))
def test_coroutine_function_is_refused_in_debug_mode(loop, method):
    loop.set_debug(True)
    with pytest.raises(TypeError):
        SCHEDULERS[method](loop, a_coroutine_function)


def test_run_in_executor_non_callable_in_debug_mode(loop):
    loop.set_debug(True)
    with pytest.raises(TypeError):
        loop.run_in_executor(None, 42)


def test_unknown_keyword_arguments(loop):
    with pytest.raises(TypeError):
        loop.call_soon(lambda **kw: None, x=1)
    with pytest.raises(TypeError):
        loop.call_later(0, lambda **kw: None, x=1)
    with pytest.raises(TypeError):
        loop.call_at(0, lambda **kw: None, x=1)
    with pytest.raises(TypeError):
        loop.call_soon_threadsafe(lambda **kw: None, x=1)
    _still_works(loop)


def test_missing_arguments(loop):
    with pytest.raises(TypeError):
        loop.call_soon()
    with pytest.raises(TypeError):
        loop.call_later(1)
    with pytest.raises(TypeError):
        loop.call_at()


def test_too_big_integer_delay(loop):
    with pytest.raises(OverflowError):
        loop.call_later(10**400, lambda: None)
    _still_works(loop)


def test_infinite_delay_is_accepted_and_never_fires(loop):
    fired = []
    handle = loop.call_later(math.inf, fired.append, "inf")
    assert handle.when() == math.inf
    _, took = helpers.elapsed(_still_works, loop)
    assert took < helpers.PROMPT
    assert fired == []
    handle.cancel()


def test_minus_infinite_delay_fires_at_once(loop):
    fired = []
    loop.call_later(-math.inf, fired.append, "-inf")
    helpers.run_once(loop)
    assert fired == ["-inf"]


def test_run_until_complete_with_garbage(loop):
    for bad in (None, 1, "coroutine", [asyncio.sleep]):
        with pytest.raises(TypeError):
            loop.run_until_complete(bad)
    _still_works(loop)


def test_exception_handler_garbage(loop):
    with pytest.raises(TypeError):
        loop.set_exception_handler(1)
    with pytest.raises(TypeError):
        loop.set_task_factory(1)
    _still_works(loop)


def test_call_exception_handler_with_an_empty_context(loop, caplog):
    """No 'message' key: asyncio's default handler copes; so must loopx."""
    caplog.set_level(logging.ERROR, logger="asyncio")
    loop.call_exception_handler({})
    _still_works(loop)
