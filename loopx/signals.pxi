# Unix signal handlers through Python's wakeup fd.  Included into _loop.pyx.
#
# Python's C-level signal handler writes each signal number into the wakeup
# fd (our socketpair's write end) and flags the signal for the Python-level
# handler, which we set to a no-op.  The poller sees the read end readable and
# the loop runs the registered handler as an ordinary callback.  A signal that
# interrupts the poll also gets PyErr_CheckSignals() there, so Ctrl-C with no
# handler of ours raises KeyboardInterrupt immediately.


def _sighandler_noop(signum, frame):
    """Python-level handler for signals the loop handles: nothing to do."""


cdef _check_signal(sig):
    if not isinstance(sig, int):
        raise TypeError(f"sig must be an int, not {sig!r}")
    if sig not in signal.valid_signals():
        raise ValueError(f"invalid signal number {sig}")


cdef _ensure_signal_socket(Loop loop):
    if loop._sig_rsock is not None:
        return
    rsock, wsock = socket.socketpair()
    rsock.setblocking(False)
    wsock.setblocking(False)
    if lx_poller_modify(&loop._poller, rsock.fileno(), 0, LX_READ) < 0:
        err = errno
        rsock.close()
        wsock.close()
        raise _os_error(err)
    loop._sig_rsock = rsock
    loop._sig_wsock = wsock
    loop._sig_rfd = rsock.fileno()


cdef _reset_wakeup_fd():
    try:
        signal.set_wakeup_fd(-1)
    except (ValueError, OSError) as exc:
        logger.info("set_wakeup_fd(-1) failed: %s", exc)


cdef _add_signal_handler(Loop loop, sig, callback, tuple args):
    if coroutines.iscoroutine(callback) or coroutines.iscoroutinefunction(callback):
        raise TypeError("coroutines cannot be used with add_signal_handler()")
    _check_signal(sig)
    loop._check_closed()
    loop._check_callback(callback, "add_signal_handler")
    _ensure_signal_socket(loop)
    try:
        # Raises ValueError outside the main thread.
        signal.set_wakeup_fd(loop._sig_wsock.fileno())
    except (ValueError, OSError) as exc:
        raise RuntimeError(str(exc))
    handle = new_handle_from_tuple(loop, callback, args, PyContext_CopyCurrent())
    lx_owned_share(<PyObject *>handle)   # kept in a dict, not privately (owned.h)
    loop._signal_handlers[sig] = handle
    try:
        signal.signal(sig, _sighandler_noop)
        # Don't make blocking syscalls in other threads fail with EINTR.
        signal.siginterrupt(sig, False)
    except OSError as exc:
        del loop._signal_handlers[sig]
        if not loop._signal_handlers:
            _reset_wakeup_fd()
        if exc.errno == errno_mod.EINVAL:
            raise RuntimeError(f"sig {sig:d} cannot be caught")
        raise


cdef _remove_signal_handler(Loop loop, sig):
    _check_signal(sig)
    try:
        del loop._signal_handlers[sig]
    except KeyError:
        return False
    handler = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
    try:
        signal.signal(sig, handler)
    except OSError as exc:
        if exc.errno == errno_mod.EINVAL:
            raise RuntimeError(f"sig {sig:d} cannot be caught")
        raise
    if not loop._signal_handlers:
        _reset_wakeup_fd()
    return True


cdef _drain_signal_socket(Loop loop):
    cdef Handle h
    while True:
        try:
            data = loop._sig_rsock.recv(4096)
        except InterruptedError:
            continue
        except BlockingIOError:
            return
        if not data:
            return
        for signum in data:
            handle = loop._signal_handlers.get(signum)
            if handle is None:
                continue  # a signal Python handles itself (e.g. SIGINT)
            h = <Handle>handle
            if h._cancelled:
                _remove_signal_handler(loop, signum)
            else:
                lx_rq_push(&loop._ready, <PyObject *>h)


cdef _close_signal_handlers(Loop loop):
    if loop._signal_handlers:
        if sys.is_finalizing():
            warnings.warn(f"Closing the loop {loop!r} on interpreter shutdown "
                          f"stage, skipping signal handlers removal",
                          ResourceWarning, source=loop)
            loop._signal_handlers.clear()
        else:
            for sig in list(loop._signal_handlers):
                _remove_signal_handler(loop, sig)
    if loop._sig_rsock is not None:
        loop._sig_rfd = -1
        loop._sig_rsock.close()
        loop._sig_wsock.close()
        loop._sig_rsock = None
        loop._sig_wsock = None
