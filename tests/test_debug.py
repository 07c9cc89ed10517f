"""Debug mode: switches, environment, slow callbacks, thread checks, tracebacks."""
import logging
import sys
import time
import traceback

import pytest

import helpers

DEBUG_PROBE = """
import {module}
loop = {factory}()
print(loop.get_debug())
loop.close()
"""

FACTORIES = {"asyncio": ("asyncio", "asyncio.SelectorEventLoop"), "loopx": ("loopx", "loopx.new_event_loop")}


def _debug_in_subprocess(impl, *args, env=None):
    module, factory = FACTORIES[impl]
    if impl == "loopx":
        helpers.import_loopx()  # fail here, clearly, if loopx is not importable
    out = helpers.python_subprocess(DEBUG_PROBE.format(module=module, factory=factory), *args, env=env)
    return out.strip()


def test_set_debug_and_get_debug(loop):
    assert loop.get_debug() is helpers.DEBUG_BY_DEFAULT
    loop.set_debug(True)
    assert loop.get_debug() is True
    loop.set_debug(False)
    assert loop.get_debug() is False


def test_debug_off_by_default_in_a_clean_environment(impl):
    assert _debug_in_subprocess(impl) == "False"


def test_pythonasynciodebug_turns_debug_on(impl):
    assert _debug_in_subprocess(impl, env={"PYTHONASYNCIODEBUG": "1"}) == "True"


def test_dev_mode_turns_debug_on(impl):
    assert _debug_in_subprocess(impl, "-X", "dev") == "True"


def test_ignore_environment_disables_pythonasynciodebug(impl):
    assert _debug_in_subprocess(impl, "-E", env={"PYTHONASYNCIODEBUG": "1"}) == "False"


def test_slow_callback_is_logged(loop, caplog):
    caplog.set_level(logging.WARNING, logger="asyncio")
    loop.set_debug(True)
    loop.slow_callback_duration = 0.05

    def slow():
        time.sleep(0.12)

    loop.call_soon(slow)
    helpers.run_once(loop)
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio" and r.levelno == logging.WARNING]
    slow_logs = [m for m in messages if m.startswith("Executing") and "took" in m and "seconds" in m]
    assert slow_logs, f"no slow-callback warning among {messages!r}"
    assert "slow" in slow_logs[0]


def test_fast_callback_is_not_logged_as_slow(loop, caplog):
    caplog.set_level(logging.WARNING, logger="asyncio")
    loop.set_debug(True)
    loop.slow_callback_duration = 10.0
    loop.call_soon(lambda: None)
    helpers.run_once(loop)
    assert not [r for r in caplog.records if r.name == "asyncio" and "took" in r.getMessage()]


def test_slow_callback_not_logged_without_debug(loop, caplog):
    caplog.set_level(logging.WARNING, logger="asyncio")
    loop.set_debug(False)
    loop.slow_callback_duration = 0.01
    loop.call_soon(time.sleep, 0.05)
    helpers.run_once(loop)
    assert not [r for r in caplog.records if r.name == "asyncio" and "took" in r.getMessage()]


def test_slow_callback_duration_default(loop):
    assert loop.slow_callback_duration == 0.1


def _call_from_executor_thread(loop, fn):
    async def main():
        return await loop.run_in_executor(None, helpers.raised_by, fn)

    return helpers.run(loop, main())


def test_call_soon_from_the_wrong_thread_in_debug_mode(loop):
    loop.set_debug(True)
    error = _call_from_executor_thread(loop, lambda: loop.call_soon(lambda: None))
    assert isinstance(error, RuntimeError)
    assert "thread" in str(error)


def test_call_later_from_the_wrong_thread_in_debug_mode(loop):
    loop.set_debug(True)
    error = _call_from_executor_thread(loop, lambda: loop.call_later(1, lambda: None))
    assert isinstance(error, RuntimeError)


def test_call_soon_threadsafe_from_another_thread_is_fine_in_debug_mode(loop):
    loop.set_debug(True)
    ran = []
    error = _call_from_executor_thread(loop, lambda: loop.call_soon_threadsafe(ran.append, 1))
    assert error is None
    helpers.run_once(loop)
    assert ran == [1]


def test_call_soon_from_another_thread_when_not_running_is_allowed(loop):
    """The thread check only applies while the loop runs (in some thread)."""
    loop.set_debug(True)
    ran = []
    helpers.call_in_thread(lambda: loop.call_soon(ran.append, 1))
    helpers.run_once(loop)
    assert ran == [1]


def _format_frames(source_traceback):
    return "".join(traceback.format_list(source_traceback))


def scheduling_function_with_a_unique_name(loop, callback):
    return loop.call_soon(callback)


def test_failing_callback_context_has_source_traceback_in_debug(loop):
    loop.set_debug(True)
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def fails():
        raise ValueError("debug me")

    scheduling_function_with_a_unique_name(loop, fails)
    helpers.run_once(loop)
    assert len(contexts) == 1
    assert "source_traceback" in contexts[0]
    text = _format_frames(contexts[0]["source_traceback"])
    assert "scheduling_function_with_a_unique_name" in text
    assert __file__ in text


def test_source_traceback_in_the_default_handler_log(loop, caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")
    loop.set_debug(True)

    def fails():
        raise ValueError("debug me")

    scheduling_function_with_a_unique_name(loop, fails)
    helpers.run_once(loop)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "asyncio")
    assert "created at" in text
    assert "scheduling_function_with_a_unique_name" in text


def test_no_source_traceback_without_debug(loop):
    loop.set_debug(False)
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def fails():
        raise ValueError

    loop.call_soon(fails)
    helpers.run_once(loop)
    assert "source_traceback" not in contexts[0]


def test_coroutine_origin_tracking_while_running_in_debug(loop):
    before = sys.get_coroutine_origin_tracking_depth()
    loop.set_debug(True)
    inside = []
    loop.call_soon(lambda: inside.append(sys.get_coroutine_origin_tracking_depth()))
    helpers.run_once(loop)
    assert inside[0] > 0
    assert sys.get_coroutine_origin_tracking_depth() == before


def test_debug_mode_rejects_coroutine_functions_everywhere(loop):
    loop.set_debug(True)

    async def coro_fn():
        pass

    for call in (
        lambda: loop.call_soon(coro_fn),
        lambda: loop.call_later(0, coro_fn),
        lambda: loop.call_at(loop.time(), coro_fn),
        lambda: loop.call_soon_threadsafe(coro_fn),
    ):
        with pytest.raises(TypeError):
            call()


def test_slow_callback_warning_goes_through_a_patched_base_events_logger(loop):
    from unittest import mock
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01
    loop.call_soon(time.sleep, 0.05)
    with mock.patch("asyncio.base_events.logger") as m_log:
        helpers.run_once(loop)
    messages = [c.args[0] % c.args[1:] for c in m_log.warning.call_args_list]
    assert any(m.startswith("Executing") and "took" in m for m in messages), messages
