"""The loop's public surface: every AbstractEventLoop method, callable the
same way as asyncio's (parameter names, kinds and defaults)."""
import asyncio
import inspect

import pytest

import helpers

PUBLIC_METHODS = sorted(
    name for name, value in vars(asyncio.AbstractEventLoop).items()
    if not name.startswith("_") and callable(value)
)


def test_loop_is_an_abstract_event_loop(loop):
    assert isinstance(loop, asyncio.AbstractEventLoop)


def _parameters(fn):
    """(name, kind, default) of each parameter, without 'self'."""
    params = list(inspect.signature(fn).parameters.values())
    if params and params[0].name == "self":
        params = params[1:]
    return [(p.name, p.kind, p.default) for p in params]


@pytest.mark.parametrize("name", PUBLIC_METHODS)
def test_method_is_implemented_with_asyncio_signature(loop, name):
    """Implemented (not AbstractEventLoop's NotImplementedError stub), and
    callable the way asyncio's loop is: same parameter names, kinds, defaults."""
    reference = helpers.loop_factory("asyncio")  # this platform's standard loop
    if getattr(reference, name) is getattr(asyncio.AbstractEventLoop, name):
        pytest.skip(f"{reference.__name__} has no {name} either (add_reader, "
                    "signal handlers, unix sockets on Windows)")
    method = getattr(type(loop), name)
    stub = method is getattr(asyncio.AbstractEventLoop, name)
    assert not stub, f"{type(loop).__name__}.{name} is AbstractEventLoop's NotImplementedError stub"
    assert _parameters(method) == _parameters(getattr(reference, name))


def test_slow_callback_duration_is_settable(loop):
    loop.slow_callback_duration = 0.25
    assert loop.slow_callback_duration == 0.25


def test_repr_tells_the_state(loop):
    text = repr(loop)
    assert "running=False" in text and "closed=False" in text
    loop.close()
    assert "closed=True" in repr(loop)


def test_the_poller_is_the_one_for_this_platform():
    """epoll on Linux, kqueue on macOS/BSD; scripts/test_kqueue_emu.sh builds
    the kqueue poller on Linux and says so through LOOPX_EXPECT_POLLER."""
    import os
    import sys

    from loopx import _loop

    expected = os.environ.get("LOOPX_EXPECT_POLLER")
    if expected is None:
        expected = "epoll" if sys.platform.startswith("linux") else "kqueue"
    assert _loop.POLLER == expected
