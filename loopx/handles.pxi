# Handle and TimerHandle: a callback, its arguments and its contextvars
# context, queued by the loop.  Included into _loop.pyx.
#
# Handles are the most allocated objects of a busy loop (one per call_soon,
# per task step, per future callback, per asyncio.sleep), so they are created
# without running __init__ (new_handle / new_timer_handle fill the fields from
# C), and dead ones are kept for reuse (csrc/handle_freelist.h): a reused
# handle does not count toward the next garbage collection.  They are made
# untracked by the GC, for the queue or heap to own (see below); the fd and
# signal tables track theirs (lx_owned_share).
#
# A scheduled handle is also hidden from the garbage collector while only the
# loop holds it, and its argument tuple when that holds no GC object: with
# thousands queued, every collection used to walk them all, in vain
# (csrc/owned.h has the rules that keep cycles through handles collectable).


cdef class Handle:
    """A callback scheduled by the loop; cancel() stops it from running."""

    def __init__(self, *args, **kwargs):
        raise TypeError("loopx handles are created by the loop, not directly")

    # -- public API (asyncio.Handle) --

    def cancel(self):
        if not self._cancelled:
            self._cancel()

    def cancelled(self):
        return self._cancelled

    def get_context(self):
        return self._context

    def __repr__(self):
        info = [type(self).__name__]
        info.extend(self._repr_info())
        return "<" + " ".join(info) + ">"

    @property
    def __class__(self):
        # What isinstance() sees (see _HandleInterface).
        return _HandleInterface

    # -- internals --

    cdef void _cancel(self):
        self._cancelled = True
        if self._loop is not None and self._loop._debug:
            # Keep what was cancelled visible in debug reprs.
            self._repr = repr(self)
        # Drop references now: a cancelled handle may sit in a queue for a
        # while and must not keep its callback's objects alive.
        self._callback = None
        self._nargs = 0
        self._arg0 = None
        self._arg1 = None
        self._args_all = None

    cdef str _callback_repr(self):
        return _format_callback(self._callback, self._args_tuple(),
                                self._loop is not None and self._loop._debug)

    cdef tuple _args_tuple(self):
        """The arguments as a tuple, None for none (reprs, errors, ==)."""
        if self._nargs == 0:
            return None
        if self._nargs == 1:
            return (self._arg0,)
        if self._nargs == 2:
            return (self._arg0, self._arg1)
        return self._args_all

    @cython.wraparound(True)   # [-1] below (the module default is off)
    def _repr_info(self):
        info = []
        if self._cancelled:
            info.append("cancelled")
        if self._callback is not None:
            info.append(self._callback_repr())
        elif self._repr is not None:
            return [self._repr]
        if self._source_traceback:
            frame = self._source_traceback[-1]
            info.append(f"created at {frame[0]}:{frame[1]}")
        return info

    @property
    def _source_traceback(self):
        return self._traceback

    def _run(self):
        """asyncio.Handle's own: run the callback now, as the loop would
        (test helpers that fast-forward timers call it, then cancel())."""
        self._run_callback()

    @property
    def _args(self):
        # asyncio.Handle's attribute: the arguments; None once cancelled.
        if self._cancelled:
            return None
        args = self._args_tuple()
        return () if args is None else args

    cdef int _run_callback(self) except -1:
        """Run the callback in its context.

        Returns 0 after the callback ran or its exception went to the loop's
        exception handler; raises only SystemExit and KeyboardInterrupt, which
        must stop the loop (asyncio's rule).
        """
        # Locals own the callback and the arguments for the call: a callback
        # may cancel its own handle, which drops the handle's references.
        cdef object callback = self._callback
        cdef object a0 = self._arg0, a1 = self._arg1
        cdef tuple args
        cdef PyObject *stack[3]
        cdef int rc
        if self._nargs <= 2:
            # stack[0] is scratch space the callee may use (the OFFSET flag),
            # which spares a bound method copying the vector to prepend self.
            stack[1] = <PyObject *>a0
            stack[2] = <PyObject *>a1
            rc = lx_run_in_context(self._context, callback, &stack[1],
                                   <size_t>self._nargs | PY_VECTORCALL_ARGUMENTS_OFFSET)
        else:
            args = self._args_all
            rc = lx_run_in_context(self._context, callback, lx_tuple_items(args),
                                   <size_t>len(args))
        if rc < 0:
            self._callback_failed()
        return 0

    cdef int _callback_failed(self) except -1:
        """The callback raised (its exception is set): to the exception
        handler, but for SystemExit and KeyboardInterrupt, which propagate."""
        try:
            lx_raise_pending()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._report_exception(exc)
        return 0

    cdef _report_exception(self, exc):
        context = {
            "message": "Exception in callback " + self._callback_repr(),
            "exception": exc,
            "handle": self,
        }
        if self._traceback:
            context["source_traceback"] = self._traceback
        self._loop.call_exception_handler(context)


cdef class TimerHandle(Handle):
    """A callback scheduled for a point in loop time (loop.time())."""

    def when(self):
        # call_at() given an int: asyncio hands the int back, and code checks.
        if self._when_is_int:
            return int(self._deadline)
        return self._deadline

    @property
    def _when(self):
        # asyncio.TimerHandle's attribute, which code and tests read.
        return self.when()

    def cancel(self):
        if not self._cancelled:
            if self._scheduled and self._loop is not None:
                # The heap keeps the entry until it reaches the top or the
                # heap is compacted; the loop counts how many are dead.
                self._loop._timer_cancelled_count += 1
            self._cancel()

    def __hash__(self):
        return hash(self._deadline)

    def __richcmp__(self, other, int op):
        if not isinstance(other, TimerHandle):
            return NotImplemented
        cdef TimerHandle o = <TimerHandle>other
        if op == Py_LT:
            return self._deadline < o._deadline
        if op == Py_LE:
            return self._deadline < o._deadline or self._same_as(o)
        if op == Py_GT:
            return self._deadline > o._deadline
        if op == Py_GE:
            return self._deadline > o._deadline or self._same_as(o)
        if op == Py_EQ:
            return self._same_as(o)
        if op == Py_NE:
            return not self._same_as(o)
        return NotImplemented

    cdef bint _same_as(self, TimerHandle o):
        return (self is o) or (self._deadline == o._deadline
                               and self._callback == o._callback
                               and self._args_tuple() == o._args_tuple()
                               and self._cancelled == o._cancelled)

    def _repr_info(self):
        info = Handle._repr_info(self)
        pos = 1 if self._cancelled else 0
        info.insert(pos, f"when={self.when()}")
        return info

    @property
    def __class__(self):
        return _TimerHandleInterface


cdef object _make_interface_class(str name, tuple bases):
    """A class that a native class reports as its __class__, so that
    isinstance() with the asyncio classes in bases holds (explained at the
    top of transport_base.pxi, whose transports use this too): asyncio's
    classes have __slots__, so the native ones cannot derive from them.
    type(obj) is still the native class."""
    return type(name, bases, {
        "__slots__": (),
        "__module__": "loopx._loop",
        "__doc__": f"What isinstance() sees of loopx's native {name}.",
    })


# isinstance(handle, asyncio.Handle) and isinstance(timer_handle,
# asyncio.TimerHandle) hold, as code checks (telemetry reading when() off
# timer handles, test helpers walking a loop's timers).
cdef object _HandleInterface = _make_interface_class("Handle", (events.Handle,))
cdef object _TimerHandleInterface = _make_interface_class("TimerHandle", (events.TimerHandle,))


cdef inline int _set_args(Handle h, PyObject **argv, Py_ssize_t n) except -1:
    """Store the n arguments at argv (borrowed) in the handle."""
    h._nargs = n
    if n > 2:
        h._args_all = lx_tuple_from_vector(argv, n)
        lx_untrack_atomic_tuple(<PyObject *>h._args_all)
    elif n > 0:
        h._arg0 = <object>argv[0]
        if n == 2:
            h._arg1 = <object>argv[1]
    return 0


cdef inline int _fill_handle(Handle h, Loop loop, object callback, PyObject **argv,
                             Py_ssize_t nargs, object context) except -1:
    h._loop = loop
    h._callback = callback
    _set_args(h, argv, nargs)
    h._context = context
    if loop._debug:
        h._traceback = _extract_stack()
    return 0


cdef inline Handle new_handle(Loop loop, object callback, PyObject **argv,
                              Py_ssize_t nargs, object context):
    cdef Handle h = Handle.__new__(Handle)
    _fill_handle(h, loop, callback, argv, nargs, context)
    return h


cdef inline Handle new_handle_from_tuple(Loop loop, object callback, tuple args,
                                         object context):
    """new_handle for arguments in a tuple, or None for none."""
    if args is None:
        return new_handle(loop, callback, NULL, 0, context)
    return new_handle(loop, callback, lx_tuple_items(args), len(args), context)


cdef inline TimerHandle new_timer_handle(Loop loop, double when, object callback,
                                         PyObject **argv, Py_ssize_t nargs, object context):
    cdef TimerHandle h = TimerHandle.__new__(TimerHandle)
    _fill_handle(h, loop, callback, argv, nargs, context)
    h._deadline = when
    return h


# 'name(args) at file:line' for reprs and error messages: asyncio's own
# formatter, so handles read exactly as asyncio's.  From 3.13 it shows the
# arguments only in debug mode (they may hold secrets).
if "debug" in inspect.signature(format_helpers._format_callback_source).parameters:
    def _format_callback(callback, args, debug):
        return format_helpers._format_callback_source(callback, args, debug=debug)
else:
    def _format_callback(callback, args, debug):
        return format_helpers._format_callback_source(callback, args)


def _extract_stack():
    """The caller's stack, for debug-mode source tracebacks.

    Cython methods make no Python frames, so frame 0 is already the code that
    called into the loop.
    """
    frame = sys._getframe(0)
    stack = traceback.StackSummary.extract(
        traceback.walk_stack(frame), limit=_DEBUG_STACK_DEPTH, lookup_lines=False)
    stack.reverse()
    return stack
