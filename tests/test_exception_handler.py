"""Exception handler API and what happens when callbacks raise."""
import contextvars
import logging

import pytest

import helpers


class Boom(Exception):
    pass


def boom():
    raise Boom("from a callback")


def test_default_handler_is_none(loop):
    assert loop.get_exception_handler() is None


def test_set_and_get_exception_handler(loop):
    def handler(lp, ctx):
        pass

    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    loop.set_exception_handler(None)
    assert loop.get_exception_handler() is None


def test_set_exception_handler_rejects_non_callables(loop):
    with pytest.raises(TypeError):
        loop.set_exception_handler(42)
    with pytest.raises(TypeError):
        loop.set_exception_handler("handler")
    assert loop.get_exception_handler() is None


def test_raising_callback_goes_to_the_handler_with_asyncio_keys(loop):
    calls = []
    loop.set_exception_handler(lambda lp, ctx: calls.append((lp, ctx)))
    handle = loop.call_soon(boom)
    ran_after = []
    loop.call_soon(ran_after.append, "next")
    helpers.run_once(loop)
    assert ran_after == ["next"], "an exception in one callback stopped the others"
    assert len(calls) == 1
    lp, ctx = calls[0]
    assert lp is loop
    assert ctx["message"].startswith("Exception in callback")
    assert isinstance(ctx["exception"], Boom)
    assert ctx["handle"] is handle


def test_raising_timer_goes_to_the_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    timer = loop.call_later(0.001, boom)
    loop.call_later(0.01, loop.stop)
    assert helpers.run_forever(loop)
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], Boom)
    assert contexts[0]["handle"] is timer


def test_default_handler_logs_to_the_asyncio_logger(loop, caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")
    loop.call_soon(boom)
    helpers.run_once(loop)
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert "Exception in callback" in records[0].getMessage()
    assert records[0].exc_info and records[0].exc_info[0] is Boom


def test_default_exception_handler_called_directly(loop, caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")
    try:
        raise Boom("direct")
    except Boom as exc:
        loop.default_exception_handler({"message": "custom message", "exception": exc, "extra_key": "xyz"})
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1
    text = records[0].getMessage()
    assert "custom message" in text
    assert "extra_key" in text and "xyz" in text
    assert records[0].exc_info[1].args == ("direct",)


def test_call_exception_handler_without_a_custom_handler_logs(loop, caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")
    loop.call_exception_handler({"message": "just a message"})
    assert any("just a message" in r.getMessage() for r in caplog.records if r.name == "asyncio")


def test_handler_that_raises_is_logged_not_propagated(loop, caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")

    def bad_handler(lp, ctx):
        raise RuntimeError("handler failed")

    loop.set_exception_handler(bad_handler)
    loop.call_exception_handler({"message": "original"})
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert any("Unhandled error in exception handler" in m for m in messages)
    # And through a failing callback the loop keeps running.
    ran = []
    loop.call_soon(boom)
    loop.call_soon(ran.append, "after")
    helpers.run_once(loop)
    assert ran == ["after"]


def test_handler_is_called_while_the_loop_runs(loop):
    seen = []

    def handler(lp, ctx):
        seen.append(lp.is_running())

    loop.set_exception_handler(handler)
    loop.call_soon(boom)
    helpers.run_once(loop)
    assert seen == [True]


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_propagate_out_of_run_forever(loop, exc_type):
    handled = []
    loop.set_exception_handler(lambda lp, ctx: handled.append(ctx))

    def raiser():
        raise exc_type()

    loop.call_soon(raiser)
    with pytest.raises(exc_type):
        helpers.run_forever(loop)
    assert handled == []
    assert not loop.is_running()


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_from_a_timer_propagate(loop, exc_type):
    def raiser():
        raise exc_type()

    loop.call_later(0.001, raiser)
    with pytest.raises(exc_type):
        helpers.run_forever(loop)
    assert not loop.is_running()


def test_base_exception_from_the_handler_propagates(loop):
    def handler(lp, ctx):
        raise KeyboardInterrupt

    loop.set_exception_handler(handler)
    with pytest.raises(KeyboardInterrupt):
        loop.call_exception_handler({"message": "x"})


@pytest.mark.skipif(not helpers.PY312, reason="3.12+ runs the handler in the failing handle's context")
def test_handler_runs_in_the_context_of_the_failing_handle(loop):
    var = contextvars.ContextVar("handler_var", default="unset")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "handle-context")
    seen = []
    loop.set_exception_handler(lambda lp, c: seen.append(var.get()))
    loop.call_soon(boom, context=ctx)
    helpers.run_once(loop)
    assert seen == ["handle-context"]


def test_reports_go_through_asyncio_base_events_logger_as_patched(loop):
    # asyncio's loop logs through the module global asyncio.base_events.logger;
    # test suites capture reports by patching it (CPython's own do), so the
    # report must reach whatever that global is at the time.
    from unittest import mock
    with mock.patch("asyncio.base_events.logger") as m_log:
        loop.call_soon(boom)
        helpers.run_once(loop)
    assert m_log.error.call_count == 1
    message = m_log.error.call_args.args[0]
    assert message.startswith("Exception in callback")
    assert m_log.error.call_args.kwargs["exc_info"][0] is Boom
