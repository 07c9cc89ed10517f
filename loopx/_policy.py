"""Per-thread loop semantics on top of the native loop.

The rules for "which loop does this thread get" differ between Python versions
(3.11 creates one in the main thread, 3.12/3.13 warn, 3.14 raises and deprecates
policies altogether).  Rather than re-deriving each version's rules we inherit
the running interpreter's own base policy, so ``get_event_loop`` behaves exactly
as it does with the standard loop; only the loop factory changes.
"""
import asyncio
import inspect
import sys
import warnings

if sys.platform == "win32":
    # asyncio's proactor loop over loopx's IOCP proactor (loopx/_windows.py).
    from ._windows import Loop, _BasePolicy
else:
    from ._loop import Loop as _NativeLoop

    _Base = asyncio.base_events.BaseEventLoop
    _Unix = asyncio.unix_events._UnixSelectorEventLoop

    class _Borrowed:
        """A method of asyncio's own loop class, looked up there whenever it
        is used: a test that patches ``asyncio.BaseEventLoop.create_connection``
        (asyncssh's do) patches loopx's as well, as it would a subclass's."""

        __slots__ = ("_owner", "_name")

        def __init__(self, owner):
            self._owner = owner

        def __set_name__(self, cls, name):
            self._name = name

        def __get__(self, obj, objtype=None):
            func = getattr(self._owner, self._name)
            bind = getattr(type(func), "__get__", None)
            return func if obj is None or bind is None else bind(func, obj, objtype)

    class Loop(_NativeLoop, asyncio.AbstractEventLoop):
        """The loopx event loop.

        The native base class implements the loop, its handles, the poller and
        the transports; ``AbstractEventLoop`` is a base so that libraries checking
        ``isinstance(loop, AbstractEventLoop)`` accept it.

        Setting up connections and servers (resolving, happy eyeballs, socket
        options, the Server object, sendfile's choice of path) is cold code
        whose arguments and details change with every Python version.  We run the
        running interpreter's own asyncio implementation of it, unchanged, over
        loopx's native transports: that way every version's exact semantics come
        for free, and only the per-byte work is ours.  It needs from us the
        private hooks the standard loops give it (_make_socket_transport,
        _make_ssl_transport, _start_serving, _stop_serving, _sendfile_native,
        _sendfile_fallback, sock_connect, ...), all native.  start_tls() is
        loopx's own, as it makes the (native) TLS layer itself.
        """

        create_connection = _Borrowed(_Base)
        _connect_sock = _Borrowed(_Base)
        _create_connection_transport = _Borrowed(_Base)
        _ensure_resolved = _Borrowed(_Base)
        create_server = _Borrowed(_Base)
        _create_server_getaddrinfo = _Borrowed(_Base)
        connect_accepted_socket = _Borrowed(_Base)
        sendfile = _Borrowed(_Base)
        create_unix_connection = _Borrowed(_Unix)
        subprocess_exec = _Borrowed(_Base)
        subprocess_shell = _Borrowed(_Base)
        _log_subprocess = _Borrowed(_Base)
        create_unix_server = _Borrowed(_Unix)
        create_datagram_endpoint = _Borrowed(_Base)
        connect_read_pipe = _Borrowed(_Base)
        connect_write_pipe = _Borrowed(_Base)

        # asyncio's loop keeps its callbacks and timers in these, and code
        # reads them: diagnostics (len), test helpers (``handle in
        # loop._scheduled``, walking the timers).  loopx's queue and heap are
        # native, so these are snapshots, as tuples: code that changes
        # asyncio's (popleft, heappush) fails loudly, not silently.
        @property
        def _ready(self):
            return self._ready_handles()

        @property
        def _scheduled(self):
            return self._scheduled_handles()

    def _mark_coroutine_methods(native, model):
        """Make the native methods that return a coroutine, where asyncio's
        are ``async def``, coroutine functions to ``inspect`` and
        ``asyncio.iscoroutinefunction`` as well (so, for one, mocks made with
        ``autospec`` await them, as aiohttp's tests do with ``start_tls``)."""
        asyncio_mark = getattr(asyncio.coroutines, "_is_coroutine", None)
        for name, func in vars(native).items():
            if (callable(func) and not inspect.iscoroutinefunction(func)
                    and inspect.iscoroutinefunction(getattr(model, name, None))):
                if hasattr(inspect, "markcoroutinefunction"):   # 3.12+
                    inspect.markcoroutinefunction(func)
                if asyncio_mark is not None:   # what asyncio's own check looks for
                    func._is_coroutine = asyncio_mark

    _mark_coroutine_methods(_NativeLoop, _Unix)

    # The standard Unix policy, so that everything a policy offers on this Python
    # (get_child_watcher on 3.11-3.13, ...) behaves as asyncio's; 3.14 renamed the
    # classes with a leading underscore while deprecating the policy system.
    _BasePolicy = (getattr(asyncio.unix_events, "_UnixDefaultEventLoopPolicy", None)
                   or getattr(asyncio.events, "_BaseDefaultEventLoopPolicy", None)
                   or asyncio.events.BaseDefaultEventLoopPolicy)


def new_event_loop():
    """Return a new loopx event loop."""
    return Loop()


class EventLoopPolicy(_BasePolicy):
    """An asyncio event loop policy whose loops are loopx loops."""

    def _loop_factory(self):
        return Loop()

    def __repr__(self):
        return f"<{type(self).__name__} loopx>"


def install():
    """Make loopx the loop that asyncio creates from now on (policy style).

    Python 3.14 deprecates the policy system; there this warns like
    ``asyncio.set_event_loop_policy`` does.  Prefer ``loopx.run`` or
    ``asyncio.run(..., loop_factory=loopx.new_event_loop)``.
    """
    if sys.version_info >= (3, 14):
        warnings.warn(
            "loopx.install() uses the asyncio policy system, deprecated since "
            "Python 3.14; use loopx.run() or asyncio.run(..., "
            "loop_factory=loopx.new_event_loop) instead",
            DeprecationWarning,
            stacklevel=2,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_event_loop_policy(EventLoopPolicy())
    else:
        asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main, *, debug=None):
    """Run coroutine ``main`` on a new loopx loop and return its result.

    Behaves like ``asyncio.run``: the loop is created, the coroutine runs to
    completion, async generators and the default executor are shut down and the
    loop is closed.
    """
    with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)
