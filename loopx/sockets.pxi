# loop.sock_* : awaitable operations on non-blocking sockets.  Included into
# _loop.pyx.
#
# Every operation has one shape: try the syscall at once (on a busy
# connection it usually succeeds, and then nothing is registered), and only
# when it would block, watch the fd and retry on readiness (_sock_wait).
# The watch is removed when the future completes or is cancelled.

try:
    import ssl as _ssl
    _SSLSocket = _ssl.SSLSocket
except ImportError:  # Python built without OpenSSL
    _SSLSocket = ()

from asyncio.exceptions import SendfileNotAvailableError
from cpython.buffer cimport PyObject_CheckBuffer, PyObject_GetBuffer, PyBuffer_Release, PyBUF_WRITABLE

cdef object _socket_type = socket.socket   # also used by datagram.pxi

cdef extern from "pysocket.h":
    int lx_pysocket_fd(object sock)
    int lx_pysocket_type(object sock)
    int64_t lx_pysocket_timeout_ns(object sock)
    bint lx_pysocket_fits(PyTypeObject *tp)


def _socket_mirror_agrees():
    """Whether pysocket.h reads what socket.socket's own methods say, on
    real sockets of each kind and timeout (see there)."""
    import _socket
    if not lx_pysocket_fits(<PyTypeObject *>_socket_type):
        return False
    if (_socket_type.fileno is not _socket.socket.fileno
            or _socket_type.gettimeout is not _socket.socket.gettimeout):
        return False
    for family, kind in ((socket.AF_INET, socket.SOCK_STREAM), (socket.AF_INET, socket.SOCK_DGRAM)):
        try:
            sock = socket.socket(family, kind)
        except OSError:
            return False
        with sock:
            # No timeout is stored as -1 s (negative is all loopx reads).
            for timeout, expected_ns in ((None, -1000000000), (0.0, 0), (2.5, 2500000000)):
                sock.settimeout(timeout)
                if (lx_pysocket_fd(sock) != sock.fileno() or lx_pysocket_type(sock) != sock.type
                        or lx_pysocket_timeout_ns(sock) != expected_ns):
                    return False
        if lx_pysocket_fd(sock) != -1:
            return False
    return True


# Whether a socket.socket's fields may be read directly (_socket_fd, ...).
cdef bint _socket_mirrored = _socket_mirror_agrees()


cdef inline bint _is_mirrored(sock):
    return _socket_mirrored and type(sock) is _socket_type


cdef inline int _socket_fd(sock) except? -2:
    """sock.fileno(), without the call for a plain socket."""
    if _is_mirrored(sock):
        return lx_pysocket_fd(sock)
    return sock.fileno()

# An attempt returns _PENDING when it made progress but is not finished
# (a partial sendall) and wants to be retried on the next readiness.
cdef object _PENDING = object()
cdef tuple _WOULD_BLOCK = (BlockingIOError, InterruptedError)


cdef bint _check_socket(Loop loop, sock) except -1:
    """Refuse what asyncio refuses; True if sock is blocking (or has a
    timeout).  asyncio refuses those in debug mode only, and otherwise lets
    the socket's own methods block the loop; so does loopx, calling them
    rather than its native syscalls, which would block holding the GIL."""
    if _is_mirrored(sock):
        # (An SSLSocket is a subclass, so never mirrored.)
        if lx_pysocket_timeout_ns(sock) == 0:
            return False
    elif isinstance(sock, _SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")
    if sock.gettimeout() != 0:
        if loop._debug:
            raise ValueError("the socket must be non-blocking")
        return True
    return False


async def _sock_wait(Loop loop, sock, bint writer, attempt, tuple args):
    """Retry attempt(*args) whenever sock is ready, until it returns a result
    other than _PENDING or raises something else than would-block."""
    fut = loop.create_future()
    fd = sock.fileno()
    loop._check_fd_no_transport(fd, fd)
    handle = loop._add_watch(fd, writer, _sock_retry, (fut, attempt, args))
    try:
        return await fut
    finally:
        fut = None  # break the cycle through the exception's traceback
        # Unwatch when done, cancelled or abandoned -- unless someone
        # replaced our watch with add_reader/add_writer meanwhile (which
        # cancelled our handle): then it is theirs to remove.
        if not handle.cancelled():
            loop._remove_watch(fd, writer)


def _call_socket_method(sock, str name, tuple args):
    # Looked up on every retry, as asyncio does: what the socket's method is
    # may change while we wait (tests and wrappers patch it).
    return getattr(sock, name)(*args)


def _sock_retry(fut, attempt, args):
    if fut.done():
        return
    try:
        result = attempt(*args)
    except _WOULD_BLOCK:
        return
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        fut.set_exception(exc)
    else:
        if result is not _PENDING:
            fut.set_result(result)


# Whether the last sock_recv of a large n received _DIRECT_READ_THRESHOLD
# bytes or more.  As a pipe transport's _big_reads, but for the process:
# sock_recv keeps nothing per socket.  Sockets that alternate between large
# and small messages cost at most one copy of a large read.
cdef bint _sock_big_reads = False


cdef object _recv_now(int fd, Py_ssize_t n):
    """One recv() of at most n bytes: the bytes, or _PENDING if it would
    block.  No exception object for the common would-block case.  A large n
    is received straight into a bytes object of that size, then shrunk
    (no copy), while the reads that come are large; else through the
    scratch buffer: 1 KiB messages read with sock_recv(65536) cost a copy
    instead of a 64 KiB block allocated and shrunk (about 250 instructions
    more).  See _read_to_bytes."""
    global _sock_big_reads
    cdef ssize_t got
    cdef bint large = _DIRECT_READ_THRESHOLD <= n <= _READ_ALLOC_MAX
    data = _read_to_bytes(fd, True, n, _INTO_REQUESTED if large and _sock_big_reads
                          else _INTO_SCRATCH, &got)
    if large and got > 0:
        _sock_big_reads = got >= _DIRECT_READ_THRESHOLD
    if got < 0:
        if _would_block(-got):
            return _PENDING
        raise _os_error(-got)
    return b"" if data is None else data


cdef object _recv_into_now(sock, buf):
    """One recv() into buf: the byte count, or _PENDING if it would block."""
    cdef Py_buffer view
    cdef ssize_t got
    cdef int err
    try:
        PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE)
    except Exception:
        # It was a writable buffer when the wait began (the first attempt
        # was sock.recv_into's), but no longer is (a released memoryview):
        # let the socket raise its own error for it, as asyncio's retry does.
        try:
            return sock.recv_into(buf)
        except _WOULD_BLOCK:
            return _PENDING
    # The socket's fd now, not the number we registered (see _RecvWaiter).
    got = _lx_recv(_socket_fd(sock), view.buf, <size_t>view.len, 0)
    err = errno
    PyBuffer_Release(&view)
    if got < 0:
        if _would_block(err):
            return _PENDING
        raise _os_error(err)
    return got


@cython.final
cdef class _RecvWaiter(NativeReader):
    """The fd's reader while a sock_recv or sock_recv_into waits: retries
    the recv natively on each readiness (no handle, context copy or
    Python-level call per wait).  It is a one-shot reader
    (Loop._add_native_reader), so a loop of receives re-arms one epoll entry
    instead of adding and deleting one per message."""
    cdef Loop loop
    cdef object fut
    cdef object sock
    cdef Py_ssize_t n     # sock_recv: at most this many bytes
    cdef object buf       # sock_recv_into: into this (None for sock_recv)
    cdef int fd

    cdef int _read_event(self) except -1:
        if self.fut is None or self.fut.done():
            return 0
        try:
            # The socket's fd now, not the number we registered: if the
            # socket was closed meanwhile, recv(-1) fails with EBADF instead
            # of reading from whatever file reused the number.
            if self.buf is None:
                data = _recv_now(_socket_fd(self.sock), self.n)
            else:
                data = _recv_into_now(self.sock, self.buf)
        except Exception as exc:
            # OSError, or the socket's error for a buffer gone bad while we
            # waited: the awaiting caller gets it, as from asyncio's retry.
            self.fut.set_exception(exc)
            return 0
        if data is _PENDING:
            # Woken for nothing (another reader of the socket was first):
            # wait again, unless the fd is no longer ours to watch.
            if _still_reads(self.loop, self.fd, self):
                self.loop._fd_rearm(self.fd)
        else:
            self.fut.set_result(data)
        return 0


cdef inline void _note_recv(Loop loop, int fd, bytes data, Py_ssize_t n) noexcept:
    """Remember whether a sock_recv of fd got less than the n it asked
    for (FdWatch.recv_drained)."""
    if 0 <= fd < loop._fds_cap:
        loop._fds[fd].recv_drained = 0 < len(data) < n


cdef inline bint _take_recv_drained(Loop loop, int fd) noexcept:
    """Whether the last sock_recv of fd drained it; forgets it.  Then the
    next one waits at once: in a request-response exchange the peer has not
    answered yet, and a recv would only fail with EAGAIN: a syscall for
    nothing, one of the four a sock_* echo server made per message.  If
    data did come meanwhile, arming the wait reports it at the next poll
    (the one-shot re-arm is an epoll_ctl, which checks readiness)."""
    cdef bint drained
    if fd < 0 or fd >= loop._fds_cap:
        return False
    drained = loop._fds[fd].recv_drained
    loop._fds[fd].recv_drained = False
    return drained


async def _sock_recv(Loop loop, sock, n):
    cdef _RecvWaiter waiter
    cdef int fd
    cdef bint stream
    if _check_socket(loop, sock) or not 0 <= n <= _READ_SCRATCH_SIZE:
        # Negative sizes get socket's own error; huge reads, and blocking
        # sockets, its own method.
        try:
            return sock.recv(n)
        except _WOULD_BLOCK:
            pass
        return await _sock_wait(loop, sock, False, _call_socket_method, (sock, "recv", (n,)))
    fd = _socket_fd(sock)
    # Only a byte stream's short read says its socket was drained (a
    # datagram's says nothing of the next one); only a plain socket's type
    # is read without a call.
    stream = _is_mirrored(sock) and lx_pysocket_type(sock) == SOCK_STREAM
    data = _PENDING if stream and _take_recv_drained(loop, fd) else _recv_now(fd, n)
    if data is _PENDING:
        waiter = _recv_waiter(loop, sock, fd, n, None)
        try:
            data = await waiter.fut
        finally:
            _recv_unwatch(loop, waiter)
    if stream:
        _note_recv(loop, fd, data, n)
    return data


async def _sock_recv_into(Loop loop, sock, buf):
    cdef _RecvWaiter waiter
    cdef bint blocking = _check_socket(loop, sock)
    try:
        # The socket's own method first: its checks and errors (a read-only
        # buffer is a TypeError), and no wait when data is there.
        return sock.recv_into(buf)
    except _WOULD_BLOCK:
        pass
    if blocking:
        return await _sock_wait(loop, sock, False, _call_socket_method, (sock, "recv_into", (buf,)))
    waiter = _recv_waiter(loop, sock, _socket_fd(sock), 0, buf)
    try:
        return await waiter.fut
    finally:
        _recv_unwatch(loop, waiter)


cdef _RecvWaiter _recv_waiter(Loop loop, sock, int fd, Py_ssize_t n, buf):
    """Watch fd until a receive succeeds; await the waiter's fut, then call
    _recv_unwatch whatever happened."""
    loop._check_fd_no_transport(fd, fd)
    cdef _RecvWaiter waiter = _RecvWaiter.__new__(_RecvWaiter)
    waiter.fut = loop.create_future()
    waiter.sock = sock
    waiter.n = n
    waiter.buf = buf
    waiter.loop = loop
    waiter.fd = fd
    loop._add_native_reader(fd, waiter, False, True)
    return waiter


cdef _recv_unwatch(Loop loop, _RecvWaiter waiter):
    # Drop the future (it may hold an exception whose traceback holds the
    # awaiting frame, which holds the waiter: a cycle), then unwatch unless
    # someone replaced our watch meanwhile (then it is theirs to remove), as
    # _sock_wait does.
    waiter.fut = None
    if _still_reads(loop, waiter.fd, waiter):
        loop._remove_watch(waiter.fd, False)


async def _sock_recvfrom(Loop loop, sock, bufsize):
    _check_socket(loop, sock)
    try:
        return sock.recvfrom(bufsize)
    except _WOULD_BLOCK:
        pass
    return await _sock_wait(loop, sock, False, _call_socket_method, (sock, "recvfrom", (bufsize,)))


async def _sock_recvfrom_into(Loop loop, sock, buf, nbytes):
    _check_socket(loop, sock)
    if not nbytes:
        nbytes = len(buf)
    try:
        return sock.recvfrom_into(buf, nbytes)
    except _WOULD_BLOCK:
        pass
    return await _sock_wait(loop, sock, False, _call_socket_method, (sock, "recvfrom_into", (buf, nbytes)))


async def _sock_sendto(Loop loop, sock, data, address):
    _check_socket(loop, sock)
    try:
        return sock.sendto(data, address)
    except _WOULD_BLOCK:
        pass
    return await _sock_wait(loop, sock, True, _call_socket_method, (sock, "sendto", (data, address)))


cdef class _SendAll:
    """The rest of a sock_sendall: sends from where the last send stopped."""
    cdef object sock
    cdef object view
    cdef Py_ssize_t pos

    def __init__(self, sock, view, Py_ssize_t pos):
        self.sock = sock
        self.view = view
        self.pos = pos

    def attempt(self):
        self.pos += self.sock.send(self.view[self.pos:])
        if self.pos < len(self.view):
            return _PENDING
        return None


cdef Py_ssize_t _send_now(int fd, data, Py_ssize_t *size) except -2:
    """One send() of data, natively: the bytes sent (0 if it would block);
    *size is set to data's size in bytes."""
    cdef Py_buffer view
    cdef ssize_t n
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    size[0] = view.len
    n = send(fd, view.buf, <size_t>view.len, MSG_NOSIGNAL)
    PyBuffer_Release(&view)
    if n < 0:
        if _would_block(errno):
            return 0
        raise _os_error(errno)
    return n


async def _sock_sendall(Loop loop, sock, data):
    cdef bint blocking = _check_socket(loop, sock)
    cdef Py_ssize_t n, size
    if not blocking and type(sock) is _socket_type and PyObject_CheckBuffer(data):
        # A plain socket's send() cannot be replaced per instance (it has
        # __slots__): send natively, with no method call and no memoryview.
        n = _send_now(_socket_fd(sock), data, &size)
        if n == size:
            return
    else:
        try:
            n = sock.send(data)
        except _WOULD_BLOCK:
            n = 0
    view = memoryview(data).cast("B")
    if n == len(view):
        return
    await _sock_wait(loop, sock, True, _SendAll(sock, view, n).attempt, ())


def _accept_nonblocking(sock):
    conn, address = sock.accept()
    conn.setblocking(False)
    return conn, address


async def _sock_accept(Loop loop, sock):
    _check_socket(loop, sock)
    try:
        return _accept_nonblocking(sock)
    except _WOULD_BLOCK:
        pass
    return await _sock_wait(loop, sock, False, _accept_nonblocking, (sock,))


def _connect_result(sock, address):
    # Writable after a non-blocking connect: SO_ERROR says how it ended.
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err != 0:
        raise OSError(err, f"Connect call failed {address}")
    return None


cdef bint _is_numeric_address(host, family):
    if not isinstance(host, str):
        return False
    if family == AF_INET6:
        host = host.partition("%")[0]
    try:
        socket.inet_pton(family, host)
    except (OSError, ValueError):
        return False
    return True


async def _resolve_for(Loop loop, sock, family, address):
    """The address to connect sock (of family) to: as given when already
    numeric (no thread hop for the common case), else the first getaddrinfo
    answer."""
    host, port = address[:2]
    if isinstance(port, int) and _is_numeric_address(host, family):
        return address
    infos = await loop.getaddrinfo(host, port, family=family,
                                   type=sock.type, proto=sock.proto)
    if not infos:
        raise OSError("getaddrinfo() returned empty list")
    return infos[0][4]


async def _sock_connect(Loop loop, sock, address):
    _check_socket(loop, sock)
    family = _family_of(sock)
    if family == AF_INET or family == AF_INET6:
        address = await _resolve_for(loop, sock, family, address)
    try:
        sock.connect(address)
        return
    except _WOULD_BLOCK:
        pass
    await _sock_wait(loop, sock, True, _connect_result, (sock, address))


def _ready_now():
    return None


cdef _check_sendfile_params(sock, file, offset, count):
    if "b" not in getattr(file, "mode", "b"):
        raise ValueError("file should be opened in binary mode")
    if not sock.type == socket.SOCK_STREAM:
        raise ValueError("only SOCK_STREAM type sockets are supported")
    if count is not None:
        if not isinstance(count, int):
            raise TypeError(f"count must be a positive integer (got {count!r})")
        if count <= 0:
            raise ValueError(f"count must be a positive integer (got {count!r})")
    if not isinstance(offset, int):
        raise TypeError(f"offset must be a non-negative integer (got {offset!r})")
    if offset < 0:
        raise ValueError(f"offset must be a non-negative integer (got {offset!r})")


async def _sock_sendfile(Loop loop, sock, file, offset, count, fallback):
    _check_socket(loop, sock)
    _check_sendfile_params(sock, file, offset, count)
    try:
        return await _sock_sendfile_native(loop, sock, file, offset, count)
    except SendfileNotAvailableError:
        if not fallback:
            raise
    return await _sock_sendfile_fallback(loop, sock, file, offset, count)


async def _sock_sendfile_native(Loop loop, sock, file, offset, count):
    """Zero-copy os.sendfile, waiting for writability between chunks."""
    try:
        fileno = file.fileno()
    except (AttributeError, io.UnsupportedOperation):
        raise SendfileNotAvailableError("not a regular file")
    try:
        fsize = os.fstat(fileno).st_size
    except OSError:
        raise SendfileNotAvailableError("not a regular file")
    end = offset + count if count else fsize
    # The kernel moves at most ~2 GiB per call anyway.
    blocksize = min(end - offset, 0x7ffff000)
    total = 0
    try:
        while offset + total < end:
            try:
                sent = os.sendfile(sock.fileno(), fileno, offset + total,
                                   min(end - offset - total, blocksize))
            except _WOULD_BLOCK:
                await _sock_wait(loop, sock, True, _ready_now, ())
                continue
            except OSError as exc:
                if exc.errno == errno_mod.ENOTCONN and type(exc) is not ConnectionError:
                    raise ConnectionError("socket is not connected", errno_mod.ENOTCONN) from exc
                if total == 0:
                    # The kernel cannot sendfile this pair (e.g. the file is
                    # not mmap-able): let the caller fall back to copying.
                    raise SendfileNotAvailableError("os.sendfile call failed") from exc
                raise
            if sent == 0:
                break  # end of file
            total += sent
    finally:
        if total > 0:
            file.seek(offset + total)
    return total


async def _sock_sendfile_fallback(Loop loop, sock, file, offset, count):
    """Read the file in the default executor and sock_sendall each block."""
    if offset:
        file.seek(offset)
    blocksize = min(count, 16384) if count else 16384
    buf = bytearray(blocksize)
    total = 0
    try:
        while True:
            if count:
                blocksize = min(count - total, blocksize)
                if blocksize <= 0:
                    break
            view = memoryview(buf)[:blocksize]
            nread = await loop.run_in_executor(None, file.readinto, view)
            if not nread:
                break
            await _sock_sendall(loop, sock, view[:nread])
            total += nread
        return total
    finally:
        if total > 0 and hasattr(file, "seek"):
            file.seek(offset + total)
