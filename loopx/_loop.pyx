# cython: language_level=3
"""loopx's native event loop (epoll on Linux, kqueue on macOS and the BSDs).

One extension module: the loop (this file) plus include files per concern
(handles.pxi, sockets.pxi, signals.pxi, ...).  Keeping them in one module makes
every call between them a direct C call.

The run loop, one iteration (_iterate):
  1. timeout = 0 if a callback is ready or the loop is stopping, else the time
     to the earliest live timer (never rounded down: we must not spin), else
     forever;
  2. poll; dispatch each event through the fd table, indexed by fd;
  3. move due timers from the heap to the ready queue;
  4. run exactly the callbacks that were ready when step 4 began: what they
     schedule runs in the next iteration, after I/O has been polled again.
"""
cimport cython
from cpython.object cimport PyObject, PyObject_Call, PyTypeObject, inquiry, traverseproc, visitproc, Py_LT, Py_LE, Py_EQ, Py_NE, Py_GT, Py_GE
from cpython.mem cimport PyMem_Calloc, PyMem_Malloc, PyMem_Realloc, PyMem_Free
from libc.errno cimport errno, EINTR, EAGAIN, ESRCH, ECONNRESET
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.string cimport memset
from libc.math cimport ceil

import asyncio
import collections
import concurrent.futures
import errno as errno_mod
import gc
import inspect
import io
import os
import signal
import socket
import sys
import threading
import traceback
import warnings
import weakref

from asyncio import coroutines, events, format_helpers, futures, tasks
import asyncio.log


cdef extern from "Python.h":
    int PyContext_Enter(object) except -1
    int PyContext_Exit(object) except -1
    object PyContext_CopyCurrent()
    bint PyCallable_Check(object)
    bint PyFunction_Check(object)
    bint PyMethod_Check(object)
    PyObject *PyFunction_GET_CODE(object)
    PyObject *PyMethod_GET_FUNCTION(object)
    int PyErr_CheckSignals() except -1
    # value NULL deletes
    int PyObject_GenericSetAttr(object o, object name, PyObject *value) except -1
    PyTypeObject *Py_TYPE(PyObject *)
    void _lx_incref "Py_INCREF"(PyObject *)
    void _lx_decref "Py_DECREF"(PyObject *)
    ctypedef struct PyCodeObject:
        int co_flags
    int CO_COROUTINE


cdef extern from "<unistd.h>" nogil:
    ssize_t read(int fd, void *buf, size_t count)
    ssize_t write(int fd, const void *buf, size_t count)
    int close(int fd)

cdef extern from "<fcntl.h>" nogil:
    int F_GETFD
    int fcntl(int fd, int cmd, ...)


# The poller for this OS (csrc/poller.h: epoll or kqueue), declared in _loop.pxd.
POLLER = LX_POLLER_NAME.decode()


# asyncio's limits and debug settings, so loopx behaves the same.
cdef Py_ssize_t _MIN_SCHEDULED_TIMER_HANDLES = 100      # compact only bigger heaps
cdef int64_t _MAX_TIMEOUT_NS = 24 * 3600 * 1000000000   # asyncio's MAXIMUM_SELECT_TIMEOUT
cdef double _CLOCK_RESOLUTION = 1e-9                    # CLOCK_MONOTONIC on Linux
cdef int _DEBUG_STACK_DEPTH = 10                        # asyncio.constants.DEBUG_STACK_DEPTH
cdef enum:
    _MAX_IOV = 64          # buffers per sendmsg(); plenty to fill a socket buffer
# While callbacks are ready, poll for I/O at most this often (see _iterate).
cdef int64_t _BUSY_POLL_INTERVAL_NS = 50000

cdef object _Future = futures.Future
cdef object _Task = tasks.Task
cdef bint _PY312 = sys.version_info >= (3, 12)
cdef bint _PY313 = sys.version_info >= (3, 13)
# The C Future takes the running loop from the C-level holder that
# _asyncio._get_running_loop reads (not from asyncio.events, whose functions
# tests may swap for the pure-Python ones): see create_future.  None when
# futures are not the C ones, and on 3.11, where every read of that holder
# calls getpid(), a syscall (~300 ns here, against ~150 for the keyword).
cdef object _c_running_loop = None
if _PY312:
    try:
        import _asyncio
        if _Future is _asyncio.Future:
            _c_running_loop = _asyncio._get_running_loop
    except (ImportError, AttributeError):
        pass


include "handles.pxi"


cdef PyTypeObject *_HANDLE_TYPE = <PyTypeObject *>Handle
cdef PyTypeObject *_TIMER_HANDLE_TYPE = <PyTypeObject *>TimerHandle
lx_handle_freelist_install(0, _HANDLE_TYPE)
lx_handle_freelist_install(1, _TIMER_HANDLE_TYPE)


cdef class NativeReader:
    """Base of what the loop calls directly on readability (see _loop.pxd)."""

    cdef int _read_event(self) except -1:
        raise NotImplementedError


# The interest bits of FdWatch.events, without the one-shot states.
cdef uint32_t _INTEREST = LX_READ | LX_WRITE


cdef inline bint _still_reads(Loop loop, int fd, NativeReader r):
    """Whether r is still fd's reader.  A NativeReader's event already queued
    when it stopped reading cannot be cancelled as a Handle's can, so each
    checks this before acting (and before unwatching what is now another's)."""
    return 0 <= fd < loop._fds_cap and loop._fds[fd].reader == <PyObject *>r


cdef inline bint _watch_cancelled(PyObject *w):
    # fd table entries are Handles or NativeReaders; only Handles cancel.
    return Py_TYPE(w) == _HANDLE_TYPE and (<Handle>w)._cancelled


cdef inline void _watch_cancel(PyObject *w):
    if Py_TYPE(w) == _HANDLE_TYPE:
        (<Handle>w)._cancel()


# fork(): a child inherits the loop's epoll fd, eventfd and signal socket,
# which still refer to the parent's kernel objects: registering an fd in the
# child would change what the parent's loop polls.  So a loop only runs and
# watches fds in the process that created it; the child gets a clear error and
# makes a new loop (asyncio 3.12+ also forgets the running loop in the child).
cdef unsigned long _fork_generation = 0


def _after_fork_in_child():
    global _fork_generation
    _fork_generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


cdef object _os_error(int err):
    """The OSError for errno err; OSError picks the subclass (ConnectionResetError, ...)."""
    return OSError(err, os.strerror(err))


cdef inline double _now():
    # Same conversion as CPython's time.monotonic() (ns / 1e9), so the two agree.
    return <double>lx_monotonic_ns() / 1e9


cdef object _fileobj_fileno(object fileobj):
    # selectors' rules: an int, or an object whose fileno() gives one.  Any
    # int, even a closed socket's -1 (asyncio's _ensure_fd_no_transport
    # takes that without complaint); _fileobj_to_fd checks the range.
    if isinstance(fileobj, int):
        return fileobj
    try:
        return int(fileobj.fileno())
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"Invalid file object: {fileobj!r}") from None


cdef int _fileobj_to_fd(object fileobj) except -1:
    fd = _fileobj_fileno(fileobj)
    if fd < 0 or fd > 0x7fffffff:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


# C globals, not module attributes: at interpreter exit a loop still set in
# the policy is collected after this module's globals are gone, and its
# close() warns and (in debug mode) logs.
cdef object _warn = warnings.warn
cdef object logger = asyncio.log.logger
cdef object _base_events = asyncio.base_events


cdef object _report_logger():
    """The logger for error reports and slow-callback warnings.

    asyncio's loop logs those through asyncio.base_events' global `logger`
    (the same object as asyncio.log.logger), and tests capture them by
    patching that global, so it is looked up per report.  At interpreter exit
    module globals may be gone; the C global stays."""
    reporter = getattr(_base_events, "logger", None)
    return logger if reporter is None else reporter


cdef class Loop:
    """The native core of loopx.Loop (see loopx/_policy.py)."""

    def __cinit__(self):
        # The object's memory starts zeroed, and fd 0 is a real fd: mark the
        # poller's fds absent before anything can fail.
        self._poller.fd = self._poller.wake_rfd = self._poller.wake_wfd = -1
        self._sig_rfd = -1
        lx_rq_init(&self._ready, 512)
        lx_th_init(&self._timers, 128)
        _live_loops_add(self)
        if lx_poller_open(&self._poller) < 0:
            raise _os_error(errno)
        self._exit_watchers = {}
        self._signal_handlers = {}
        self._readable_after_poll = []
        self._fork_generation = _fork_generation
        self.slow_callback_duration = 0.1
        self._debug = coroutines._is_debug_mode()  # -X dev, PYTHONASYNCIODEBUG
        self._asyncgens = weakref.WeakSet()
        self._unix_server_sockets = {}
        self._py_clock = type(self).time is not _NATIVE_TIME

    def __init__(self):
        pass

    # Only "time" matters here: the rest is the usual attribute protocol.
    def __setattr__(self, name, value):
        PyObject_GenericSetAttr(self, name, <PyObject *>value)
        if name == "time":
            self._py_clock = True

    def __delattr__(self, name):
        PyObject_GenericSetAttr(self, name, NULL)
        if name == "time":
            self._py_clock = type(self).time is not _NATIVE_TIME

    def __dealloc__(self):
        _live_loops_remove(self)
        self._release_native()

    cdef void _release_native(self) noexcept:
        cdef Py_ssize_t fd, cap
        cdef FdWatch *fds
        lx_rq_free(&self._ready)
        lx_th_free(&self._timers)
        # Detach the fd table before releasing its handles: a DECREF can run
        # a finalizer that calls back into the loop.
        fds = self._fds
        cap = self._fds_cap
        self._fds = NULL
        self._fds_cap = 0
        self._fds_watched = 0
        if fds != NULL:
            for fd in range(cap):
                if fds[fd].reader != NULL:
                    _lx_decref(fds[fd].reader)
                if fds[fd].writer != NULL:
                    _lx_decref(fds[fd].writer)
            PyMem_Free(fds)
        lx_poller_close(&self._poller)

    def __del__(self):
        if not self._closed:
            _warn(f"unclosed event loop {self!r}", ResourceWarning, source=self)
            if not self.is_running():
                self.close()

    def __repr__(self):
        return (f"<{type(self).__name__} running={self.is_running()} "
                f"closed={self._closed} debug={self._debug}>")

    # ------------------------------------------------------------------
    # Checks shared by the public methods

    cdef _check_closed(self):
        if self._closed:
            raise RuntimeError("Event loop is closed")

    cdef _check_same_process(self):
        if self._fork_generation != _fork_generation:
            raise RuntimeError(
                "this event loop was created before fork(): its poller is "
                "shared with the parent process; create a new loop in the child")

    cdef _check_thread(self):
        # Debug mode only, like asyncio: the loop is not thread-safe.
        if self._thread_id is None:
            return
        if threading.get_ident() != self._thread_id:
            raise RuntimeError(
                "Non-thread-safe operation invoked on an event loop other "
                "than the current one")

    cdef _check_callback(self, callback, str method):
        # asyncio's check of a callback.  The scheduling methods and
        # run_in_executor() make it in debug mode only, as asyncio's do: a
        # program that schedules a Task or a coroutine function by mistake
        # gets the error through the exception handler when it runs, and
        # goes on (Sanic's test suite does this).  add_reader()/add_writer()
        # and add_signal_handler() make it always (a watch or a signal
        # handler that cannot be called would fail on every event): for
        # callables, only what costs nothing -- a coroutine function's code
        # flags -- outside debug mode.
        cdef PyObject *func
        if not PyCallable_Check(callback):
            if coroutines.iscoroutine(callback):
                raise TypeError(f"coroutines cannot be used with {method}()")
            raise TypeError(
                f"a callable object was expected by {method}(), got {callback!r}")
        if PyMethod_Check(callback):
            func = PyMethod_GET_FUNCTION(callback)
        else:
            func = <PyObject *>callback
        if PyFunction_Check(<object>func):
            if (<PyCodeObject *>PyFunction_GET_CODE(<object>func)).co_flags & CO_COROUTINE:
                raise TypeError(f"coroutines cannot be used with {method}()")
        elif self._debug and coroutines.iscoroutinefunction(callback):
            raise TypeError(f"coroutines cannot be used with {method}()")

    # ------------------------------------------------------------------
    # Scheduling callbacks

    def time(self):
        """Return the loop's time: CLOCK_MONOTONIC, like time.monotonic()."""
        return _now()

    # What loopx/_policy.py's Loop shows as asyncio's _ready and _scheduled.
    # Indexed afresh at each step: an allocation can run a finalizer that
    # schedules, growing (and moving) the queue or the heap.

    def _ready_handles(self):
        """The callbacks queued to run in this or the next iteration, oldest
        first (fds found ready are loopx's own business, not handles)."""
        cdef Py_ssize_t i = 0
        cdef PyObject *item
        handles = []
        while i < self._ready.len:
            item = lx_rq_at(&self._ready, i)
            if Py_TYPE(item) == _HANDLE_TYPE or Py_TYPE(item) == _TIMER_HANDLE_TYPE:
                handles.append(<object>item)
            i += 1
        return tuple(handles)

    def _scheduled_handles(self):
        """The timer handles in the heap (not yet moved to the ready queue),
        cancelled ones included, in heap order: what asyncio's _scheduled
        list holds."""
        cdef Py_ssize_t i = 0
        handles = []
        while i < self._timers.len:
            handles.append(<object>self._timers.items[i].handle)
            i += 1
        return tuple(handles)

    cdef double _clock(self) except? -1.0:
        """The time timers are scheduled and fired by: the native clock, or
        what a replaced loop.time() says (a test's fake clock)."""
        if self._py_clock:
            return self.time()
        return _now()

    cdef double _due_before(self) except? -1.0:
        """Timers earlier than this are due now (asyncio's end_time)."""
        return self._clock() + _CLOCK_RESOLUTION

    cdef bint _timer_due(self) except -1:
        """Whether the next iteration, if it began now, would run a timer:
        work done within this iteration in place of several of asyncio's
        (datagram batches) stops there, so the timer keeps its place."""
        return self._timers.len > 0 and self._timers.items[0].when < self._due_before()

    # call_soon, call_later and call_at are METH_FASTCALL functions set on
    # the type below the class (_call_soon_method, ...): see sched_call.h.

    cdef Handle _call_soon(self, callback, tuple args, context):
        """call_soon for arguments in a tuple, or None for none."""
        if args is None:
            return self._call_soon_vec(callback, NULL, 0, context)
        return self._call_soon_vec(callback, lx_tuple_items(args), len(args), context)

    cdef Handle _call_soon_vec(self, callback, PyObject **argv, Py_ssize_t nargs, context):
        # Checked here, not only in call_soon(): transports schedule through
        # this too, and a closed loop has no queue left to push to.
        if self._closed:
            self._check_closed()
        if context is None:
            context = PyContext_CopyCurrent()
        cdef Handle h = new_handle(self, callback, argv, nargs, context)
        lx_rq_push(&self._ready, <PyObject *>h)   # born untracked: the queue owns it (owned.h)
        return h

    cdef TimerHandle _call_at(self, double when, callback, PyObject **argv, Py_ssize_t nargs,
                              context):
        if self._closed:
            self._check_closed()
        if context is None:
            context = PyContext_CopyCurrent()
        cdef TimerHandle h = new_timer_handle(self, when, callback, argv, nargs, context)
        lx_th_push(&self._timers, when, <PyObject *>h)   # born untracked: the heap owns it (owned.h)
        h._scheduled = True
        return h

    def call_soon_threadsafe(self, callback, *args, context=None):
        """Like call_soon(), but safe to call from another thread."""
        self._check_closed()
        if self._debug:
            self._check_callback(callback, "call_soon_threadsafe")
        cdef Handle h = self._call_soon(callback, args, context)
        self._wakeup()
        return h

    cdef _wakeup(self):
        # Wake a poll that may be blocking.  Every thread runs this with the
        # GIL held, so the flag needs no lock: one write per burst.
        if not self._wake_pending and self._poller.fd >= 0:
            self._wake_pending = True
            if lx_poller_wakeup(&self._poller) < 0:
                self._wake_pending = False

    cdef _drain_wakeup(self):
        # Clear the flag after draining: a thread that queued a callback
        # between the two has seen the flag set and relies on us to run its
        # callback, which we do because it is already in the ready queue.
        lx_poller_wakeup_clear(&self._poller)
        self._wake_pending = False

    # ------------------------------------------------------------------
    # Running

    def is_running(self):
        return self._thread_id is not None

    def is_closed(self):
        return self._closed

    def get_debug(self):
        return self._debug

    def set_debug(self, enabled):
        self._debug = bool(enabled)
        if self.is_running():
            self.call_soon_threadsafe(self._set_coroutine_origin_tracking, self._debug)

    def _set_coroutine_origin_tracking(self, enabled):
        if bool(enabled) == (self._coro_origin_depth is not None):
            return
        if enabled:
            self._coro_origin_depth = sys.get_coroutine_origin_tracking_depth()
            sys.set_coroutine_origin_tracking_depth(_DEBUG_STACK_DEPTH)
        else:
            sys.set_coroutine_origin_tracking_depth(self._coro_origin_depth)
            self._coro_origin_depth = None

    def _check_running(self):
        if self.is_running():
            raise RuntimeError("This event loop is already running")
        # Looked up at each run, not bound at import: asyncio.events may have
        # been given another implementation (the pure-Python one) since.
        if events._get_running_loop() is not None:
            raise RuntimeError(
                "Cannot run the event loop while another loop is running")

    def _run_forever_setup(self):
        """Make this the running loop of the calling thread (3.13's hook for
        loops integrated into other event loops)."""
        self._check_closed()
        self._check_same_process()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        self._old_agen_hooks = sys.get_asyncgen_hooks()
        self._thread_id = threading.get_ident()
        sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                               finalizer=self._asyncgen_finalizer_hook)
        events._set_running_loop(self)
        # For create_future and create_task; a cycle through the loop, but
        # only while it runs (an idle loop is still freed by its last
        # reference).
        self._loop_kwargs = {"loop": self}

    def _run_forever_cleanup(self):
        self._loop_kwargs = None
        self._stopping = False
        self._iteration_polled = False
        self._thread_id = None
        events._set_running_loop(None)
        self._set_coroutine_origin_tracking(False)
        if self._old_agen_hooks is not None:
            sys.set_asyncgen_hooks(*self._old_agen_hooks)
            self._old_agen_hooks = None

    def run_forever(self):
        """Run until stop() is called."""
        # Setup outside the try: a refused run (already running, another loop
        # running, closed) must not clean up the state of the run it refused
        # to disturb (CPython gh-130145).
        self._run_forever_setup()
        try:
            while True:
                self._iterate()
                if self._stopping:
                    break
        finally:
            self._run_forever_cleanup()

    def _run_once(self):
        """One iteration of the loop, as asyncio's private method: what an
        outer event loop calls between _run_forever_setup() and
        _run_forever_cleanup() (3.13's integration hooks), and what tests
        step the loop with."""
        self._check_closed()
        self._iterate()

    def run_until_complete(self, future):
        """Run until the future (or coroutine, wrapped in a Task) is done and
        return its result or raise its exception."""
        self._check_closed()
        self._check_running()
        new_task = not futures.isfuture(future)
        future = tasks.ensure_future(future, loop=self)
        if new_task:
            # The loop owns this task: if run_forever is interrupted, don't
            # warn that it was destroyed pending.
            future._log_destroy_pending = False
        future.add_done_callback(_run_until_complete_cb)
        try:
            self.run_forever()
        except:
            if new_task and future.done() and not future.cancelled():
                # Mark the exception retrieved: the caller sees the
                # interrupting exception instead.
                future.exception()
            raise
        finally:
            future.remove_done_callback(_run_until_complete_cb)
        if not future.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return future.result()

    def stop(self):
        """Stop after the current iteration (or after one iteration if the
        loop is not running yet)."""
        self._stopping = True

    def close(self):
        """Close the loop: drop pending callbacks, release fds, shut the
        default executor down without waiting.  Idempotent."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self._closed:
            return
        if self._debug:
            logger.debug("Close %r", self)
        self._closed = True
        self._watch_objs = None   # a closed loop must not keep sockets alive
        if self._readable_after_poll is not None:
            # Emptied, not replaced: a closed loop allocates nothing (memory
            # leak checks compare the objects alive around a loop's life).
            self._readable_after_poll.clear()
        lx_rq_clear(&self._ready)
        lx_th_clear(&self._timers)
        self._timer_cancelled_count = 0
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)
        self._close_signals()
        self._release_native()

    cdef int _iterate(self) except -1:
        """One iteration: poll, collect due timers, run what is ready."""
        cdef int64_t timeout_ns = -1
        cdef double delta, deadline
        cdef PyObject *ptr
        cdef NativeReader reader
        cdef Py_ssize_t ntodo

        # Cancelled timers stay in the heap until here: when they are most of
        # a big heap, rebuild it in O(n); otherwise drop the cancelled ones
        # that reached the top (so the timeout below is for a live timer).
        if (self._timers.len > _MIN_SCHEDULED_TIMER_HANDLES
                and self._timer_cancelled_count * 2 > self._timers.len):
            self._timer_cancelled_count -= lx_th_compact(&self._timers, _timer_unschedule_if_cancelled)
        else:
            while self._timers.len and (<Handle>self._timers.items[0].handle)._cancelled:
                ptr = lx_th_pop(&self._timers)
                (<TimerHandle>ptr)._scheduled = False
                self._timer_cancelled_count -= 1
                lx_owned_release(ptr)

        # The clock is read only where it matters: a busy network loop with
        # no timers never reads it (a read is ~3% of a 1 KiB sock_* echo's
        # CPU on a VM).
        if self._ready.len or self._stopping or self._readable_after_poll:
            timeout_ns = 0
            if (not self._fds_watched and self._iteration_polled
                    and lx_monotonic_ns() - self._last_poll_ns < _BUSY_POLL_INTERVAL_NS):
                # Callbacks keep the loop busy, no fd is watched and we
                # polled moments ago: a zero-timeout poll now could only
                # find a wakeup or a signal, and the syscall costs as much
                # as running a callback.  Those are still checked at least
                # every _BUSY_POLL_INTERVAL_NS, and on the first iteration of
                # every run_forever().  With an fd watched we poll on every
                # iteration, as asyncio does: I/O that is ready is queued
                # before the callbacks this iteration schedules, and programs
                # rely on that order (asyncssh's stdin redirection).
                timeout_ns = -2
        elif self._timers.len:
            delta = self._timers.items[0].when - (
                self._clock() if self._py_clock else <double>lx_monotonic_ns() / 1e9)
            if delta <= 0:
                timeout_ns = 0
            elif delta * 1e9 >= <double>_MAX_TIMEOUT_NS:
                timeout_ns = _MAX_TIMEOUT_NS
            else:
                # Round up: waking before the deadline would just spin.
                timeout_ns = <int64_t>ceil(delta * 1e9)
        if timeout_ns != -2:
            self._poll(timeout_ns)
            if not self._fds_watched:
                # Only the busy-poll test above reads this, and only with no
                # fd watched; left stale meanwhile, it errs towards polling.
                self._last_poll_ns = lx_monotonic_ns()
            self._iteration_polled = True
        if self._readable_after_poll:
            # Behind the fds the poll reported, before due timers: where
            # asyncio's selector would have put them.  (Pushing runs no
            # code, so nothing adds to the list meanwhile.)
            for reader in self._readable_after_poll:
                lx_rq_push(&self._ready, <PyObject *>reader)
            self._readable_after_poll.clear()

        if self._timers.len:
            deadline = self._due_before()
            while self._timers.len and self._timers.items[0].when < deadline:
                ptr = lx_th_pop(&self._timers)
                (<TimerHandle>ptr)._scheduled = False
                if (<TimerHandle>ptr)._cancelled:
                    self._timer_cancelled_count -= 1
                    lx_owned_release(ptr)
                else:
                    # The heap's reference moves to the queue (it stays ours).
                    lx_rq_push(&self._ready, ptr)
                    _lx_decref(ptr)

        # Only what is ready now runs in this iteration; callbacks scheduled
        # by these go behind them and run after the next poll.  A handle is
        # popped before it runs, so if it raises KeyboardInterrupt the rest
        # stay queued for the next run, as in asyncio.
        ntodo = self._ready.len
        while ntodo > 0:
            ntodo -= 1
            ptr = lx_rq_pop(&self._ready)
            if Py_TYPE(ptr) != _HANDLE_TYPE and Py_TYPE(ptr) != _TIMER_HANDLE_TYPE:
                reader = <NativeReader>ptr
                _lx_decref(ptr)
                self._run_native_reader(reader)
                continue
            # The queue's reference is held across the run and released
            # through lx_owned_release, which re-tracks a handle that the
            # callback or the caller kept.
            if (<Handle>ptr)._cancelled:
                lx_owned_release(ptr)
                continue
            try:
                if self._debug:
                    self._run_handle_debug(<Handle>ptr)
                else:
                    (<Handle>ptr)._run_callback()
            finally:
                lx_owned_release(ptr)
        return 0

    cdef int _run_native_reader(self, NativeReader r) except -1:
        """Run r's read event in its context; as Handle._run, only SystemExit
        and KeyboardInterrupt propagate."""
        cdef double t0 = _now() if self._debug else 0.0, dt
        cdef object ctx = r._read_context
        try:
            if ctx is None:
                # Runs no user code (a sock_recv waiter): no context needed.
                r._read_event()
            else:
                PyContext_Enter(ctx)
                try:
                    r._read_event()
                finally:
                    PyContext_Exit(ctx)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self.call_exception_handler({
                "message": f"Exception in the read callback of {r!r}",
                "exception": exc,
                "transport": r,
            })
        if self._debug:
            dt = _now() - t0
            if dt >= self.slow_callback_duration:
                _report_logger().warning("Executing the read callback of %r took %.3f seconds", r, dt)
        return 0

    cdef int _run_handle_debug(self, Handle h) except -1:
        cdef double t0 = _now(), dt
        self._current_handle = h
        try:
            h._run_callback()
        finally:
            self._current_handle = None
        dt = _now() - t0
        if dt >= self.slow_callback_duration:
            _report_logger().warning("Executing %s took %.3f seconds", _format_handle(h), dt)
        return 0

    # ------------------------------------------------------------------
    # The poller (epoll) and the fd table

    cdef int _poll(self, int64_t timeout_ns) except -1:
        cdef int n, i, fd
        cdef unsigned int ev
        if timeout_ns == 0:
            # A zero-timeout poll never blocks: keep the GIL.
            n = lx_poller_wait(&self._poller, 0)
        else:
            with nogil:
                n = lx_poller_wait(&self._poller, timeout_ns)
        if n < 0:
            if errno == EINTR:
                # A signal arrived: run Python-level handlers now (Ctrl-C
                # raises KeyboardInterrupt here); the caller polls again.
                PyErr_CheckSignals()
                return 0
            raise _os_error(errno)

        self._poll_count += 1
        for i in range(n):
            fd = self._poller.events[i].ident
            ev = self._poller.events[i].events
            if ev & (LX_WAKEUP | LX_PROC_EXIT):
                if ev & LX_WAKEUP:
                    self._drain_wakeup()
                else:
                    self._child_exit_seen(fd)
                continue
            if fd == self._sig_rfd:
                self._drain_signals()
                continue
            # Index the table afresh for each use: _remove_watch can run
            # Python code (finalizers) that grows and moves the table.
            if ev & LX_READ and fd < self._fds_cap and self._fds[fd].reader != NULL:
                if self._fds[fd].events & LX_ONESHOT:
                    # The kernel disarmed the registration as it reported it.
                    self._fds[fd].events |= LX_DISARMED
                if _watch_cancelled(self._fds[fd].reader):
                    self._remove_watch(fd, False)
                else:
                    lx_rq_push(&self._ready, self._fds[fd].reader)
            if ev & LX_WRITE and fd < self._fds_cap and self._fds[fd].writer != NULL:
                if (<Handle>self._fds[fd].writer)._cancelled:
                    self._remove_watch(fd, True)
                else:
                    lx_rq_push(&self._ready, self._fds[fd].writer)

        if n == self._poller.cap:
            # Every slot was used: more fds may be ready than one poll can
            # report.  Grow so busy loops need fewer syscalls.
            lx_poller_grow_events(&self._poller)
        return 0

    cdef _child_exit_seen(self, int pid):
        # kqueue's EVFILT_PROC said pid exited (see process.pxi).
        transp = self._exit_watchers.pop(pid, None)
        if transp is not None:
            self.call_soon(_child_exited_reap, self, pid, transp)

    cdef int _fd_grow(self, int fd) except -1:
        cdef Py_ssize_t newcap, i
        cdef FdWatch *fds
        if fd < self._fds_cap:
            return 0
        # Only open fds get a slot (their number is bounded by RLIMIT_NOFILE),
        # so a bogus huge fd cannot make us allocate a huge table.
        if fcntl(fd, F_GETFD) < 0:
            raise _os_error(errno)
        newcap = max(fd + 1, self._fds_cap * 2, 64)
        fds = <FdWatch *>PyMem_Realloc(self._fds, sizeof(FdWatch) * newcap)
        if fds == NULL:
            raise MemoryError()
        for i in range(self._fds_cap, newcap):
            fds[i].reader = NULL
            fds[i].writer = NULL
            fds[i].transport = NULL
            fds[i].events = 0
            fds[i].recv_drained = False
        self._fds = fds
        self._fds_cap = newcap
        return 0

    cdef int _fd_set_interest(self, int fd, uint32_t interest, bint oneshot) except -1:
        """Tell the poller what we now want of fd (LX_READ | LX_WRITE); only
        changes cost a syscall.  The one-shot states (csrc/poller.h) are
        derived here and nowhere else: oneshot asks for a one-shot read,
        which only a sole read interest gets, and dropping all interest in a
        fired one-shot entry parks it instead of deleting it."""
        cdef FdWatch *w = &self._fds[fd]
        cdef uint32_t events
        if interest == 0:
            events = w.events & LX_DISARMED
        elif oneshot and LX_POLLER_ONESHOT and interest == LX_READ:
            events = LX_READ | LX_ONESHOT
        else:
            events = interest
        if events != w.events:
            if lx_poller_modify(&self._poller, fd, w.events, events) < 0:
                raise _os_error(errno)
            if (w.events & _INTEREST == 0) != (events & _INTEREST == 0):
                self._fds_watched += 1 if events & _INTEREST else -1
            w.events = events
        return 0

    cdef Handle _add_watch(self, object fileobj, bint writer, callback, tuple args):
        cdef int fd = _fileobj_to_fd(fileobj)
        cdef PyObject *old
        self._check_closed()
        self._check_same_process()
        self._check_callback(callback, "add_writer" if writer else "add_reader")
        # Allocate before taking a pointer into the fd table: an allocation
        # can run the garbage collector, whose finalizers may add watches and
        # move the table.
        cdef Handle h = new_handle_from_tuple(self, callback, args, PyContext_CopyCurrent())
        lx_owned_share(<PyObject *>h)   # the fd table is not private (owned.h)
        self._fd_grow(fd)
        cdef FdWatch *w = &self._fds[fd]
        self._fd_set_interest(fd, (w.events & _INTEREST) | (LX_WRITE if writer else LX_READ), False)
        w = &self._fds[fd]
        _lx_incref(<PyObject *>h)
        if writer:
            old = w.writer
            w.writer = <PyObject *>h
        else:
            old = w.reader
            w.reader = <PyObject *>h
        if old != NULL:
            # Replaced: a copy of the old handle may already be queued in
            # this iteration; cancelling it keeps it from running.
            _watch_cancel(old)
            _lx_decref(old)
        if not isinstance(fileobj, int):
            if self._watch_objs is None:
                self._watch_objs = {}
            self._watch_objs[fd] = fileobj
        return h

    cdef int _add_native_reader(self, int fd, NativeReader r, bint in_context,
                                bint oneshot) except -1:
        """Watch fd for reading with r itself in place of a handle (see
        _still_reads).  With in_context, r's reads run in a copy of the
        current context, as an add_reader() handle's would; without, r runs
        no user code and needs none.  A oneshot reader is for one wait: after
        each event it must call _fd_rearm if it wants another, and removing
        it after its event keeps the kernel entry parked (csrc/poller.h)."""
        cdef PyObject *old
        self._check_closed()
        self._check_same_process()
        self._fd_grow(fd)
        self._fd_set_interest(fd, (self._fds[fd].events & _INTEREST) | LX_READ, oneshot)
        r._read_context = PyContext_CopyCurrent() if in_context else None
        cdef FdWatch *w = &self._fds[fd]
        _lx_incref(<PyObject *>r)
        old = w.reader
        w.reader = <PyObject *>r
        if old != NULL:
            _watch_cancel(old)
            _lx_decref(old)
        return 0

    cdef bint _remove_watch(self, object fileobj, bint writer) except -1:
        cdef int fd
        cdef PyObject *old
        if self._closed:
            return False
        try:
            fd = _fileobj_to_fd(fileobj)
        except ValueError:
            # A socket closed since it was watched (fileno() is -1): the
            # watch is found by the object, as selectors find their key.
            fd = self._watched_fd_of(fileobj)
            if fd < 0:
                raise
        if fd >= self._fds_cap:
            return False
        cdef FdWatch *w = &self._fds[fd]
        if writer:
            old = w.writer
            w.writer = NULL
        else:
            old = w.reader
            w.reader = NULL
        if old == NULL:
            return False
        try:
            # For a closed fd the kernel has dropped the registration
            # already; the poller takes that as done (poll_epoll.h).
            self._fd_set_interest(fd, w.events & _INTEREST & ~(LX_WRITE if writer else LX_READ), False)
        finally:
            if self._watch_objs and self._fds[fd].reader == NULL and self._fds[fd].writer == NULL:
                self._watch_objs.pop(fd, None)
            _watch_cancel(old)
            _lx_decref(old)
        return True

    cdef int _watched_fd_of(self, fileobj) except -2:
        """The fd that add_reader/add_writer watch by fileobj, or -1."""
        if self._watch_objs:
            for fd, obj in self._watch_objs.items():
                if obj is fileobj:
                    return fd
        return -1

    cdef int _fd_rearm(self, int fd) except -1:
        """Re-arm fd's one-shot reader after an event that did not finish
        its wait (a spurious wakeup)."""
        cdef uint32_t fired = LX_ONESHOT | LX_DISARMED
        if fd < self._fds_cap and self._fds[fd].events & fired == fired:
            self._fd_set_interest(fd, LX_READ, True)
        return 0

    def _ensure_fd_no_transport(self, fd):
        fileno = _fileobj_fileno(fd)
        if 0 <= fileno < self._fds_cap:
            self._check_fd_no_transport(fileno, fd)

    cdef int _check_fd_no_transport(self, int fd, fileobj) except -1:
        # The fd table knows each stream transport's fd (FdWatch.transport):
        # asyncio keeps a WeakValueDictionary for this, which costs an idle
        # connection a weakref and a lookup on every sock_* wait.  A C call,
        # as every waiting sock_* operation makes it.
        if 0 <= fd < self._fds_cap and self._fds[fd].transport != NULL:
            transport = <object>self._fds[fd].transport
            if not transport.is_closing():
                raise RuntimeError(f"File descriptor {fileobj!r} is used by transport {transport!r}")
        return 0

    def add_reader(self, fd, callback, *args):
        """Call callback(*args) whenever fd is readable."""
        self._ensure_fd_no_transport(fd)
        self._add_watch(fd, False, callback, args)

    def remove_reader(self, fd):
        """Stop watching fd for reading; True if it was watched."""
        self._ensure_fd_no_transport(fd)
        return self._remove_watch(fd, False)

    def add_writer(self, fd, callback, *args):
        """Call callback(*args) whenever fd is writable."""
        self._ensure_fd_no_transport(fd)
        self._add_watch(fd, True, callback, args)

    def remove_writer(self, fd):
        """Stop watching fd for writing; True if it was watched."""
        self._ensure_fd_no_transport(fd)
        return self._remove_watch(fd, True)

    # ------------------------------------------------------------------
    # Futures and tasks

    def create_future(self):
        # A future made without arguments takes the running loop, read from
        # the thread state in C.  Passing loop= costs more: the Future type
        # has no vectorcall, so the keyword becomes a dict, which __init__
        # then parses (about 600 instructions of a ~1,400 creation).
        if _c_running_loop is not None and _c_running_loop() is self:
            return _Future()
        if self._loop_kwargs is not None:
            # The keyword from the dict made for this run (__init__ only
            # reads it): no dict built and freed per future.
            return PyObject_Call(_Future, (), self._loop_kwargs)
        return _Future(loop=self)

    @cython.wraparound(True)   # [-1] below (the module default is off)
    def create_task(self, coro, *, name=None, context=None):
        """Schedule a coroutine as a Task (through the task factory if set)."""
        self._check_closed()
        if self._task_factory is None:
            if name is None and context is None and self._loop_kwargs is not None:
                # The common call, with the dict made for this run (see
                # create_future).
                task = PyObject_Call(_Task, (coro,), self._loop_kwargs)
            else:
                task = _Task(coro, loop=self, name=name, context=context)
            if task._source_traceback:
                del task._source_traceback[-1]
        else:
            if context is None:
                # Factories written before 3.11 take no context argument.
                task = self._task_factory(self, coro)
            else:
                task = self._task_factory(self, coro, context=context)
            if name is not None:
                task.set_name(name)
        return task

    def set_task_factory(self, factory):
        if factory is not None and not callable(factory):
            raise TypeError("task factory must be a callable or None")
        self._task_factory = factory

    def get_task_factory(self):
        return self._task_factory

    # ------------------------------------------------------------------
    # Error handling

    def get_exception_handler(self):
        return self._exception_handler

    def set_exception_handler(self, handler):
        if handler is not None and not callable(handler):
            raise TypeError(f"A callable object or None is expected, got {handler!r}")
        self._exception_handler = handler

    def default_exception_handler(self, context):
        """Log the context with the 'asyncio' logger, as asyncio does."""
        _log_exception_context(self, context)

    def call_exception_handler(self, context):
        """Report an error: to the handler set with set_exception_handler()
        (run in the context of the task/future/handle concerned, as 3.12+
        does), else to default_exception_handler().  Never raises, except
        SystemExit and KeyboardInterrupt."""
        if self._exception_handler is None:
            try:
                self.default_exception_handler(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                _report_logger().error("Exception in default exception handler", exc_info=True)
            return
        try:
            ctx = None
            if _PY312:
                owner = context.get("task")
                if owner is None:
                    owner = context.get("future")
                if owner is None:
                    owner = context.get("handle")
                if owner is not None and hasattr(owner, "get_context"):
                    ctx = owner.get_context()
            if ctx is not None and hasattr(ctx, "run"):
                ctx.run(self._exception_handler, self, context)
            else:
                self._exception_handler(self, context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            try:
                self.default_exception_handler({
                    "message": "Unhandled error in exception handler",
                    "exception": exc,
                    "context": context,
                })
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                _report_logger().error("Exception in default exception handler while "
                                       "handling an unexpected error in custom exception "
                                       "handler", exc_info=True)

    # ------------------------------------------------------------------
    # Async generators

    def _asyncgen_firstiter_hook(self, agen):
        if self._asyncgens_shutdown_called:
            warnings.warn(
                f"asynchronous generator {agen!r} was scheduled after "
                f"loop.shutdown_asyncgens() call", ResourceWarning, source=self)
        self._asyncgens.add(agen)

    def _asyncgen_finalizer_hook(self, agen):
        # Called by the garbage collector, possibly in another thread.
        self._asyncgens.discard(agen)
        if not self._closed:
            self.call_soon_threadsafe(self.create_task, agen.aclose())

    def shutdown_asyncgens(self):
        """Close every async generator still open (a coroutine)."""
        return _shutdown_asyncgens(self)

    # ------------------------------------------------------------------
    # Executor

    def run_in_executor(self, executor, func, *args):
        """Run func(*args) in executor (default: a thread pool) and return
        an asyncio future for the result."""
        self._check_closed()
        if self._debug:
            self._check_callback(func, "run_in_executor")
        if executor is None:
            executor = self._default_executor
            if self._executor_shutdown_called:
                raise RuntimeError("Executor shutdown has been called")
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="asyncio")
                self._default_executor = executor
        return futures.wrap_future(executor.submit(func, *args), loop=self)

    def set_default_executor(self, executor):
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            raise TypeError("executor must be ThreadPoolExecutor instance")
        self._default_executor = executor

    if _PY312:
        def shutdown_default_executor(self, timeout=None):
            """Shut the default executor down, waiting at most timeout
            seconds for its threads (a coroutine)."""
            return _shutdown_default_executor(self, timeout)
    else:
        def shutdown_default_executor(self):
            """Shut the default executor down (a coroutine)."""
            return _shutdown_default_executor(self, None)

    def _do_shutdown(self, future):
        # Runs in a helper thread: shutting down joins the pool's threads.
        try:
            self._default_executor.shutdown(wait=True)
            if not self._closed:
                self.call_soon_threadsafe(futures._set_result_unless_cancelled, future, None)
        except Exception as ex:
            if not self._closed and not future.cancelled():
                self.call_soon_threadsafe(future.set_exception, ex)

    # ------------------------------------------------------------------
    # Name resolution

    def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        """socket.getaddrinfo in the default executor (a coroutine)."""
        return _getaddrinfo(self, host, port, family, type, proto, flags)

    def getnameinfo(self, sockaddr, flags=0):
        """socket.getnameinfo in the default executor (a coroutine)."""
        return _run_in_default_executor(self, socket.getnameinfo, sockaddr, flags)

    # ------------------------------------------------------------------
    # Low-level socket operations (sockets.pxi)

    def sock_recv(self, sock, n):
        return _sock_recv(self, sock, n)

    def sock_recv_into(self, sock, buf):
        return _sock_recv_into(self, sock, buf)

    def sock_recvfrom(self, sock, bufsize):
        return _sock_recvfrom(self, sock, bufsize)

    def sock_recvfrom_into(self, sock, buf, nbytes=0):
        return _sock_recvfrom_into(self, sock, buf, nbytes)

    def sock_sendall(self, sock, data):
        return _sock_sendall(self, sock, data)

    def sock_sendto(self, sock, data, address):
        return _sock_sendto(self, sock, data, address)

    def sock_connect(self, sock, address):
        return _sock_connect(self, sock, address)

    def sock_accept(self, sock):
        return _sock_accept(self, sock)

    def sock_sendfile(self, sock, file, offset=0, count=None, *, fallback=True):
        return _sock_sendfile(self, sock, file, offset, count, fallback)

    # ------------------------------------------------------------------
    # Stream transports and serving (stream.pxi), TLS (tls.pxi).  The set-up
    # around them (create_connection, create_server, ...) is the running
    # Python's own asyncio code, bound in loopx/_policy.py.

    def _make_socket_transport(self, sock, protocol, waiter=None, *, extra=None, server=None):
        return SocketTransport(self, sock, protocol, waiter, extra, server)

    def _make_ssl_transport(self, rawsock, protocol, sslcontext, waiter=None, *,
                            server_side=False, server_hostname=None, extra=None,
                            server=None, ssl_handshake_timeout=None,
                            ssl_shutdown_timeout=None, call_connection_made=True):
        return _make_tls_transport(self, rawsock, protocol, sslcontext, waiter,
                                   server_side, server_hostname, extra, server,
                                   ssl_handshake_timeout, ssl_shutdown_timeout,
                                   call_connection_made)

    def start_tls(self, transport, protocol, sslcontext, *, server_side=False,
                  server_hostname=None, ssl_handshake_timeout=None,
                  ssl_shutdown_timeout=None):
        """Upgrade transport to TLS; returns (a coroutine for) the new
        transport, which protocol should use from then on."""
        return _start_tls(self, transport, protocol, sslcontext, server_side,
                          server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout)

    def _start_serving(self, protocol_factory, sock, sslcontext=None, server=None,
                       backlog=100, ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        _start_serving(self, protocol_factory, sock, sslcontext, server, backlog,
                       ssl_handshake_timeout, ssl_shutdown_timeout)

    def _stop_serving(self, sock):
        _stop_serving(self, sock)

    def _sendfile_native(self, transp, file, offset, count):
        return _sendfile_native(self, transp, file, offset, count)

    def _sendfile_fallback(self, transp, file, offset, count):
        return _sendfile_fallback(self, transp, file, offset, count)

    # ------------------------------------------------------------------
    # Subprocesses (process.pxi); subprocess_exec/_shell are asyncio's own.

    def _make_subprocess_transport(self, protocol, args, shell, stdin, stdout, stderr,
                                   bufsize, extra=None, **kwargs):
        return _make_subprocess_transport(self, protocol, args, shell, stdin, stdout,
                                          stderr, bufsize, extra, kwargs)

    # ------------------------------------------------------------------
    # Signals (signals.pxi)

    def add_signal_handler(self, sig, callback, *args):
        """Run callback(*args) when signal sig arrives (main thread only)."""
        _add_signal_handler(self, sig, callback, args)

    def remove_signal_handler(self, sig):
        """Remove the handler for sig; True if there was one."""
        return _remove_signal_handler(self, sig)

    cdef _drain_signals(self):
        _drain_signal_socket(self)

    def _close_signals(self):
        _close_signal_handlers(self)

    # ------------------------------------------------------------------
    # Datagram and pipe transports (datagram.pxi, pipes.pxi), made for
    # asyncio's own create_datagram_endpoint / connect_*_pipe (_policy.py).

    def _make_datagram_transport(self, sock, protocol, address=None, waiter=None, extra=None):
        return _new_datagram_transport(self, sock, protocol, address, waiter, extra)

    def _make_read_pipe_transport(self, pipe, protocol, waiter=None, extra=None):
        return _new_read_pipe_transport(self, pipe, protocol, waiter, extra)

    def _make_write_pipe_transport(self, pipe, protocol, waiter=None, extra=None):
        return _new_write_pipe_transport(self, pipe, protocol, waiter, extra)


# Loop.time as the class defines it: a subclass or an instance that replaces
# it turns Loop._py_clock on.
cdef object _NATIVE_TIME = Loop.__dict__["time"]


# call_soon, call_later and call_at: asyncio's signatures, parsed from the
# caller's argument vector so that no *args tuple is made (sched_call.h).
cdef const char *_CALL_SOON_PARAMS[1]
_CALL_SOON_PARAMS[0] = "callback"
cdef const char *_CALL_LATER_PARAMS[2]
_CALL_LATER_PARAMS[0] = "delay"
_CALL_LATER_PARAMS[1] = "callback"
cdef const char *_CALL_AT_PARAMS[2]
_CALL_AT_PARAMS[0] = "when"
_CALL_AT_PARAMS[1] = "callback"


cdef object _call_soon_method(object self, PyObject **args, Py_ssize_t nargs, PyObject *kwnames):
    cdef lx_sched_args a
    lx_parse_sched_call("call_soon", _CALL_SOON_PARAMS, 1, args, nargs, kwnames, &a)
    cdef Loop loop = <Loop>self   # the method descriptor checked the type
    callback = <object>a.pos[0]
    _check_schedulable(loop, callback, "call_soon")
    return loop._call_soon_vec(callback, a.rest, a.nrest, <object>a.context)


cdef object _call_later_method(object self, PyObject **args, Py_ssize_t nargs, PyObject *kwnames):
    cdef lx_sched_args a
    lx_parse_sched_call("call_later", _CALL_LATER_PARAMS, 2, args, nargs, kwnames, &a)
    return _schedule_timer(<Loop>self, &a, True)


cdef object _call_at_method(object self, PyObject **args, Py_ssize_t nargs, PyObject *kwnames):
    cdef lx_sched_args a
    lx_parse_sched_call("call_at", _CALL_AT_PARAMS, 2, args, nargs, kwnames, &a)
    return _schedule_timer(<Loop>self, &a, False)


cdef TimerHandle _schedule_timer(Loop loop, lx_sched_args *a, bint relative):
    """call_later (relative: a.pos[0] is a delay) or call_at (a loop time)."""
    t = <object>a.pos[0]
    callback = <object>a.pos[1]
    if t is None:
        raise TypeError("delay must not be None" if relative else "when cannot be None")
    cdef double w = t
    if w != w:
        raise ValueError("delay must not be NaN" if relative else "when must not be NaN")
    _check_schedulable(loop, callback, "call_later" if relative else "call_at")
    if relative:
        w += loop._clock()
    cdef TimerHandle h = loop._call_at(w, callback, a.rest, a.nrest, <object>a.context)
    h._when_is_int = not relative and type(t) is int
    return h


cdef inline int _check_schedulable(Loop loop, callback, str method) except -1:
    """What every scheduling method checks first (asyncio's order)."""
    if loop._closed:
        loop._check_closed()
    if loop._debug:
        loop._check_thread()
        loop._check_callback(callback, method)
    return 0


cdef PyMethodDef _sched_method_defs[3]
lx_type_set_fastcall_method(
    <PyTypeObject *>Loop, &_sched_method_defs[0], "call_soon", <void *>_call_soon_method,
    "call_soon($self, callback, *args, context=None)\n--\n\n"
    "Run callback(*args) in the next iteration of the loop.")
lx_type_set_fastcall_method(
    <PyTypeObject *>Loop, &_sched_method_defs[1], "call_later", <void *>_call_later_method,
    "call_later($self, delay, callback, *args, context=None)\n--\n\n"
    "Run callback(*args) after delay seconds (a TimerHandle).")
lx_type_set_fastcall_method(
    <PyTypeObject *>Loop, &_sched_method_defs[2], "call_at", <void *>_call_at_method,
    "call_at($self, when, callback, *args, context=None)\n--\n\n"
    "Run callback(*args) at loop time `when` (a TimerHandle).")


# The garbage collector must see the handles the loop holds in C structures
# (ready queue, timer heap, fd table): a pending callback that refers back to
# the loop is a reference cycle, and without this an unclosed loop in such a
# cycle would never be collected (nor warn that it was not closed).  Cython
# generates tp_traverse for the object fields; we chain the C-held ones.
cdef traverseproc _loop_fields_traverse = (<PyTypeObject *>Loop).tp_traverse


cdef int _loop_traverse(PyObject *obj, visitproc visit, void *arg) noexcept:
    cdef int r = _loop_fields_traverse(obj, visit, arg)
    if r:
        return r
    cdef Loop loop = <Loop>obj
    cdef Py_ssize_t fd
    r = lx_rq_traverse(&loop._ready, visit, arg)
    if r:
        return r
    r = lx_th_traverse(&loop._timers, visit, arg)
    if r:
        return r
    for fd in range(loop._fds_cap):
        if loop._fds[fd].reader != NULL:
            r = visit(loop._fds[fd].reader, arg)
            if r:
                return r
        if loop._fds[fd].writer != NULL:
            r = visit(loop._fds[fd].writer, arg)
            if r:
                return r
    return 0


(<PyTypeObject *>Loop).tp_traverse = <traverseproc>_loop_traverse


# Every Loop alive, as an intrusive list (no references: a loop leaves it in
# its dealloc), so a collection can first re-track the pending handles that
# someone other than their loop holds (owned.h).
cdef PyObject *_live_loops = NULL


cdef void _live_loops_add(Loop loop) noexcept:
    global _live_loops
    loop._live_prev = NULL
    loop._live_next = _live_loops
    if _live_loops != NULL:
        (<Loop>_live_loops)._live_prev = <PyObject *>loop
    _live_loops = <PyObject *>loop


cdef void _live_loops_remove(Loop loop) noexcept:
    global _live_loops
    if loop._live_prev != NULL:
        (<Loop>loop._live_prev)._live_next = loop._live_next
    elif _live_loops == <PyObject *>loop:
        _live_loops = loop._live_next
    if loop._live_next != NULL:
        (<Loop>loop._live_next)._live_prev = loop._live_prev
    loop._live_prev = loop._live_next = NULL


def _gc_track_shared_handles(phase, info):
    """gc.callbacks hook: before each collection, the pending handles that
    someone besides their loop holds become visible to it again.

    Only loops that are not running: a running loop is on a thread's stack,
    so it cannot be garbage this time, and scanning a busy loop's 10,000
    timers at every collection would cost more than tracking them."""
    cdef PyObject *p
    if phase == "start":
        p = _live_loops
        while p != NULL:
            if (<Loop>p)._thread_id is None:
                lx_rq_track_shared(&(<Loop>p)._ready)
                lx_th_track_shared(&(<Loop>p)._timers)
            p = (<Loop>p)._live_next


gc.callbacks.append(_gc_track_shared_handles)


# The traverse above looks into the handles only the loop holds (owned.h), so
# when the collector finds the loop garbage it may be those handles that close
# the cycle: clearing the loop must drop them too.
ctypedef int (*_clearproc)(PyObject *) noexcept
cdef _clearproc _loop_fields_clear = <_clearproc>(<PyTypeObject *>Loop).tp_clear


cdef int _loop_clear(PyObject *obj) noexcept:
    cdef Loop loop = <Loop>obj
    lx_rq_clear(&loop._ready)
    lx_th_clear(&loop._timers)
    loop._timer_cancelled_count = 0
    return _loop_fields_clear(obj)


(<PyTypeObject *>Loop).tp_clear = <inquiry><void *>_loop_clear


def _run_until_complete_cb(fut):
    if not fut.cancelled():
        exc = fut.exception()
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            # run_forever() is already unwinding with it; don't stop.
            return
    futures._get_loop(fut).stop()


cdef int _timer_unschedule_if_cancelled(PyObject *obj) noexcept:
    # The timer heap's compaction predicate; must not run Python code.
    cdef TimerHandle h = <TimerHandle>obj
    if h._cancelled:
        h._scheduled = False
        return 1
    return 0


def _format_handle(Handle h):
    # A task step is reported as its task, which says more than the method.
    owner = getattr(h._callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        return repr(owner)
    return str(h)


include "errors.pxi"
include "executor.pxi"
include "transport_base.pxi"
include "sockaddr.pxi"
include "stream_feed.pxi"
include "stream.pxi"
include "tls.pxi"
include "sockets.pxi"
include "process.pxi"
include "datagram.pxi"
include "pipes.pxi"
include "signals.pxi"
