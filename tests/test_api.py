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


_ASYNC_PUBLIC_METHODS = [name for name in PUBLIC_METHODS
                         if inspect.iscoroutinefunction(getattr(asyncio.BaseEventLoop, name, None))]


@pytest.mark.parametrize("name", _ASYNC_PUBLIC_METHODS)
def test_coroutine_methods_are_coroutine_functions(loop, name):
    """What asyncio defines with async def is a coroutine function to
    asyncio's check, and to inspect's where the Python can be told (3.12+)."""
    method = getattr(loop, name)
    assert asyncio.iscoroutinefunction(method)
    assert asyncio.iscoroutinefunction(getattr(type(loop), name))
    if hasattr(inspect, "markcoroutinefunction"):
        assert inspect.iscoroutinefunction(method)


def test_an_autospec_mock_of_start_tls_is_awaitable(loop):
    # aiohttp's tests patch loop.start_tls this way and await the mock.
    from unittest import mock
    with mock.patch.object(loop, "start_tls", autospec=True) as patched:
        patched.return_value = "upgraded"
        assert helpers.run(loop, loop.start_tls(None, None, None)) == "upgraded"


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


# loopx's native transports against the asyncio transports they stand in for.
TRANSPORT_MODELS = [
    ("SocketTransport", "selector_events", "_SelectorSocketTransport"),
    ("DatagramTransport", "selector_events", "_SelectorDatagramTransport"),
    ("ReadPipeTransport", "unix_events", "_UnixReadPipeTransport"),
    ("WritePipeTransport", "unix_events", "_UnixWritePipeTransport"),
]


@helpers.windows_skip("these are the selector loop's transports")
@pytest.mark.parametrize("name, module, model", TRANSPORT_MODELS)
def test_native_transport_has_every_public_method_of_its_asyncio_model(name, module, model):
    import importlib
    native = getattr(helpers.import_loopx()._loop, name)
    model = getattr(importlib.import_module("asyncio." + module), model)
    public = {m for cls in model.__mro__ if cls is not object for m in vars(cls)
              if not m.startswith("_") and callable(getattr(model, m))}
    assert sorted(m for m in public if not hasattr(native, m)) == []


@helpers.windows_skip("write pipes are POSIX")
def test_stream_methods_a_transport_lacks_raise_not_implemented(loop):
    """What asyncio's transports inherit as stubs raises NotImplementedError
    on both loops: reading on a write pipe, stream writes on a datagram
    transport."""
    import os

    async def main():
        r, w = os.pipe()
        pipe, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(w, "wb"))
        dgram, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                       local_addr=("127.0.0.1", 0))
        calls = [(pipe.is_reading, ()), (pipe.pause_reading, ()), (pipe.resume_reading, ()),
                 (dgram.write, (b"x",)), (dgram.writelines, ([b"x"],)),
                 (dgram.write_eof, ()), (dgram.can_write_eof, ())]
        for method, args in calls:
            with pytest.raises(NotImplementedError):
                method(*args)
        pipe.close()
        dgram.close()
        await asyncio.sleep(0)
        os.close(r)
    helpers.run(loop, main())


def test_private_state_code_reads_is_there(loop):
    """loop._closed, transport._closing and transport._paused: asyncio's own
    fields, which libraries and uvloop's tests read (loopx's are read-only)."""
    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        transport, _ = await loop.create_connection(asyncio.Protocol, *server.sockets[0].getsockname())
        assert transport._closing is False and transport._paused is False
        transport.pause_reading()
        assert transport._paused is True
        transport.close()
        assert transport._closing is True
        server.close()
        await server.wait_closed()
    assert loop._closed is False
    helpers.run(loop, main())
    loop.close()
    assert loop._closed is True


def test_clearing_stopping_after_a_stop_lets_the_next_run_finish(loop):
    """Sanic's shutdown: after stop() (here, before any run), it sets
    loop._stopping = False so that its next run_until_complete() runs the
    shutdown coroutine to the end instead of stopping after one iteration."""
    async def two_steps():
        await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        return "finished"

    assert loop._stopping is False
    loop.stop()
    assert loop._stopping is True
    loop._stopping = False
    assert loop.run_until_complete(two_steps()) == "finished"
    # Without clearing it, the run stops after its first iteration.
    loop.stop()
    with pytest.raises(RuntimeError, match="stopped before Future completed"):
        loop.run_until_complete(two_steps())
    assert loop._stopping is False   # each run resets it when it ends


@helpers.windows_skip("the Windows loop is asyncio's proactor loop itself")
def test_patching_asyncio_s_base_loop_reaches_the_borrowed_methods(loop, monkeypatch):
    """loopx runs asyncio's own create_connection & co.; a test that patches
    them on asyncio.BaseEventLoop (asyncssh's do) patches loopx's too."""
    calls = []

    async def fake_create_connection(self, *args, **kwargs):
        calls.append((self, args))
        return "patched"

    monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", fake_create_connection)

    async def main():
        return await loop.create_connection(asyncio.Protocol, "example.invalid", 1)

    assert helpers.run(loop, main()) == "patched"
    assert calls == [(loop, (asyncio.Protocol, "example.invalid", 1))]
    monkeypatch.undo()
    assert type(loop).create_connection is asyncio.BaseEventLoop.create_connection
