# What every loopx transport shares: the protocol and extra-info plumbing,
# scheduling through the loop, and write flow control.  Included into
# _loop.pyx before the transports themselves (datagram.pxi, pipes.pxi).
#
# isinstance().  asyncio's transport classes declare __slots__ in their
# bases, so a native class cannot inherit from them (the two instance layouts
# conflict).  Yet code checks isinstance(transport, asyncio.Transport), and
# so do CPython's own tests.  isinstance() falls back to the object's
# __class__ attribute when its type does not match (that is how mocks pass
# for what they mock), so each native transport reports as its __class__ an
# "interface class": a plain Python class with the same name, derived from
# exactly the public asyncio transport classes that the asyncio transport we
# mirror derives from in the running Python (see _interface_class).
# type(transport) is still the native class.
#
# Two rules hold for every transport here:
#   - _loop is set once and never reset to None (asyncio drops it after
#     connection_lost to break a cycle; for us it is a typed field, and a None
#     there would turn any late call into a crash instead of a no-op).
#   - the classes are no_gc_clear for the same reason: the garbage collector
#     must not set _loop to None under a finalizer or a late method call.
#     Cycles through a transport are still broken, by its protocol's or its
#     watch handle's tp_clear.

from asyncio import constants as _constants

cdef extern from "<errno.h>":
    int EWOULDBLOCK   # not in Cython's libc.errno; equal to EAGAIN on Linux

cdef Py_ssize_t _LOG_THRESHOLD_FOR_CONNLOST_WRITES = _constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES
cdef object _set_result_unless_cancelled = futures._set_result_unless_cancelled

# What one read asks for at most: asyncio's max_size for sockets and pipes.
cdef enum:
    _READ_SCRATCH_SIZE = 256 * 1024

# Scratch space for native reads (recvfrom, read).  One for the process: it is
# only used between a syscall and the copy into a bytes object right after it,
# with the GIL held throughout, so no two reads can share it at once.  A read
# into it costs a bytes object of the size actually read, where asyncio's
# recv(256 KiB) allocates 256 KiB and shrinks it.
cdef char _read_scratch[_READ_SCRATCH_SIZE]

# How a read gets its bytes object (_read_to_bytes):
#  - through the scratch buffer, then copied into a bytes object of the size
#    read: costs a copy, but each read only a bytes object of its own size;
#  - straight into a bytes object sized by FIONREAD (up to _READ_ALLOC_MAX):
#    no copy, one more syscall.  Transports do this after a read of
#    _DIRECT_READ_THRESHOLD or more, a sign of a fast sender.  (Not a full 256 KiB object shrunk
#    afterwards: blocks that big come fresh from mmap, and faulting their
#    pages in costs far more than the copy.)
#  - straight into a bytes object of the size asked for, shrunk to what came
#    (socket.recv's way): sock_recv(n) with a large n of at most
#    _READ_ALLOC_MAX, and pipes, after a read of _DIRECT_READ_THRESHOLD or
#    more.
# _READ_ALLOC_MAX keeps these blocks below glibc's mmap threshold (128 KiB by
# default), so they come from the heap.
cdef enum:
    _DIRECT_READ_THRESHOLD = 32 * 1024
    _READ_ALLOC_MAX = 128 * 1024

cdef enum _ReadInto:
    _INTO_SCRATCH
    _INTO_AVAILABLE      # FIONREAD
    _INTO_REQUESTED      # then shrink

cdef extern from "Python.h":
    PyObject *_lx_new_bytes "PyBytes_FromStringAndSize"(const char *, Py_ssize_t) except NULL
    char *_lx_bytes_buffer "PyBytes_AS_STRING"(PyObject *)
    int _PyBytes_Resize(PyObject **, Py_ssize_t) except -1

cdef extern from "<sys/socket.h>" nogil:
    ssize_t _lx_recv "recv"(int fd, void *buf, size_t n, int flags)

cdef extern from "<sys/ioctl.h>" nogil:
    int FIONREAD
    int ioctl(int fd, unsigned long request, ...)


cdef extern from "malloc_hint.h" nogil:
    void lx_malloc_hint_large_buffers()

cdef bint _large_reads_seen = False


cdef inline ssize_t _read_fd(int fd, bint sock, char *buf, Py_ssize_t size) noexcept:
    """One recv(2) (sock) or read(2) of up to size bytes into buf: the count,
    0 at EOF, or minus the errno.  Every read whose bytes loopx allocates
    for goes through here, so the first large one hints malloc, once, that
    this process moves large buffers (csrc/malloc_hint.h: without it, glibc
    hands the heap's top back to the kernel and faults it in again for
    every large message)."""
    global _large_reads_seen
    cdef ssize_t n = _lx_recv(fd, buf, <size_t>size, 0) if sock else read(fd, buf, <size_t>size)
    if n < 0:
        return -errno
    if n >= _DIRECT_READ_THRESHOLD and not _large_reads_seen:
        _large_reads_seen = True
        lx_malloc_hint_large_buffers()
    return n


cdef object _read_to_bytes(int fd, bint sock, Py_ssize_t size, _ReadInto into, ssize_t *nread):
    """One recv(2) (sock) or read(2) of up to size (<= _READ_SCRATCH_SIZE)
    bytes, into what `into` says.  Returns them as bytes with *nread set to
    their count; at EOF or on failure returns None with *nread 0, or minus
    the errno."""
    cdef ssize_t n
    cdef int avail = 0
    cdef PyObject *raw
    cdef char *buf = _read_scratch
    if into == _INTO_AVAILABLE:
        if ioctl(fd, FIONREAD, &avail) == 0 and avail > 0:
            # At most _READ_ALLOC_MAX: a bigger block would come from mmap
            # (see above).  The rest is read on the next readiness.
            size = min(size, <Py_ssize_t>avail, <Py_ssize_t>_READ_ALLOC_MAX)
        else:
            into = _INTO_SCRATCH  # let the read itself tell EOF and errors apart
    if into != _INTO_SCRATCH:
        raw = _lx_new_bytes(NULL, size)
        buf = _lx_bytes_buffer(raw)
    n = _read_fd(fd, sock, buf, size)
    nread[0] = n
    if into == _INTO_SCRATCH:
        return PyBytes_FromStringAndSize(buf, n) if n > 0 else None
    if n <= 0:
        _lx_decref(raw)
        return None
    if n < size:
        _PyBytes_Resize(&raw, n)   # frees raw itself if it fails
    data = <object>raw
    _lx_decref(raw)
    return data


@cython.no_gc_clear
@cython.nonecheck(True)   # a transport made with __new__ has no loop: raise, not crash
cdef class _TransportBase(NativeReader):
    """The BaseTransport part of asyncio's interface."""
    cdef:
        Loop _loop
        object _protocol
        dict _extra
        readonly bint _closing  # readonly: asyncio's transports have it, code reads it
        object __weakref__
        # Programs (and CPython's tests) set attributes on transports, even
        # replace methods; asyncio's transports allow it, so ours do too.
        # The dict is only made when first used.
        dict __dict__

    cdef _init_base(self, Loop loop, protocol, extra):
        self._loop = loop
        self._protocol = protocol
        # asyncio keeps the caller's dict itself (and adds to it), not a copy.
        self._extra = {} if extra is None else extra

    def get_extra_info(self, name, default=None):
        """Information about the transport or its resources ('socket', ...)."""
        return self._extra.get(name, default)

    def set_protocol(self, protocol):
        self._protocol = protocol

    def get_protocol(self):
        return self._protocol

    def is_closing(self):
        """True once close() or abort() was called (or the peer closed)."""
        return self._closing

    cdef _schedule(self, callback, args):
        """loop.call_soon(callback, *args) with its checks: a closed loop
        raises RuntimeError, and so does another thread in debug mode."""
        cdef Loop loop = self._loop
        loop._check_closed()
        if loop._debug:
            loop._check_thread()
        loop._call_soon(callback, args, None)

    cdef bint _watching(self, int fd, bint writer):
        """Whether the loop currently watches fd in that direction (reprs)."""
        cdef Loop loop = self._loop
        cdef PyObject *h
        if loop._closed or fd < 0 or fd >= loop._fds_cap:
            return False
        h = loop._fds[fd].writer if writer else loop._fds[fd].reader
        return h != NULL and not _watch_cancelled(h)


@cython.no_gc_clear
@cython.nonecheck(True)   # a transport made with __new__ has no loop: raise, not crash
cdef class _FlowControlTransport(_TransportBase):
    """Write flow control by high/low water marks, as asyncio's
    _FlowControlMixin: pause_writing() when the buffer grows above the high
    mark, resume_writing() when it drains to the low mark or below."""
    cdef:
        Py_ssize_t _high_water
        Py_ssize_t _low_water
        readonly bint _protocol_paused  # read by the sendfile fallback

    cdef Py_ssize_t _pending_size(self):
        """The write buffer size; each transport overrides it."""
        return 0

    cdef int _send_corked(self) except -1:
        """Send what writes made during the protocol's read callback are
        holding back (the socket transports' write cork; none elsewhere)."""
        return 0

    def get_write_buffer_size(self):
        # Held-back writes are sent first: the size is then what asyncio
        # reports, the bytes the kernel refused.
        self._send_corked()
        return self._pending_size()

    def get_write_buffer_limits(self):
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high=None, low=None):
        self._set_write_buffer_limits(high, low)
        self._maybe_pause_protocol()

    cdef _set_write_buffer_limits(self, high, low):
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water = high
        self._low_water = low

    cdef _maybe_pause_protocol(self):
        if self._pending_size() <= self._high_water or self._protocol_paused:
            return
        self._protocol_paused = True
        try:
            self._protocol.pause_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                "message": "protocol.pause_writing() failed",
                "exception": exc,
                "transport": self,
                "protocol": self._protocol,
            })

    cdef _maybe_resume_protocol(self):
        if not self._protocol_paused or self._pending_size() > self._low_water:
            return
        self._protocol_paused = False
        try:
            self._protocol.resume_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                "message": "protocol.resume_writing() failed",
                "exception": exc,
                "transport": self,
                "protocol": self._protocol,
            })


# The public transport classes, most derived first.
cdef tuple _PUBLIC_TRANSPORT_CLASSES = (
    asyncio.DatagramTransport, asyncio.SubprocessTransport, asyncio.Transport,
    asyncio.ReadTransport, asyncio.WriteTransport, asyncio.BaseTransport)


cdef object _interface_class(str name, object model):
    """The class a native transport reports as its __class__ (see the top of
    this file): named `name`, derived from the public asyncio classes that
    `model` (the asyncio transport it mirrors) is a subclass of, leaving out
    those already implied by another."""
    picked = []
    for cls in _PUBLIC_TRANSPORT_CLASSES:
        if issubclass(model, cls) and not any(issubclass(p, cls) for p in picked):
            picked.append(cls)
    return _make_interface_class(name, tuple(picked))
