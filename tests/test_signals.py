"""add_signal_handler / remove_signal_handler, and signals waking the loop."""
import asyncio
import os
import signal
import threading
import time

import pytest

import helpers

helpers.skip_module_on_windows(
    "add_signal_handler and POSIX signals: asyncio's Windows loop has neither")

USED = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT, signal.SIGWINCH)


@pytest.fixture(autouse=True)
def restore_signals():
    """Put back every handler (and the wakeup fd) a test may have changed.

    Tests assert what the loop restores; this only keeps a failing test from
    breaking the tests after it.
    """
    saved = {sig: signal.getsignal(sig) for sig in USED}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    signal.set_wakeup_fd(-1)


def kill_later(sig, delay):
    """Send ``sig`` to this process from a thread after ``delay`` seconds."""
    thread = threading.Thread(target=lambda: (time.sleep(delay), os.kill(os.getpid(), sig)))
    thread.start()
    return thread


def test_signal_is_delivered_as_a_callback(loop):
    got = []

    def handler(*args):
        got.append((args, loop.is_running(), threading.current_thread() is threading.main_thread()))
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, handler, "arg1", 2)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    assert helpers.run_forever(loop)
    assert got == [(("arg1", 2), True, True)]
    assert loop.remove_signal_handler(signal.SIGUSR1) is True


def test_several_signals(loop):
    got = []

    def handler(name):
        got.append(name)
        if len(got) == 3:
            loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, handler, "usr1")
    loop.add_signal_handler(signal.SIGUSR2, handler, "usr2")
    loop.add_signal_handler(signal.SIGWINCH, handler, "winch")

    def send_all():
        for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH):
            os.kill(os.getpid(), sig)

    loop.call_soon(send_all)
    assert helpers.run_forever(loop)
    assert sorted(got) == ["usr1", "usr2", "winch"]


def test_each_delivery_of_a_signal_runs_the_handler(loop):
    got = []
    loop.add_signal_handler(signal.SIGUSR1, got.append, "x")

    def first():
        os.kill(os.getpid(), signal.SIGUSR1)
        loop.call_later(0.05, second)

    def second():
        os.kill(os.getpid(), signal.SIGUSR1)
        loop.call_later(0.05, loop.stop)

    loop.call_soon(first)
    assert helpers.run_forever(loop)
    assert got == ["x", "x"]


def test_replacing_a_signal_handler(loop):
    got = []
    loop.add_signal_handler(signal.SIGUSR1, got.append, "old")
    loop.add_signal_handler(signal.SIGUSR1, lambda: (got.append("new"), loop.stop()))
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    assert helpers.run_forever(loop)
    assert got == ["new"]


def test_remove_signal_handler_return_values_and_restored_disposition(loop):
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    assert signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN, None)
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def test_removed_handler_is_not_called(loop):
    got = []
    loop.add_signal_handler(signal.SIGUSR1, got.append, "removed")
    loop.add_signal_handler(signal.SIGUSR2, got.append, "kept")
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    signal.signal(signal.SIGUSR1, lambda *a: None)  # keep the process alive
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR2)
    loop.call_later(0.05, loop.stop)
    assert helpers.run_forever(loop)
    assert got == ["kept"]


def test_sigint_handler_and_restore(loop):
    got = []
    loop.add_signal_handler(signal.SIGINT, lambda: (got.append("sigint"), loop.stop()))
    loop.call_soon(os.kill, os.getpid(), signal.SIGINT)
    assert helpers.run_forever(loop)  # no KeyboardInterrupt: the handler took it
    assert got == ["sigint"]
    assert loop.remove_signal_handler(signal.SIGINT) is True
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_close_removes_signal_handlers(loop):
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    loop.add_signal_handler(signal.SIGUSR2, lambda: None)
    loop.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL


def test_invalid_signal_numbers(loop):
    with pytest.raises(ValueError):
        loop.add_signal_handler(0, lambda: None)
    with pytest.raises(ValueError):
        loop.add_signal_handler(100_000, lambda: None)
    with pytest.raises(ValueError):
        loop.remove_signal_handler(100_000)
    with pytest.raises(TypeError):
        loop.add_signal_handler("SIGUSR1", lambda: None)
    with pytest.raises(TypeError):
        loop.remove_signal_handler(None)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["SIGKILL", "SIGSTOP"])
def test_uncatchable_signals(loop, sig):
    with pytest.raises(RuntimeError):
        loop.add_signal_handler(sig, lambda: None)
    assert loop.remove_signal_handler(sig) is False


def test_coroutine_function_handler_is_rejected(loop):
    async def handler():
        pass

    with pytest.raises(TypeError):
        loop.add_signal_handler(signal.SIGUSR1, handler)
    coro = handler()
    try:
        with pytest.raises(TypeError):
            loop.add_signal_handler(signal.SIGUSR1, coro)
    finally:
        coro.close()
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def test_add_signal_handler_from_a_non_main_thread(loop):
    with pytest.raises(RuntimeError):
        helpers.call_in_thread(loop.add_signal_handler, signal.SIGUSR1, lambda: None)
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def test_add_signal_handler_on_a_closed_loop(loop):
    loop.close()
    with pytest.raises(RuntimeError):
        loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_signal_wakes_a_loop_in_a_long_poll(loop):
    woke = []
    loop.add_signal_handler(signal.SIGUSR1, lambda: (woke.append(time.monotonic()), loop.stop()))
    far = loop.call_later(3600, lambda: None)
    start = time.monotonic()
    thread = kill_later(signal.SIGUSR1, 0.2)
    try:
        stopped = helpers.run_forever(loop)
    finally:
        thread.join(helpers.SAFETY)
    assert stopped, "the signal did not wake the loop"
    assert woke[0] - start < helpers.PROMPT
    far.cancel()


def test_ctrl_c_interrupts_a_loop_blocked_in_poll(loop):
    """With no SIGINT handler on the loop, SIGINT raises KeyboardInterrupt
    out of run_forever promptly, not when the next timer fires."""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    far = loop.call_later(3600, lambda: None)
    start = time.monotonic()
    thread = kill_later(signal.SIGINT, 0.2)
    try:
        with pytest.raises(KeyboardInterrupt):
            helpers.run_forever(loop)
    finally:
        thread.join(helpers.SAFETY)
    assert time.monotonic() - start < helpers.PROMPT
    assert not loop.is_running()
    far.cancel()


def test_ctrl_c_cancels_the_main_task_of_a_runner(new_loop):
    """asyncio.Runner turns SIGINT into cancelling the main task, then raises
    KeyboardInterrupt; this needs the loop to wake up for the signal."""
    cancelled = []

    async def main():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    thread = kill_later(signal.SIGINT, 0.2)
    start = time.monotonic()
    try:
        with asyncio.Runner(loop_factory=new_loop) as runner:
            with pytest.raises(KeyboardInterrupt):
                runner.run(main())
    finally:
        thread.join(helpers.SAFETY)
    assert cancelled == [True]
    assert time.monotonic() - start < helpers.PROMPT


def test_signal_sent_before_the_loop_runs_is_delivered_when_it_runs(loop):
    got = []
    loop.add_signal_handler(signal.SIGUSR1, got.append, "early")
    os.kill(os.getpid(), signal.SIGUSR1)
    assert got == []
    loop.call_later(0.05, loop.stop)
    assert helpers.run_forever(loop)
    assert got == ["early"]


def test_raising_signal_handler_goes_to_the_exception_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def bad():
        raise LookupError("from a signal handler")

    loop.add_signal_handler(signal.SIGUSR1, bad)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    loop.call_later(0.05, loop.stop)
    assert helpers.run_forever(loop)
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], LookupError)
    assert "handle" in contexts[0]


def test_handler_can_remove_itself(loop):
    got = []

    def once():
        got.append("once")
        assert loop.remove_signal_handler(signal.SIGUSR1) is True
        signal.signal(signal.SIGUSR1, lambda *a: got.append("python-level"))

    loop.add_signal_handler(signal.SIGUSR1, once)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    loop.call_later(0.05, os.kill, os.getpid(), signal.SIGUSR1)
    loop.call_later(0.1, loop.stop)
    assert helpers.run_forever(loop)
    assert got == ["once", "python-level"]


def test_signal_storm_is_delivered_and_coalesced_sanely(loop):
    got = []
    loop.add_signal_handler(signal.SIGUSR1, got.append, 1)

    def storm():
        for _ in range(200):
            os.kill(os.getpid(), signal.SIGUSR1)

    loop.call_soon(storm)
    loop.call_later(0.1, loop.stop)
    assert helpers.run_forever(loop)
    assert 1 <= len(got) <= 200
