# cython: language_level=3
"""loopx's proactor: IOCP operations for asyncio's proactor event loop.

``Proactor`` has the interface ``asyncio.proactor_events.BaseProactorEventLoop``
and ``asyncio.windows_events.ProactorEventLoop`` call on their proactor
(``IocpProactor``'s), built on loopx's completion core, csrc/iocp.h.  asyncio's
own Windows loop (transports, pipes, subprocesses, Ctrl-C through the
self-pipe) runs on top of it unchanged; see loopx/_windows.py.

Ownership (the core's one rule).  Each operation is an ``_Op`` that owns a
malloc'd ``lx_iocp_op`` and the buffers handed to the kernel.  From a
successful submit until ``lx_iocp_wait`` hands the op back, the op holds a
reference to itself (so ``op.user`` stays valid) and to its future, its
socket/handle object and its buffers: the kernel owns that memory until the
completion, so cancelling only *asks* for an early completion
(``lx_iocp_cancel``) and ``close()`` waits until every op has come back.

Errors are the core's codes (Win32/WSA on Windows; errno values over the
Linux emulation in tests/iocp_emu), turned into the OSError subclass Python
picks for them.  Only ``lx_iocp_wait`` blocks, and only it runs without the
GIL.
"""
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.ref cimport Py_INCREF, Py_DECREF
from libc.stdint cimport int64_t, intptr_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memset

import asyncio
import math
import socket
import sys
import time
import weakref

from asyncio import base_futures, exceptions
from asyncio.log import logger


cdef extern from "iocp.h" nogil:
    ctypedef void *HANDLE
    ctypedef unsigned long DWORD
    # UINT_PTR on Windows, an fd in the emulation: Cython converts through the
    # C typedef, so the width and signedness declared here do not matter.
    ctypedef Py_ssize_t SOCKET
    SOCKET INVALID_SOCKET

    int AF_INET
    int AF_INET6
    cdef struct sockaddr:
        unsigned short sa_family
    cdef struct sockaddr_storage:
        unsigned short ss_family
    cdef struct in_addr:
        pass
    cdef struct in6_addr:
        pass
    cdef struct sockaddr_in:
        unsigned short sin_family
        unsigned short sin_port
        in_addr sin_addr
    cdef struct sockaddr_in6:
        unsigned short sin6_family
        unsigned short sin6_port
        unsigned long sin6_flowinfo
        in6_addr sin6_addr
        unsigned long sin6_scope_id
    int inet_pton(int af, const char *src, void *dst)
    const char *inet_ntop(int af, const void *src, char *dst, size_t size)
    unsigned short htons(unsigned short)
    unsigned short ntohs(unsigned short)
    unsigned long htonl(unsigned long)
    unsigned long ntohl(unsigned long)

    DWORD ERROR_OPERATION_ABORTED
    DWORD ERROR_BROKEN_PIPE
    DWORD ERROR_MORE_DATA
    DWORD ERROR_NOT_FOUND
    DWORD ERROR_NETNAME_DELETED
    DWORD ERROR_PORT_UNREACHABLE
    DWORD ERROR_INVALID_PARAMETER
    DWORD ERROR_INVALID_HANDLE
    DWORD WSAECONNRESET
    DWORD WSAEINVAL
    DWORD WSAEMSGSIZE

    int LX_IOCP_MAX_BATCH

    ctypedef struct lx_iocp_buf:
        const void *base
        size_t len

    cdef struct _lx_accept_u:
        SOCKET sock
        sockaddr_storage local
        sockaddr_storage peer
        int local_len
        int peer_len
    cdef struct _lx_from_u:
        sockaddr_storage addr
        int addr_len
    cdef union _lx_u:
        _lx_accept_u accept
        _lx_from_u from_ "from"

    ctypedef struct lx_iocp_op:
        void *user
        DWORD bytes
        DWORD error
        int pending
        _lx_u u

    HANDLE lx_iocp_open()
    DWORD lx_iocp_close(HANDLE port)
    DWORD lx_iocp_associate(HANDLE port, HANDLE h)
    DWORD lx_iocp_recv(lx_iocp_op *op, SOCKET s, void *buf, size_t len)
    DWORD lx_iocp_send(lx_iocp_op *op, SOCKET s, const lx_iocp_buf *bufs, int nbufs)
    DWORD lx_iocp_recvfrom(lx_iocp_op *op, SOCKET s, void *buf, size_t len)
    DWORD lx_iocp_sendto(lx_iocp_op *op, SOCKET s, const void *buf, size_t len,
                         const sockaddr *to, int tolen)
    DWORD lx_iocp_accept(lx_iocp_op *op, SOCKET listener)
    DWORD lx_iocp_connect(lx_iocp_op *op, SOCKET s, const sockaddr *to, int tolen)
    DWORD lx_iocp_pipe_connect(lx_iocp_op *op, HANDLE port, HANDLE pipe)
    DWORD lx_iocp_read(lx_iocp_op *op, HANDLE h, void *buf, size_t len)
    DWORD lx_iocp_write(lx_iocp_op *op, HANDLE h, const void *buf, size_t len)
    DWORD lx_iocp_wait_process(lx_iocp_op *op, HANDLE port, HANDLE process)
    DWORD lx_iocp_cancel(lx_iocp_op *op)
    int lx_iocp_wait(HANDLE port, lx_iocp_op **out, int max, int64_t timeout_ns)


cdef extern from *:
    """
    /* A core error code as the exception Python raises for it: Windows
     * codes through PyErr_SetExcFromWindowsErr (which picks the subclass
     * from the winerror), the emulation's errno values through
     * OSError(errno, strerror). */
    static PyObject *lx_proactor_error(unsigned long err)
    {
    #ifdef _WIN32
        PyObject *type, *value, *tb;
        PyErr_SetExcFromWindowsErr(PyExc_OSError, (int)err);
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        Py_XDECREF(type);
        Py_XDECREF(tb);
        return value;
    #else
        return PyObject_CallFunction(PyExc_OSError, "is", (int)err, strerror((int)err));
    #endif
    }

    /* Why lx_iocp_open returned NULL. */
    static unsigned long lx_proactor_open_error(void)
    {
    #ifdef _WIN32
        return GetLastError();
    #else
        return (unsigned long)errno;
    #endif
    }
    """
    object lx_proactor_error(unsigned long err)
    unsigned long lx_proactor_open_error()


# What a completion turns into (see _Op.result).
cdef enum Action:
    ACT_BYTES        # recv: bytes
    ACT_INTO         # recv_into: count
    ACT_FROM         # recvfrom: (bytes, addr)
    ACT_FROM_INTO    # recvfrom_into: (count, addr)
    ACT_SENT         # send, sendto: count
    ACT_ACCEPT       # accept: (conn, addr)
    ACT_CONNECT      # connect: the socket
    ACT_PIPE         # accept_pipe: the pipe
    ACT_WAIT         # wait_for_handle: True, or False on timeout

# Ops the kernel still owned when close() gave up waiting: never freed.
_leaked = []


cdef inline object _error(DWORD err):
    return lx_proactor_error(err)


cdef int _fill_addr(int family, object address, sockaddr_storage *ss) except -1:
    """Write a numeric (host, port[, flowinfo, scope_id]) address into *ss and
    return its length.  Like IocpProactor's, names are not resolved."""
    cdef sockaddr_in *sin
    cdef sockaddr_in6 *sin6
    if not isinstance(address, tuple):
        raise TypeError(f"address must be a tuple, not {type(address).__name__}")
    if family == AF_INET6 and len(address) in (2, 4):
        flowinfo, scope_id = address[2:] if len(address) == 4 else (0, 0)
    elif family == AF_INET and len(address) == 2:
        flowinfo = scope_id = 0
    else:
        raise ValueError(f"illegal address for this socket's family: {address!r}")
    host, port = address[0], address[1]
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, not {type(host).__name__}")
    port = int(port)
    if not 0 <= port <= 0xffff:
        raise OverflowError("port must be 0-65535.")
    raw = host.encode("ascii", "replace")
    memset(ss, 0, sizeof(sockaddr_storage))
    if family == AF_INET:
        sin = <sockaddr_in *>ss
        sin.sin_family = AF_INET
        sin.sin_port = htons(port)
        if inet_pton(AF_INET, raw, &sin.sin_addr) != 1:
            raise _error(WSAEINVAL)
        return sizeof(sockaddr_in)
    sin6 = <sockaddr_in6 *>ss
    sin6.sin6_family = AF_INET6
    sin6.sin6_port = htons(port)
    sin6.sin6_flowinfo = htonl(flowinfo)
    sin6.sin6_scope_id = scope_id
    if inet_pton(AF_INET6, raw, &sin6.sin6_addr) != 1:
        raise _error(WSAEINVAL)
    return sizeof(sockaddr_in6)


cdef object _addr_tuple(sockaddr_storage *ss, int length):
    """The Python form of a sender's address, as socket.recvfrom gives it."""
    cdef char text[64]
    cdef sockaddr_in *sin
    cdef sockaddr_in6 *sin6
    if length <= 0:
        return None
    if ss.ss_family == AF_INET:
        sin = <sockaddr_in *>ss
        if inet_ntop(AF_INET, &sin.sin_addr, text, sizeof(text)) == NULL:
            return None
        return (text.decode("ascii"), ntohs(sin.sin_port))
    if ss.ss_family == AF_INET6:
        sin6 = <sockaddr_in6 *>ss
        if inet_ntop(AF_INET6, &sin6.sin6_addr, text, sizeof(text)) == NULL:
            return None
        return (text.decode("ascii"), ntohs(sin6.sin6_port),
                ntohl(sin6.sin6_flowinfo), sin6.sin6_scope_id)
    return None


class _OpFuture(asyncio.Future):
    """The future of one operation: cancelling it cancels the operation.

    The operation itself still completes (it owns kernel memory until then);
    the Proactor drops its result.  Like asyncio's _OverlappedFuture, a
    failed cancel is reported to the loop's exception handler.  No frame of
    ours is in a debug source traceback (compiled code has none), so it
    already ends at the caller of the Proactor method.
    """

    def __init__(self, op, *, loop):
        super().__init__(loop=loop)
        self._ov = op

    def _repr_info(self):
        # The C Future has no _repr_info method to extend; this is what it uses.
        info = base_futures._future_repr_info(self)
        if self._ov is not None:
            state = "pending" if self._ov.pending else "completed"
            info.insert(1, f"overlapped=<{state}, {self._ov.address:#x}>")
        return info

    def __repr__(self):
        return f"<{type(self).__name__} {' '.join(self._repr_info())}>"

    def _cancel_overlapped(self):
        op, self._ov = self._ov, None
        if op is None:
            return
        try:
            op.cancel()
        except OSError as exc:
            context = {
                "message": "Cancelling an overlapped future failed",
                "exception": exc,
                "future": self,
            }
            if self._source_traceback:
                context["source_traceback"] = self._source_traceback
            self._loop.call_exception_handler(context)

    def cancel(self, msg=None):
        self._cancel_overlapped()
        return super().cancel(msg=msg)

    def set_exception(self, exception):
        super().set_exception(exception)
        self._cancel_overlapped()

    def set_result(self, result):
        super().set_result(result)
        self._ov = None


cdef class _Op:
    """One operation: the lx_iocp_op, its buffers, and what to do with its
    completion."""
    cdef lx_iocp_op *op
    cdef Proactor proactor
    cdef object fut
    cdef object obj             # the socket/handle: alive until completion
    cdef object extra           # accept: the listener; wait: its timeout timer
    cdef Py_buffer view         # a caller's buffer (send, recv_into, ...)
    cdef bint has_view
    cdef char *buf              # our buffer (recv, recvfrom)
    cdef Action action
    cdef bint in_flight
    cdef bint timed_out
    cdef sockaddr_storage to    # connect/sendto: kept until completion

    def __cinit__(self):
        self.op = <lx_iocp_op *>calloc(1, sizeof(lx_iocp_op))
        if self.op == NULL:
            raise MemoryError()
        self.op.user = <void *>self

    def __dealloc__(self):
        # Never reached in flight: the op holds a reference to itself then.
        self._release()
        free(self.op)

    cdef void _release(self):
        if self.has_view:
            PyBuffer_Release(&self.view)
            self.has_view = False
        free(self.buf)
        self.buf = NULL

    cdef int _alloc(self, Py_ssize_t n) except -1:
        self.buf = <char *>malloc(n if n > 0 else 1)
        if self.buf == NULL:
            raise MemoryError()
        return 0

    cdef int _view(self, object data, int flags) except -1:
        try:
            PyObject_GetBuffer(data, &self.view, flags)
        except BufferError:
            # What socket.recv_into (and _overlapped) say for read-only data.
            raise TypeError(f"a read-write bytes-like object is required, "
                            f"not '{type(data).__name__}'") from None
        self.has_view = True
        return 0

    @property
    def pending(self):
        """True while the kernel owns the operation."""
        return self.in_flight

    @property
    def address(self):
        return <size_t>self.op

    def cancel(self):
        """Ask for an early completion; a no-op once it has completed."""
        cdef DWORD err
        if not self.in_flight:
            return
        err = lx_iocp_cancel(self.op)
        if err and err != ERROR_NOT_FOUND:
            raise _error(err)

    def _expire(self):
        """wait_for_handle's timeout: end the wait; its result is False."""
        if self.in_flight:
            self.timed_out = True
            self.cancel()

    cdef object result(self):
        """The future's value for a completion (called once, on the loop)."""
        cdef DWORD err = self.op.error
        cdef DWORD n = self.op.bytes
        cdef Action act = self.action
        reading = act in (ACT_BYTES, ACT_INTO, ACT_FROM, ACT_FROM_INTO)
        if reading and (err == ERROR_MORE_DATA or err == WSAEMSGSIZE):
            # A datagram or pipe message longer than the buffer: its first
            # part is the result, as with _overlapped and with recv() on Unix.
            err = 0
        if err == ERROR_BROKEN_PIPE and reading:
            err = 0  # the writer went away: end of file
            n = 0
        if err:
            if act in (ACT_FROM, ACT_FROM_INTO) and err in (WSAECONNRESET, ERROR_PORT_UNREACHABLE):
                # An ICMP "port unreachable" for an earlier sendto (Windows
                # reports it on the next receive): nothing was received.
                return (b"", None) if act == ACT_FROM else (0, None)
            exc = _error(err)
            if reading or act == ACT_SENT:
                if err in (ERROR_OPERATION_ABORTED, ERROR_NETNAME_DELETED):
                    # Aborted under a live future: the socket was closed.
                    raise ConnectionResetError(*exc.args)
            if act == ACT_WAIT and err == ERROR_OPERATION_ABORTED and self.timed_out:
                return False
            raise exc
        if act == ACT_BYTES:
            return PyBytes_FromStringAndSize(self.buf, n)
        if act == ACT_INTO or act == ACT_SENT:
            return n
        if act == ACT_FROM:
            return (PyBytes_FromStringAndSize(self.buf, n),
                    _addr_tuple(&self.op.u.from_.addr, self.op.u.from_.addr_len))
        if act == ACT_FROM_INTO:
            return (n, _addr_tuple(&self.op.u.from_.addr, self.op.u.from_.addr_len))
        if act == ACT_ACCEPT:
            return self._accepted()
        if act == ACT_CONNECT or act == ACT_PIPE:
            return self.obj
        return True  # ACT_WAIT

    cdef object _accepted(self):
        cdef SOCKET s = self.op.u.accept.sock
        listener = self.extra
        self.op.u.accept.sock = INVALID_SOCKET  # ours now: closed on any error below
        try:
            conn = socket.socket(listener.family, listener.type, listener.proto, fileno=s)
        except BaseException:
            socket.close(s)
            raise
        try:
            conn.settimeout(listener.gettimeout())
            return conn, conn.getpeername()
        except BaseException:
            conn.close()
            raise

    cdef void discard(self):
        """Drop what a completion nobody waits for produced."""
        cdef SOCKET s
        if self.action == ACT_ACCEPT and not self.op.error:
            s = self.op.u.accept.sock
            self.op.u.accept.sock = INVALID_SOCKET
            if s != INVALID_SOCKET:
                try:
                    socket.close(s)
                except OSError:
                    pass


cdef class Proactor:
    """The proactor of asyncio's proactor loop, over loopx's IOCP core."""
    cdef HANDLE port
    cdef object _loop
    cdef list _results
    cdef set _inflight            # for close(); each op also holds itself
    cdef object _registered       # associated objects (each once per port)
    cdef object _stopped_serving
    cdef public double close_timeout

    def __cinit__(self):
        self.port = lx_iocp_open()
        if self.port == NULL:
            raise _error(lx_proactor_open_error())
        self._results = []
        self._inflight = set()
        self._registered = weakref.WeakSet()
        self._stopped_serving = weakref.WeakSet()
        # close() waits this long for cancelled ops before giving up on them.
        self.close_timeout = 30.0

    def __dealloc__(self):
        # In-flight ops reference the proactor, so none is left here.
        if self.port != NULL:
            lx_iocp_close(self.port)
            self.port = NULL

    def __repr__(self):
        state = "closed" if self.port == NULL else f"overlapped#={len(self._inflight)}"
        return f"<{type(self).__name__} {state} result#={len(self._results)}>"

    cdef int _check_closed(self) except -1:
        if self.port == NULL:
            raise RuntimeError("Proactor is closed")
        return 0

    def set_loop(self, loop):
        self._loop = loop

    @property
    def in_flight(self):
        """How many operations the kernel holds (submitted, not yet back)."""
        return len(self._inflight)

    # ---- waiting --------------------------------------------------------

    def select(self, timeout=None):
        """Wait for completions; return the futures completed since the last
        call (their callbacks are already scheduled)."""
        if not self._results:
            self._poll(timeout)
        done, self._results = self._results, []
        return done

    def _poll(self, timeout=None):
        cdef lx_iocp_op *out[128]
        cdef int64_t ns
        cdef int n, i
        cdef int batch = min(LX_IOCP_MAX_BATCH, 128)
        self._check_closed()
        if timeout is None:
            ns = -1
        elif timeout < 0:
            raise ValueError("negative timeout")
        else:
            ns = <int64_t>min(math.ceil(timeout * 1e9), 2**62)
        while True:
            with nogil:
                n = lx_iocp_wait(self.port, out, batch, ns)
            if n < 0:
                raise _error(<DWORD>-n)
            for i in range(n):
                self._complete(<_Op>out[i].user)
            if n < batch:
                return
            ns = 0  # a full batch: take what else is queued, without waiting

    cdef void _complete(self, _Op op):
        """An op is back from the kernel: settle its future, then let go of
        its memory.  Never raises (the rest of the batch must run)."""
        op.in_flight = False
        self._inflight.discard(op)
        fut = op.fut
        try:
            if op.action == ACT_WAIT and op.extra is not None:
                op.extra.cancel()  # the timeout timer
            if op.obj is not None and op.obj in self._stopped_serving:
                op.discard()
                fut.cancel()
            elif fut.done():
                op.discard()  # cancelled: nobody wants the result
            else:
                try:
                    value = op.result()
                except Exception as exc:  # OSError, or MemoryError, ...
                    fut.set_exception(exc)
                else:
                    fut.set_result(value)
                self._results.append(fut)
        except BaseException as exc:
            if self._loop is not None:
                self._loop.call_exception_handler({
                    "message": "Error completing an overlapped operation",
                    "exception": exc,
                    "future": fut,
                })
        finally:
            op._release()
            op.fut = op.obj = op.extra = None
            Py_DECREF(op)  # the reference the submit took

    # ---- submitting -----------------------------------------------------

    cdef _Op _new(self, object obj, Action action):
        self._check_closed()
        op = _Op()
        op.proactor = self
        op.obj = obj
        op.action = action
        return op

    cdef object _start(self, _Op op, DWORD err):
        """After a submit: in flight and a future, or the error raised."""
        if err:
            op._release()
            raise _error(err)
        Py_INCREF(op)  # released in _complete, when the kernel gives it back
        op.in_flight = True
        self._inflight.add(op)
        op.fut = _OpFuture(op, loop=self._loop)
        return op.fut

    cdef int _associate(self, object obj) except -1:
        cdef DWORD err
        if obj in self._registered:
            return 0
        h = obj.fileno()
        if h == -1:
            # Closed.  (-1 is also INVALID_HANDLE_VALUE, which
            # CreateIoCompletionPort would take for "make a new port".)
            raise _error(ERROR_INVALID_HANDLE)
        err = lx_iocp_associate(self.port, <HANDLE><intptr_t>h)
        if err:
            raise _error(err)
        self._registered.add(obj)
        return 0

    def _result(self, value):
        fut = self._loop.create_future()
        fut.set_result(value)
        return fut

    def recv(self, conn, nbytes, flags=0):
        cdef Py_ssize_t n = nbytes
        _no_flags(flags)
        if n < 0:
            raise ValueError("negative buffersize in recv")
        op = self._new(conn, ACT_BYTES)
        self._associate(conn)
        op._alloc(n)
        return self._read(conn, op, op.buf, n, b"")

    def recv_into(self, conn, buf, flags=0):
        _no_flags(flags)
        op = self._new(conn, ACT_INTO)
        self._associate(conn)
        op._view(buf, PyBUF_WRITABLE)
        return self._read(conn, op, op.view.buf, op.view.len, 0)

    cdef object _read(self, conn, _Op op, void *buf, Py_ssize_t n, eof):
        """WSARecv on a socket, ReadFile on anything else (a pipe); a pipe
        whose writer has gone reads as EOF (`eof`) at once."""
        cdef DWORD err
        if isinstance(conn, socket.socket):
            err = lx_iocp_recv(op.op, <SOCKET>conn.fileno(), buf, n)
        else:
            err = lx_iocp_read(op.op, <HANDLE><intptr_t>conn.fileno(), buf, n)
        if err == ERROR_BROKEN_PIPE:
            op._release()
            return self._result(eof)
        return self._start(op, err)

    def recvfrom(self, conn, nbytes, flags=0):
        cdef DWORD err
        cdef Py_ssize_t n = nbytes
        _no_flags(flags)
        if n < 0:
            raise ValueError("negative buffersize in recvfrom")
        op = self._new(conn, ACT_FROM)
        self._associate(conn)
        op._alloc(n)
        err = lx_iocp_recvfrom(op.op, <SOCKET>conn.fileno(), op.buf, n)
        if err == ERROR_BROKEN_PIPE:
            op._release()
            return self._result((b"", None))
        return self._start(op, err)

    def recvfrom_into(self, conn, buf, nbytes=0):
        """Receive into buf, at most nbytes (all of buf when 0).  asyncio's
        sock_recvfrom_into passes nbytes third, where IocpProactor's
        signature says flags but its _overlapped call takes a size."""
        cdef DWORD err
        cdef Py_ssize_t n
        op = self._new(conn, ACT_FROM_INTO)
        self._associate(conn)
        op._view(buf, PyBUF_WRITABLE)
        n = nbytes
        if n < 0:
            op._release()
            raise ValueError("negative buffersize in recvfrom_into")
        if n == 0 or n > op.view.len:
            n = op.view.len
        err = lx_iocp_recvfrom(op.op, <SOCKET>conn.fileno(), op.view.buf, n)
        if err == ERROR_BROKEN_PIPE:
            op._release()
            return self._result((0, None))
        return self._start(op, err)

    def send(self, conn, buf, flags=0):
        cdef DWORD err
        cdef lx_iocp_buf one
        _no_flags(flags)
        op = self._new(conn, ACT_SENT)
        self._associate(conn)
        op._view(buf, PyBUF_SIMPLE)
        if isinstance(conn, socket.socket):
            # The core copies the buffer array, not the bytes.
            one.base = op.view.buf
            one.len = op.view.len
            err = lx_iocp_send(op.op, <SOCKET>conn.fileno(), &one, 1)
        else:
            err = lx_iocp_write(op.op, <HANDLE><intptr_t>conn.fileno(), op.view.buf, op.view.len)
        return self._start(op, err)

    def sendto(self, conn, buf, flags=0, addr=None):
        cdef DWORD err
        cdef int tolen
        _no_flags(flags)
        op = self._new(conn, ACT_SENT)
        self._associate(conn)
        tolen = _fill_addr(conn.family, addr, &op.to)
        op._view(buf, PyBUF_SIMPLE)
        err = lx_iocp_sendto(op.op, <SOCKET>conn.fileno(), op.view.buf, op.view.len,
                             <sockaddr *>&op.to, tolen)
        return self._start(op, err)

    def accept(self, listener):
        """Accept a connection: the future's result is (conn, address)."""
        cdef DWORD err
        op = self._new(listener, ACT_ACCEPT)
        op.extra = listener
        self._associate(listener)
        err = lx_iocp_accept(op.op, <SOCKET>listener.fileno())
        return self._start(op, err)

    def connect(self, conn, address):
        """Connect a socket; the future's result is the socket (None for
        UDP, which connects at once as with IocpProactor)."""
        cdef DWORD err
        cdef int tolen
        if conn.type == socket.SOCK_DGRAM:
            self._check_closed()
            conn.connect(address)
            return self._result(None)
        op = self._new(conn, ACT_CONNECT)
        self._associate(conn)
        tolen = _fill_addr(conn.family, address, &op.to)
        err = lx_iocp_connect(op.op, <SOCKET>conn.fileno(), <sockaddr *>&op.to, tolen)
        return self._start(op, err)

    def sendfile(self, sock, file, offset, count):
        """Not in the core (no TransmitFile): asyncio then falls back to
        reading the file and sending it (loop.sendfile / sock_sendfile)."""
        self._check_closed()
        raise exceptions.SendfileNotAvailableError(
            "loopx's IOCP core has no TransmitFile")

    def accept_pipe(self, pipe):
        """Wait for a client on a server named pipe; the result is the pipe."""
        cdef DWORD err
        op = self._new(pipe, ACT_PIPE)
        self._associate(pipe)
        err = lx_iocp_pipe_connect(op.op, self.port, <HANDLE><intptr_t>pipe.fileno())
        return self._start(op, err)

    async def connect_pipe(self, address):
        """Open the client end of a named pipe.  Windows has no overlapped
        open: retry while every instance is busy, backing off to 100 ms."""
        try:
            import _overlapped
            from asyncio import windows_utils
        except ImportError:
            raise _error(ERROR_INVALID_PARAMETER) from None  # no named pipes here
        delay = 0.001
        while True:
            try:
                handle = _overlapped.ConnectPipe(address)
            except OSError as exc:
                if exc.winerror != _overlapped.ERROR_PIPE_BUSY:
                    raise
            else:
                return windows_utils.PipeHandle(handle)
            delay = min(delay * 2, 0.1)
            await asyncio.sleep(delay)

    def wait_for_handle(self, handle, timeout=None):
        """Wait until a process (any waitable handle) is signalled: the
        result is True, or False if `timeout` seconds passed first.  Over the
        Linux emulation the handle is a pidfd (see tests/iocp_emu)."""
        cdef DWORD err
        op = self._new(None, ACT_WAIT)
        err = lx_iocp_wait_process(op.op, self.port, <HANDLE><intptr_t>handle)
        fut = self._start(op, err)
        if timeout is not None:
            op.extra = self._loop.call_later(max(timeout, 0), op._expire)
        return fut

    def _unregister(self, ov):
        """Nothing to do: an op lets go of itself when the kernel returns it
        (asyncio's loop calls this after cancelling its self-pipe read)."""

    def _stop_serving(self, obj):
        # The loop closes obj next; its pending ops then complete, and are
        # cancelled rather than reported.
        self._stopped_serving.add(obj)

    def close(self):
        """Cancel every op in flight, wait until the kernel has returned
        all of them, then close the port.  Ops still out after
        close_timeout seconds are logged and leaked, never freed."""
        if self.port == NULL:
            return
        for op in list(self._inflight):
            fut = (<_Op>op).fut
            if fut is not None and not fut.done():
                try:
                    fut.cancel()
                except OSError as exc:
                    if self._loop is not None:
                        self._loop.call_exception_handler({
                            "message": "Cancelling a future failed",
                            "exception": exc,
                            "future": fut,
                        })
            else:
                try:
                    op.cancel()
                except OSError:
                    pass  # it completes anyway; we wait for it below
        start = time.monotonic()
        next_msg = start + 1.0
        while self._inflight:
            now = time.monotonic()
            if now - start >= self.close_timeout:
                logger.error("%r: %d operation(s) still not returned by the kernel "
                             "%.1f seconds after close(); their memory is leaked, "
                             "not freed", self, len(self._inflight), now - start)
                _leaked.extend(self._inflight)
                self._inflight.clear()
                break
            if now >= next_msg:
                logger.debug("%r is running after closing for %.1f seconds",
                             self, now - start)
                next_msg = now + 1.0
            self._poll(min(1.0, self.close_timeout - (now - start)))
        self._results = []
        err = lx_iocp_close(self.port)
        self.port = NULL
        if err:
            raise _error(err)


cdef inline int _no_flags(object flags) except -1:
    if flags:
        raise ValueError("flags are not supported by the IOCP proactor")
    return 0
