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

    # -- internals --

    cdef void _cancel(self):
        self._cancelled = True
        if self._loop is not None and self._loop._debug:
            # Keep what was cancelled visible in debug reprs.
            self._repr = repr(self)
        # Drop references now: a cancelled handle may sit in a queue for a
        # while and must not keep its callback's objects alive.
        self._callback = None
        self._args = None

    @cython.wraparound(True)   # [-1] below (the module default is off)
    def _repr_info(self):
        info = []
        if self._cancelled:
            info.append("cancelled")
        if self._callback is not None:
            info.append(_format_callback(self._callback, self._args or ()))
        elif self._repr is not None:
            return [self._repr]
        if self._source_traceback:
            frame = self._source_traceback[-1]
            info.append(f"created at {frame[0]}:{frame[1]}")
        return info

    @property
    def _source_traceback(self):
        return self._traceback

    cdef int _run(self) except -1:
        """Run the callback in its context.

        Returns 0 after the callback ran or its exception went to the loop's
        exception handler; raises only SystemExit and KeyboardInterrupt, which
        must stop the loop (asyncio's rule).
        """
        if lx_run_in_context(self._context, self._callback, self._args) < 0:
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
            "message": "Exception in callback " + _format_callback(self._callback, self._args or ()),
            "exception": exc,
            "handle": self,
        }
        if self._traceback:
            context["source_traceback"] = self._traceback
        self._loop.call_exception_handler(context)


cdef class TimerHandle(Handle):
    """A callback scheduled for a point in loop time (loop.time())."""

    def when(self):
        return self._when

    def cancel(self):
        if not self._cancelled:
            if self._scheduled and self._loop is not None:
                # The heap keeps the entry until it reaches the top or the
                # heap is compacted; the loop counts how many are dead.
                self._loop._timer_cancelled_count += 1
            self._cancel()

    def __hash__(self):
        return hash(self._when)

    def __richcmp__(self, other, int op):
        if not isinstance(other, TimerHandle):
            return NotImplemented
        cdef TimerHandle o = <TimerHandle>other
        if op == Py_LT:
            return self._when < o._when
        if op == Py_LE:
            return self._when < o._when or self._same_as(o)
        if op == Py_GT:
            return self._when > o._when
        if op == Py_GE:
            return self._when > o._when or self._same_as(o)
        if op == Py_EQ:
            return self._same_as(o)
        if op == Py_NE:
            return not self._same_as(o)
        return NotImplemented

    cdef bint _same_as(self, TimerHandle o):
        return (self is o) or (self._when == o._when
                               and self._callback == o._callback
                               and self._args == o._args
                               and self._cancelled == o._cancelled)

    def _repr_info(self):
        info = Handle._repr_info(self)
        pos = 1 if self._cancelled else 0
        info.insert(pos, f"when={self._when}")
        return info


cdef inline int _fill_handle(Handle h, Loop loop, object callback, tuple args,
                             object context) except -1:
    h._loop = loop
    h._callback = callback
    if args:
        h._args = args
        lx_untrack_atomic_tuple(<PyObject *>args)
    h._context = context
    if loop._debug:
        h._traceback = _extract_stack()
    return 0


cdef inline Handle new_handle(Loop loop, object callback, tuple args, object context):
    cdef Handle h = Handle.__new__(Handle)
    _fill_handle(h, loop, callback, args, context)
    return h


cdef inline TimerHandle new_timer_handle(Loop loop, double when, object callback,
                                         tuple args, object context):
    cdef TimerHandle h = TimerHandle.__new__(TimerHandle)
    _fill_handle(h, loop, callback, args, context)
    h._when = when
    return h


def _format_callback(callback, args):
    """'name(arg, ...) at file:line' for reprs and error messages."""
    if isinstance(callback, functools.partial):
        text = _format_callback(callback.func, None)
        inner = [repr(a) for a in callback.args]
        inner += [f"{k}={v!r}" for k, v in callback.keywords.items()]
        text = f"functools.partial({text}, {', '.join(inner)})" if inner else f"functools.partial({text})"
    else:
        text = getattr(callback, "__qualname__", None) or getattr(callback, "__name__", None) or repr(callback)
    if args is not None:
        text += "(" + ", ".join(reprlib.repr(a) for a in args) + ")"
    code = getattr(getattr(callback, "__func__", callback), "__code__", None)
    if code is not None:
        text += f" at {code.co_filename}:{code.co_firstlineno}"
    return text


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
