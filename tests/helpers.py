"""Shared helpers for the loop-core unit tests (one module; never copy these).

Timing rules for this suite, which must stay deterministic on a loaded 2-core
machine: assert only "not early" and "woke within LONG seconds" where LONG is
far above any sane latency; every run of a loop is bounded by a safety timer
so that a broken loop fails a test instead of hanging the suite.
"""
import asyncio
import contextlib
import functools
import gc
import hashlib
import importlib
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings

import pytest

IMPLS = ("asyncio", "loopx")

# "Promptly" in this suite: generous enough for a noisy CI machine, small
# enough that a loop which never wakes (and sits until its safety timer, or
# forever) is told apart from one that does.
PROMPT = 5.0
# Upper bound for any single loop run in a test; a safety timer stops the loop
# there so a broken implementation fails instead of hanging.
SAFETY = 30.0

# hypothesis examples per property test: the default, times this factor
# (LOOPX_EXAMPLES_SCALE=30 for a long soak of the model-based tests).
EXAMPLES_SCALE = int(os.environ.get("LOOPX_EXAMPLES_SCALE", "1"))


def examples(default):
    return default * EXAMPLES_SCALE


# What a new loop's get_debug() starts as, by asyncio's rule: on under
# `-X dev` (as the debug CI job runs) or PYTHONASYNCIODEBUG.
DEBUG_BY_DEFAULT = bool(sys.flags.dev_mode or (
    not sys.flags.ignore_environment and os.environ.get("PYTHONASYNCIODEBUG")))

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PY312 = sys.version_info >= (3, 12)
PY314 = sys.version_info >= (3, 14)

# On Windows both loops under test are proactor loops: asyncio's
# ProactorEventLoop, and loopx.Loop, the same class over loopx's IOCP
# proactor.  What asyncio's Windows loop does not have (add_reader, signal
# handlers, AF_UNIX, fd-based pipes) is skipped there, saying so.
WINDOWS = sys.platform == "win32"


def windows_skip(reason):
    """Mark a test as not applicable on Windows, for ``reason``."""
    return pytest.mark.skipif(WINDOWS, reason=f"not on Windows: {reason}")


def skip_module_on_windows(reason):
    """Call at a test module's top, before any POSIX-only name is used."""
    if WINDOWS:
        pytest.skip(f"not on Windows: {reason}", allow_module_level=True)


def only(*impls):
    """Decorator: run a test on the given implementations only.

    Use it where asyncio's own behaviour is unspecified or weaker than what
    loopx promises (say so in the test's docstring).
    """
    return pytest.mark.parametrize("impl", impls)


def import_loopx():
    """Import loopx; an ImportError propagates (tests must error, not skip)."""
    return importlib.import_module("loopx")


def loop_factory(impl):
    """Return a zero-argument callable creating a new loop of ``impl``."""
    if impl == "asyncio":
        # The standard loop on this platform: what asyncio.new_event_loop()
        # returns under the default policy, built directly so that a policy
        # left installed by a test cannot change it.
        return asyncio.ProactorEventLoop if WINDOWS else asyncio.SelectorEventLoop
    if impl == "loopx":
        return import_loopx().new_event_loop
    raise ValueError(f"unknown loop implementation {impl!r}")


def open_fds():
    """Map each fd open in this process to what it points at.

    Empty on Windows, which has no /proc (sockets there are handles, not
    CRT fds, anyway): the leak checks are Linux's."""
    fds = {}
    if WINDOWS:
        return fds
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the directory handle listdir used, already closed
            pass
    return fds


# -- running loops -----------------------------------------------------------

def run(loop, awaitable, timeout=SAFETY):
    """run_until_complete(awaitable) bounded by ``timeout`` seconds."""
    return loop.run_until_complete(asyncio.wait_for(awaitable, timeout))


def run_forever(loop, timeout=SAFETY):
    """loop.run_forever(), stopped by a safety timer after ``timeout`` seconds.

    Returns True if something else stopped the loop, False if the safety
    timer had to.
    """
    tripped = []

    def trip():
        tripped.append(True)
        loop.stop()

    safety = loop.call_later(timeout, trip)
    try:
        loop.run_forever()
    finally:
        safety.cancel()
    return not tripped


async def async_wait_until(predicate, timeout=SAFETY):
    """Let the running loop run until predicate() holds (fails after timeout)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.005)


def run_once(loop):
    """Run exactly one iteration: the callbacks ready now, and no later ones."""
    loop.call_soon(loop.stop)
    loop.run_forever()


def elapsed(fn, *args):
    """Call fn(*args) and return (result, seconds it took)."""
    start = time.monotonic()
    result = fn(*args)
    return result, time.monotonic() - start


@contextlib.contextmanager
def running_in_thread(loop):
    """Run ``loop.run_forever()`` in a thread for the duration of the block.

    Yields once the loop is running; on exit stops it (thread-safely), joins
    the thread and re-raises whatever run_forever raised.
    """
    started = threading.Event()
    errors = []

    def target():
        loop.call_soon(started.set)
        try:
            loop.run_forever()
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)
            started.set()

    thread = threading.Thread(target=target, name="loop-under-test", daemon=True)
    thread.start()
    assert started.wait(SAFETY), "loop did not start in its thread"
    try:
        yield thread
    finally:
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(SAFETY)
        assert not thread.is_alive(), "loop thread did not stop"
    if errors:
        raise errors[0]


def call_in_thread(fn, *args):
    """Run fn(*args) in a new thread; return its result or raise its exception."""
    outcome = {}

    def target():
        try:
            outcome["result"] = fn(*args)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(SAFETY)
    assert not thread.is_alive(), f"{fn!r} did not finish in its thread"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def raised_by(fn, *args, **kwargs):
    """Return the exception fn(*args, **kwargs) raises, or None."""
    try:
        fn(*args, **kwargs)
    except Exception as exc:
        return exc
    return None


def asyncio_has_gh130145():
    """True if this Python's asyncio has CPython bug gh-130145: a refused
    run_forever() (loop already running, or closed) resets the state of the
    loop that *is* running (3.13.0 and others; fixed upstream in 2025)."""
    loop = asyncio.SelectorEventLoop()
    seen = []

    def probe():
        try:
            loop.run_forever()
        except RuntimeError:
            pass
        seen.append(loop.is_running())

    try:
        loop.call_soon(probe)
        run_once(loop)
    finally:
        loop.close()
    return seen != [True]


def skip_asyncio_with_gh130145(impl):
    if impl == "asyncio" and asyncio_has_gh130145():
        pytest.skip("this Python's asyncio has gh-130145 (a refused run_forever "
                    "resets the running loop); loopx must not")


class Payload:
    """An object for a weak reference to watch (to check it gets released)."""


def released(ref):
    """True once the object behind weak reference ``ref`` has been freed."""
    gc.collect()
    return ref() is None


# -- sockets and files -------------------------------------------------------

def socketpair(family=None, type=socket.SOCK_STREAM):
    """A connected non-blocking socket pair (close both: use ``with``);
    AF_UNIX by default, AF_INET where there is none (Windows)."""
    if family is None:
        family = getattr(socket, "AF_UNIX", socket.AF_INET)
    a, b = socket.socketpair(family, type)
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def tcp_listener(host="127.0.0.1", backlog=16):
    """A non-blocking TCP socket listening on an ephemeral loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def udp_socket(host="127.0.0.1"):
    """A non-blocking UDP socket bound to an ephemeral loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


def nonblocking_tcp(host="127.0.0.1"):
    """A fresh non-blocking, unconnected TCP socket."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    return sock


@functools.cache
def tls_contexts():
    """(server, client) ssl contexts for "localhost", with a throwaway CA of
    trustme's that the client trusts (one pair per process)."""
    import trustme
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def pattern_bytes(size, seed=0):
    """Deterministic pseudo-random payload of ``size`` bytes."""
    return hashlib.shake_256(f"loopx-{seed}".encode()).digest(size)


async def tcp_pair(loop):
    """A connected pair of non-blocking loopback TCP sockets (client, server),
    made with the loop's own sock_connect and sock_accept."""
    with tcp_listener() as listener:
        client = nonblocking_tcp()
        try:
            accepted, _ = await asyncio.gather(
                loop.sock_accept(listener), loop.sock_connect(client, listener.getsockname())
            )
        except BaseException:
            client.close()
            raise
    server, _ = accepted
    return client, server


async def read_exactly(loop, sock, size):
    """sock_recv until ``size`` bytes or EOF; return what arrived."""
    chunks = []
    remaining = size
    while remaining:
        chunk = await loop.sock_recv(sock, min(remaining, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


# -- subprocesses and policies -----------------------------------------------

def python_subprocess(code, *args, env=None):
    """Run ``python args -c code`` with the repo importable; return stdout.

    ``env`` entries are added to (or, with value None, removed from) a copy
    of this process's environment.
    """
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (REPO_ROOT, full_env.get("PYTHONPATH")) if p
    )
    for key in ("PYTHONASYNCIODEBUG", "PYTHONDEVMODE"):
        full_env.pop(key, None)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    proc = subprocess.run(
        [sys.executable, *args, "-c", code],
        env=full_env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@contextlib.contextmanager
def quiet_policy_warnings():
    """Silence the DeprecationWarnings 3.14+ emits for the policy system."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


# -- transports -----------------------------------------------------------------

def is_loopx(loop):
    return type(loop).__module__.startswith("loopx")


def collect_errors(loop):
    """Route the loop's exception handler into a list, which is returned."""
    errors = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    return errors


class Recorder:
    """A protocol for any transport that records every call it gets, in order.

    ``events`` holds (name, args) tuples; ``lost`` is a future resolved with
    connection_lost's argument; ``changed`` is set (and replaced) on every
    call so tests can wait for "something more happened".
    """

    def __init__(self, loop):
        self.loop = loop
        self.transport = None
        self.events = []
        self.lost = loop.create_future()
        self.changed = asyncio.Event()

    def _note(self, name, *args):
        self.events.append((name, args))
        self.changed.set()

    def names(self):
        return [name for name, _ in self.events]

    def data(self):
        """Everything data_received got, joined."""
        return b"".join(args[0] for name, args in self.events if name == "data_received")

    def datagrams(self):
        return [args for name, args in self.events if name == "datagram_received"]

    async def wait_for(self, predicate, timeout=SAFETY):
        """Wait until predicate(self) is true (checked after every call)."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self.changed.clear()
                await self.changed.wait()

    def connection_made(self, transport):
        self.transport = transport
        self._note("connection_made")

    def connection_lost(self, exc):
        self._note("connection_lost", exc)
        if self.lost.done():
            raise AssertionError("connection_lost called twice")
        self.lost.set_result(exc)

    def data_received(self, data):
        self._note("data_received", data)

    def eof_received(self):
        self._note("eof_received")

    def datagram_received(self, data, addr):
        self._note("datagram_received", data, addr)

    def error_received(self, exc):
        self._note("error_received", exc)

    def pause_writing(self):
        self._note("pause_writing", self.transport.get_write_buffer_size())

    def resume_writing(self):
        self._note("resume_writing", self.transport.get_write_buffer_size())


def resource_warnings_when_collected(held):
    """Empty the list ``held`` (the test's only references to some objects),
    collect garbage, and return the ResourceWarning messages that produced."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        held.clear()
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
