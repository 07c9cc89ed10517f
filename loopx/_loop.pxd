# Declarations of loopx's native types, shared by the include files of _loop.pyx.
from libc.stdint cimport int64_t, uint32_t, uint64_t
from cpython.object cimport PyObject, PyTypeObject, visitproc


cdef extern from "owned.h":
    void lx_owned_share(PyObject *obj)
    void lx_owned_release(PyObject *obj)
    void lx_untrack_atomic_tuple(PyObject *tup)


cdef extern from "handle_call.h":
    int lx_run_in_context(object ctx, object callback, PyObject **argv, size_t nargsf)
    size_t PY_VECTORCALL_ARGUMENTS_OFFSET
    PyObject **lx_tuple_items(tuple t)
    tuple lx_tuple_from_vector(PyObject **v, Py_ssize_t n)
    int lx_raise_pending() except -1


cdef extern from "sched_call.h":
    ctypedef struct PyMethodDef:
        pass
    ctypedef struct lx_sched_args:
        PyObject *pos[2]
        PyObject *context
        PyObject **rest
        Py_ssize_t nrest
    int lx_parse_sched_call(const char *fname, const char **names, Py_ssize_t npos,
                            PyObject **args, Py_ssize_t nargs, PyObject *kwnames,
                            lx_sched_args *out) except -1
    int lx_type_set_fastcall_method(PyTypeObject *t, PyMethodDef *d, const char *name,
                                    void *fn, const char *doc) except -1


cdef extern from "handle_freelist.h":
    void lx_handle_freelist_install(int i, PyTypeObject *t)


cdef extern from "ready_queue.h":
    ctypedef struct lx_ready_queue:
        Py_ssize_t len
    int lx_rq_init(lx_ready_queue *q, Py_ssize_t cap) except -1
    int lx_rq_push(lx_ready_queue *q, PyObject *obj) except -1
    PyObject *lx_rq_pop(lx_ready_queue *q)
    PyObject *lx_rq_at(lx_ready_queue *q, Py_ssize_t i)
    void lx_rq_clear(lx_ready_queue *q)
    void lx_rq_track_shared(lx_ready_queue *q)
    void lx_rq_free(lx_ready_queue *q)
    int lx_rq_traverse(lx_ready_queue *q, visitproc visit, void *arg)


cdef extern from "timer_heap.h":
    ctypedef struct lx_timer:
        double when
        uint64_t seq
        PyObject *handle
    ctypedef struct lx_timer_heap:
        lx_timer *items
        Py_ssize_t len
    int lx_th_init(lx_timer_heap *h, Py_ssize_t cap) except -1
    int lx_th_push(lx_timer_heap *h, double when, PyObject *handle) except -1
    PyObject *lx_th_pop(lx_timer_heap *h)
    Py_ssize_t lx_th_compact(lx_timer_heap *h, int (*dead)(PyObject *) noexcept)
    void lx_th_clear(lx_timer_heap *h)
    void lx_th_track_shared(lx_timer_heap *h)
    void lx_th_free(lx_timer_heap *h)
    int lx_th_traverse(lx_timer_heap *h, visitproc visit, void *arg)


cdef extern from "poller.h" nogil:
    ctypedef struct lx_event:
        int ident
        unsigned int events
    ctypedef struct lx_poller:
        int fd
        int wake_rfd
        int wake_wfd
        lx_event *events
        int cap
    unsigned int LX_READ, LX_WRITE, LX_WAKEUP, LX_PROC_EXIT, LX_ONESHOT, LX_DISARMED
    bint LX_POLLER_WATCHES_PROC, LX_POLLER_ONESHOT
    const char *LX_POLLER_NAME
    int lx_poller_open(lx_poller *p)
    void lx_poller_close(lx_poller *p)
    int lx_poller_modify(lx_poller *p, int fd, unsigned int old, unsigned int new_)
    int lx_poller_wait(lx_poller *p, int64_t timeout_ns)
    int lx_poller_wakeup(lx_poller *p)
    void lx_poller_wakeup_clear(lx_poller *p)
    int lx_poller_watch_exit(lx_poller *p, int pid)
    void lx_poller_grow_events(lx_poller *p)
    int64_t lx_monotonic_ns()


cdef class Handle:
    cdef:
        # readonly: asyncio.Handle's private attributes of these names, which
        # test helpers and diagnostics read (so does _args, a property).
        readonly object _callback
        # The arguments: up to two are kept in the handle itself, so the
        # usual call_soon(cb, arg) allocates no tuple (one less GC object per
        # future callback, task wake-up and asyncio.sleep); more go in
        # _args_all.
        Py_ssize_t _nargs
        object _arg0
        object _arg1
        tuple _args_all       # all of them when _nargs > 2, else None
        readonly object _context
        readonly Loop _loop
        readonly bint _cancelled
        object _traceback     # debug mode: where the handle was created
        object _repr          # debug mode: repr saved at cancel()
        object __weakref__

    cdef void _cancel(self)
    cdef tuple _args_tuple(self)
    cdef str _callback_repr(self)
    cdef int _run_callback(self) except -1
    cdef int _callback_failed(self) except -1
    cdef _report_exception(self, exc)


cdef class TimerHandle(Handle):
    cdef:
        double _deadline      # the loop time it is due at (when())
        bint _when_is_int     # call_at() was given an int: when() returns one
        readonly bint _scheduled   # True while the timer heap holds it (asyncio's name)

    cdef bint _same_as(self, TimerHandle o)


cdef class NativeReader:
    # An object the loop calls directly when its fd is readable, in place of
    # a Handle in the fd table and the ready queue: the stream transports.
    # It saves an idle connection a Handle, a bound method and their memory,
    # and each read a Python-level call.
    cdef object _read_context     # entered around each _read_event
    cdef int _read_event(self) except -1


cdef struct FdWatch:
    # One slot per fd, indexed by fd: the add_reader/add_writer handles
    # (owned references or NULL) and the state registered with the poller
    # (LX_READ | LX_WRITE, and the one-shot states of csrc/poller.h).
    PyObject *reader       # a Handle, or a NativeReader
    PyObject *writer       # a Handle
    # The transport using this fd (borrowed: the transport clears it when it
    # closes or dies), for _ensure_fd_no_transport.
    PyObject *transport
    uint32_t events
    # The last sock_recv of this fd read less than it asked for: the socket
    # was drained then, and the next sock_recv waits without trying a recv
    # first (sockets.pxi).  A hint: where wrong, it costs one loop iteration.
    bint recv_drained


cdef class Loop:
    cdef:
        lx_ready_queue _ready
        lx_timer_heap _timers
        # every Loop not yet deallocated, for _gc_track_shared_handles
        PyObject *_live_prev
        PyObject *_live_next
        public Py_ssize_t _timer_cancelled_count
        # public: asyncio's loop has it, and Sanic clears it after a stop()
        # that ended a run, so its next run_until_complete() is not cut short
        public bint _stopping
        readonly bint _closed   # readonly: asyncio's loop has it, and code reads it
        public bint _debug
        object _thread_id
        public double slow_callback_duration
        # time() is not the native clock's: a subclass overrides it, or it is
        # set on the instance (mock.patch.object(loop, "time")).  Then timers
        # are scheduled and fired by what loop.time() returns, as in asyncio.
        bint _py_clock
        unsigned long _fork_generation  # see _check_same_process
        object _current_handle

        # poller
        lx_poller _poller
        int64_t _last_poll_ns  # when the last poll returned
        uint64_t _poll_count   # polls so far (orders events after work done meanwhile)
        # NativeReaders to run after the next poll as if it had reported
        # their fds readable: what they hold is, to asyncio, still in the
        # kernel (datagram.pxi's held datagrams).
        list _readable_after_poll
        bint _iteration_polled # polled since run_forever() started
        FdWatch *_fds
        Py_ssize_t _fds_cap
        Py_ssize_t _fds_watched  # fds with read or write interest registered
        # fd -> the object (not an int) add_reader/add_writer watched it by,
        # while it has a watch: remove_reader(sock) after sock.close() finds
        # its fd here, as selectors do by searching their keys.
        dict _watch_objs

        # cross-thread wakeup (lx_poller_wakeup): _wake_pending is set by
        # whoever wakes the poller and cleared by the loop when it drains the
        # wakeup, so a burst of call_soon_threadsafe costs one syscall.
        bint _wake_pending
        dict _exit_watchers    # pid -> subprocess transport (kqueue EVFILT_PROC)

        # signals: Python's wakeup fd writes signal numbers into _sig_wsock;
        # the loop reads them from _sig_rsock.
        object _sig_rsock
        object _sig_wsock
        int _sig_rfd
        dict _signal_handlers

        public dict _unix_server_sockets  # 3.13 create_unix_server(cleanup_socket=)

        object _exception_handler
        object _task_factory
        dict _loop_kwargs       # {"loop": self} while running: create_future, create_task
        readonly object _default_executor
        bint _executor_shutdown_called
        object _asyncgens
        bint _asyncgens_shutdown_called
        object _old_agen_hooks
        object _coro_origin_depth
        object __weakref__

    cdef _check_closed(self)
    cdef _check_thread(self)
    cdef _check_same_process(self)
    cdef _check_callback(self, callback, str method)
    cdef Handle _call_soon(self, callback, tuple args, context)
    cdef Handle _call_soon_vec(self, callback, PyObject **argv, Py_ssize_t nargs, context)
    cdef TimerHandle _call_at(self, double when, callback, PyObject **argv, Py_ssize_t nargs,
                              context)
    cdef double _clock(self) except? -1.0
    cdef double _due_before(self) except? -1.0
    cdef bint _timer_due(self) except -1
    cdef int _iterate(self) except -1
    cdef int _poll(self, int64_t timeout_ns) except -1
    cdef int _run_handle_debug(self, Handle h) except -1
    cdef _wakeup(self)
    cdef _drain_wakeup(self)
    cdef _drain_signals(self)
    cdef _child_exit_seen(self, int pid)
    cdef int _fd_grow(self, int fd) except -1
    cdef int _fd_set_interest(self, int fd, uint32_t interest, bint oneshot) except -1
    cdef int _check_fd_no_transport(self, int fd, fileobj) except -1
    cdef Handle _add_watch(self, object fileobj, bint writer, callback, tuple args)
    cdef int _add_native_reader(self, int fd, NativeReader r, bint in_context,
                                bint oneshot) except -1
    cdef int _fd_rearm(self, int fd) except -1
    cdef int _run_native_reader(self, NativeReader r) except -1
    cdef bint _remove_watch(self, object fileobj, bint writer) except -1
    cdef int _watched_fd_of(self, fileobj) except -2
    cdef void _release_native(self) noexcept
