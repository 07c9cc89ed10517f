# Stream transports (TCP and Unix sockets) and serving.  Included into
# _loop.pyx.
#
# SocketTransport is asyncio's Transport over a connected, non-blocking stream
# socket, driven by readiness:
#   - reading: on each readiness, one recv() into the loop's shared receive
#     buffer, then one data_received() with an exact-size bytes copy (cheaper
#     than allocating a 256 KiB bytes per read and shrinking it, as
#     socket.recv() does); BufferedProtocol reads straight into get_buffer().
#   - writing: write() sends at once when nothing is queued; what the kernel
#     does not take is queued (as immutable bytes: the caller may reuse a
#     bytearray), and the queue is flushed with one sendmsg() of many buffers
#     whenever the socket is writable.  High/low water marks drive
#     pause_writing()/resume_writing().
#   - corking: writes made while the protocol's own data_received() or
#     buffer_updated() runs are queued, and go out in one sendmsg() as soon
#     as it returns.  A protocol answering a batch of pipelined requests (or
#     writing a header, then a body) costs one syscall instead of one per
#     write.  Anything that looks at the queue (close, abort, write_eof,
#     get_write_buffer_size, set_write_buffer_limits, passing the high-water
#     mark) sends it first, so only the moment the kernel sees the bytes moves,
#     and only to the end of that callback.
#   - close() flushes the queue before connection_lost(); abort() does not.
#     connection_lost() is called exactly once and the socket closed once.
# TLS is a protocol layered over this transport (tls.pxi's SSLProtocol,
# asyncio's design), which the transport feeds straight from its receive
# buffer.

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE

from asyncio import protocols as _protocols, selector_events as _selector_events, sslproto as _sslproto, trsock as _trsock


cdef extern from "sys/socket.h" nogil:
    struct msghdr:
        void *msg_name
        int msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    ssize_t recv(int fd, void *buf, size_t n, int flags)
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    ssize_t sendmsg(int fd, const msghdr *msg, int flags)
    int getsockname(int fd, sockaddr *sa, socklen_t *salen)
    int shutdown(int fd, int how)
    int SHUT_WR

cdef extern from "compat.h" nogil:
    int MSG_NOSIGNAL
    int LX_SOCK_NONBLOCK
    int lx_accept_nonblock(int fd, sockaddr *sa, socklen_t *salen)

cdef extern from "sys/uio.h" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len


cdef object _SENDFILE_TRY_NATIVE = _constants._SendfileMode.TRY_NATIVE
cdef object _UNSET = object()   # an extra-info field not read yet


cdef inline bint _would_block(int err):
    return err == EAGAIN or err == EWOULDBLOCK or err == EINTR


cdef extern from "<netinet/tcp.h>" nogil:
    int TCP_NODELAY

cdef extern from "<netinet/in.h>" nogil:
    int IPPROTO_TCP

cdef extern from "<sys/socket.h>" nogil:
    int SOCK_STREAM
    int setsockopt(int fd, int level, int name, const void *value, socklen_t size)

import _socket
# The C socket type's own members read as plain ints; socket.socket's
# properties of the same names build an enum member on every read.
cdef object _C_SOCKET = _socket.socket
cdef object _C_FAMILY = _socket.socket.__dict__["family"]
cdef object _C_TYPE = _socket.socket.__dict__["type"]
cdef object _C_PROTO = _socket.socket.__dict__["proto"]


cdef object _family_of(sock):
    """sock.family; for a socket object through the C getter, a plain int:
    socket.socket's own property makes an AddressFamily member each time
    (1.3 us here; sock_connect used to ask three times)."""
    if issubclass(type(sock), _C_SOCKET):   # not isinstance: a mock's __class__ lies
        return _C_FAMILY.__get__(sock)
    return sock.family


cdef _set_nodelay(sock, int fd):
    # asyncio turns Nagle off on TCP transports; so do we.
    if not issubclass(type(sock), _C_SOCKET):   # not isinstance: a mock's __class__ lies
        if (sock.family in (socket.AF_INET, socket.AF_INET6)
                and sock.type == socket.SOCK_STREAM and sock.proto == socket.IPPROTO_TCP):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return
    _set_nodelay_fd(fd, _C_FAMILY.__get__(sock), _C_TYPE.__get__(sock), _C_PROTO.__get__(sock))


cdef _set_nodelay_fd(int fd, int family, int kind, int proto):
    cdef int one = 1
    if family in (AF_INET, AF_INET6) and kind == SOCK_STREAM and proto == IPPROTO_TCP:
        if setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0:
            raise _os_error(errno)


cdef object _accepted_socket(int family, int kind, int proto, fileno):
    """The socket.socket over an fd lx_accept_nonblock() gave (None: a new
    socket of that kind), non-blocking as sock.accept() would make it."""
    sock = _socket_type(family, kind | LX_SOCK_NONBLOCK, proto, fileno)
    if not LX_SOCK_NONBLOCK:
        sock.setblocking(False)   # its timeout (an accepted fd already is)
    return sock


@cython.no_gc_clear
cdef class SocketTransport(_FlowControlTransport):
    """asyncio.Transport over a connected stream socket (TCP or Unix)."""

    cdef:
        object _sock                   # the socket.socket; None once closed, or
                                       # not made yet (_owns_fd)
        int _sock_fd
        # An accepted connection is served from its fd alone until someone
        # asks for the socket object (_socket_object): making one costs a
        # getsockname() and ~2 us of Python per connection, and ~100 B while
        # it is idle.  The transport then owns the fd, and these say what
        # socket the object would be.
        bint _owns_fd
        int _family, _type, _proto
        bint _buffered                 # the protocol is a BufferedProtocol
        bint _feeds_stream             # ... an asyncio StreamReaderProtocol (stream_feed.pxi)
        bint _feeds_tls                # ... an SSLProtocol (tls.pxi)
        bint _protocol_connected
        object _server
        bint _eof                      # write_eof() called
        readonly bint _paused          # pause_reading() in effect (readable, as asyncio's)
        bint _big_reads                # see _DIRECT_READ_THRESHOLD
        bint _corked                   # the protocol's read callback is running
        bint _cork_pending             # write() queued data while corked and
                                       # has not tried to send it yet (so no
                                       # write watch is set)
        object _corked_data            # ... when that is one write's bytes,
                                       # kept here rather than in _buffer
        Py_ssize_t _conn_lost
        object _buffer                 # deque of bytes waiting to be sent (made on
                                       # first use: an idle connection needs none)
        Py_ssize_t _buffer_offset      # bytes of _buffer[0] already sent
        Py_ssize_t _buffer_size        # unsent bytes in _buffer
        object _empty_waiter           # sendfile: resolved when _buffer drains
        object _peername
        object _sockname               # _UNSET until asked for (or closing)
        object _trsock                 # TransportSocket, made when asked for

    # Read by asyncio's start_tls() and sendfile().
    _start_tls_compatible = True
    _sendfile_compatible = _SENDFILE_TRY_NATIVE

    def __init__(self, Loop loop, sock, protocol, waiter=None, extra=None, server=None):
        peername = _UNSET
        if extra is not None:
            # asyncio adds its keys to the caller's dict: keep doing so.
            peername = extra.get("peername", _UNSET)
        self._setup(loop, sock, protocol, waiter, extra, peername, server)
        if extra is not None:
            extra["socket"] = self.get_extra_info("socket")
            extra["sockname"] = self.get_extra_info("sockname")
            extra["peername"] = self._peername

    cdef _setup(self, Loop loop, sock, protocol, waiter, extra, peername, server):
        self._sock = sock
        if peername is _UNSET:
            try:
                peername = sock.getpeername()
            except OSError:
                peername = None
        self._sock_fd = sock.fileno()
        self._start(loop, protocol, extra, peername, server)
        _set_nodelay(sock, self._sock_fd)
        self._schedule_connection_made(waiter)

    cdef _setup_accepted(self, Loop loop, int fd, int family, int kind, int proto,
                         protocol, peername, server):
        """Serve an accepted connection's fd, which this transport owns from
        here on (see _owns_fd); kind is the socket type without flags."""
        self._owns_fd = True
        self._sock_fd = fd
        self._family = family
        self._type = kind
        self._proto = proto
        self._start(loop, protocol, None, peername, server)
        _set_nodelay_fd(fd, family, kind, proto)
        self._schedule_connection_made(None)

    cdef _start(self, Loop loop, protocol, extra, peername, server):
        """What both setups share, _sock_fd set already."""
        cdef int fd = self._sock_fd
        # The extra info is kept in fields, and what costs memory but is
        # rarely asked for (sockname, the TransportSocket) is made on first
        # use: an idle connection needs no dict and no address tuples.
        self._loop = loop
        self._extra = extra
        self._set_write_buffer_limits(None, None)
        self._sockname = _UNSET
        self._peername = peername
        self.set_protocol(protocol)
        self._server = server
        if server is not None:
            if _PY313:
                server._attach(self)
            else:
                server._attach()
        loop._fd_grow(fd)
        loop._fds[fd].transport = <PyObject *>self

    cdef _schedule_connection_made(self, waiter):
        # asyncio's order: connection_made, then reading starts, then the
        # waiter (so a paused-in-connection_made protocol is respected).
        cdef Loop loop = self._loop
        loop._call_soon(self._protocol.connection_made, (self,), None)
        loop._call_soon(self._start_reading, None, None)
        if waiter is not None:
            loop._call_soon(futures._set_result_unless_cancelled, (waiter, None), None)

    cdef inline bint _socket_open(self):
        return self._sock is not None or self._owns_fd

    cdef object _socket_object(self):
        """The socket.socket of this connection (None once closed), made now
        if the transport has served its fd alone so far."""
        if self._owns_fd:
            self._sock = _accepted_socket(self._family, self._type, self._proto, self._sock_fd)
            self._owns_fd = False   # the socket object owns the fd now
        return self._sock

    cdef _close_socket(self):
        if self._owns_fd:
            self._owns_fd = False
            # As socket.close(): a reset peer is not an error here.
            if close(self._sock_fd) != 0 and errno != ECONNRESET:
                raise _os_error(errno)
        elif self._sock is not None:
            self._sock.close()
        self._sock = None

    cdef _shutdown_write(self):
        if self._owns_fd:
            if shutdown(self._sock_fd, SHUT_WR) != 0:
                raise _os_error(errno)
        else:
            self._sock.shutdown(socket.SHUT_WR)

    def __dealloc__(self):
        self._unregister()
        if self._owns_fd:   # __del__ closes it; this is only a backstop
            close(self._sock_fd)

    cdef _unregister(self):
        """Stop being the transport of our fd in the loop's table."""
        cdef Loop loop = self._loop
        cdef int fd = self._sock_fd
        if (loop is not None and 0 <= fd < loop._fds_cap
                and loop._fds[fd].transport == <PyObject *>self):
            loop._fds[fd].transport = NULL

    def get_extra_info(self, name, default=None):
        """Information about the transport or its resources ('socket', ...)."""
        if name == "peername":
            return self._peername
        cdef sockaddr_storage addr
        cdef socklen_t addrlen
        if name == "sockname":
            if self._sockname is _UNSET:
                self._sockname = None
                if self._owns_fd:
                    addrlen = sizeof(addr)
                    memset(&addr, 0, sizeof(addr))   # see _sockaddr_to_python
                    if getsockname(self._sock_fd, <sockaddr *>&addr, &addrlen) == 0:
                        self._sockname = _sockaddr_to_python(<sockaddr *>&addr, addrlen)
                elif self._sock is not None:
                    try:
                        self._sockname = self._sock.getsockname()
                    except OSError:
                        pass
            return self._sockname
        if name == "socket":
            if self._trsock is None:
                sock = self._socket_object()
                if sock is None and self._family:
                    sock = self._closed_socket()
                if sock is not None:
                    self._trsock = _trsock.TransportSocket(sock)
            return self._trsock
        if self._extra is not None:
            return self._extra.get(name, default)
        return default

    cdef object _closed_socket(self):
        """What asyncio answers for 'socket' after the close, its closed
        socket object, for a connection whose socket object was never made
        (rare: a new socket of the same kind, closed at once)."""
        try:
            sock = _accepted_socket(self._family, self._type, self._proto, None)
        except OSError:
            return None
        sock.close()
        return sock

    def __repr__(self):
        info = [type(self).__name__]
        if not self._socket_open():
            info.append("closed")
        elif self._closing:
            info.append("closing")
        info.append(f"fd={self._sock_fd}")
        if self._loop is not None and not self._closing:
            # What the loop watches, as asyncio asks its selector: not the
            # reads after an EOF the protocol kept the connection open for.
            info.append("read=" + ("polling" if self._watching(self._sock_fd, False) else "idle"))
            info.append("write=" + ("polling" if self._buffer_size else "idle")
                        + f" bufsize={self._buffer_size}")
        return "<" + " ".join(info) + ">"

    def __del__(self):
        if self._socket_open():
            warnings.warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._close_socket()
            if self._server is not None:
                if _PY313:
                    self._server._detach(self)
                else:
                    self._server._detach()
                self._server = None

    # -- BaseTransport --



    def set_protocol(self, protocol):
        self._feeds_tls = type(protocol) is SSLProtocol   # (also a BufferedProtocol)
        self._buffered = isinstance(protocol, _protocols.BufferedProtocol)
        self._feeds_stream = _feeds_stream_reader(protocol)
        self._protocol = protocol
        self._protocol_connected = True

    @property
    def __class__(self):
        return _SocketTransportInterface

    cdef Py_ssize_t _pending_size(self):
        return self._buffer_size


    def close(self):
        """Close after the queued data is sent; connection_lost(None) follows."""
        if self._closing:
            return
        self._send_corked()
        self._closing = True
        self._loop._remove_watch(self._sock_fd, False)
        if not self._buffer_size:
            self._conn_lost += 1
            self._loop._remove_watch(self._sock_fd, True)
            self._loop._call_soon(self._call_connection_lost, (None,), None)

    def abort(self):
        """Close now, dropping queued data; connection_lost(None) follows."""
        self._force_close(None)

    # -- ReadTransport --

    def is_reading(self):
        return not self._paused and not self._closing

    def pause_reading(self):
        if not self.is_reading():
            return
        self._paused = True
        self._loop._remove_watch(self._sock_fd, False)
        if self._loop._debug:
            logger.debug("%r pauses reading", self)

    def resume_reading(self):
        if self._closing or not self._paused:
            return
        self._paused = False
        self._start_reading()
        if self._loop._debug:
            logger.debug("%r resumes reading", self)

    def _start_reading(self):
        if self.is_reading():
            self._loop._add_native_reader(self._sock_fd, self, True, False)

    cdef int _read_event(self) except -1:
        if _still_reads(self._loop, self._sock_fd, self):
            self._do_read()
        return 0

    def _read_ready(self):
        self._do_read()

    cdef _do_read(self):
        if self._conn_lost:
            return
        if self._buffered:
            self._read_into_buffer()
        else:
            self._read_bytes()

    cdef _read_bytes(self):
        cdef ssize_t n
        if self._feeds_stream:
            try:
                n = _recv_into_stream_reader(self._sock_fd, self._protocol, self._big_reads)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")
                return
            if n != _NOT_DIRECT:
                self._read_done(n)
                return
        data = _read_to_bytes(self._sock_fd, True, _READ_SCRATCH_SIZE,
                              _INTO_AVAILABLE if self._big_reads else _INTO_SCRATCH, &n)
        if not self._read_done(n):
            return
        self._corked = True
        try:
            self._protocol.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            # _force_close() sends what was corked before it closes.
            self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")
        finally:
            self._uncork()

    cdef bint _read_done(self, ssize_t n) except -1:
        """Act on a read's outcome (n bytes, 0 at EOF, or -errno); True if
        bytes came that still need handing to the protocol."""
        if n < 0:
            if not _would_block(-n):
                self._fatal_error(_os_error(-n), "Fatal read error on socket transport")
            return False
        if n == 0:
            self._on_eof()
            return False
        self._big_reads = n >= _DIRECT_READ_THRESHOLD
        return True

    cdef _read_into_buffer(self):
        cdef Py_buffer view
        cdef ssize_t n
        if self._feeds_tls:
            # TLS takes the ciphertext from the scratch buffer (its BIO
            # copies it), with no get_buffer() round trip.
            n = recv(self._sock_fd, _read_scratch, _READ_SCRATCH_SIZE, 0)
        else:
            try:
                buf = self._protocol.get_buffer(-1)
                if not len(buf):
                    raise RuntimeError("get_buffer() returned an empty buffer")
                PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
                return
            n = recv(self._sock_fd, view.buf, <size_t>view.len, 0)
            PyBuffer_Release(&view)
        if n < 0:
            if not _would_block(errno):
                self._fatal_error(_os_error(errno), "Fatal read error on socket transport")
            return
        if n == 0:
            self._on_eof()
            return
        self._corked = True
        try:
            if self._feeds_tls:
                (<SSLProtocol>self._protocol)._feed(n)
            else:
                self._protocol.buffer_updated(n)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            # _force_close() sends what was corked before it closes.
            self._fatal_error(exc, "Fatal error: protocol.buffer_updated() call failed.")
        finally:
            self._uncork()

    cdef _on_eof(self):
        if self._loop._debug:
            logger.debug("%r received EOF", self)
        try:
            keep_open = self._protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
            return
        if keep_open:
            # The protocol may still write; there is nothing more to read.
            self._loop._remove_watch(self._sock_fd, False)
        else:
            self.close()

    # -- WriteTransport --

    def write(self, data):
        """Send data, queueing what the socket does not take at once."""
        cdef Py_buffer view
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, "
                            f"not {type(data).__name__!r}")
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._empty_waiter is not None:
            raise RuntimeError("unable to write; sendfile is in progress")
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            if view.len == 0:
                return
            if self._conn_lost:
                if self._conn_lost >= _LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                    logger.warning("socket.send() raised exception.")
                self._conn_lost += 1
                return
            if not self._buffer_size:
                if self._corked:
                    # The first write of the callback waits, on its own: an
                    # answer in one write needs no queue (no deque per idle
                    # connection that once answered).
                    self._corked_data = (data if type(data) is bytes
                                         else PyBytes_FromStringAndSize(<char *>view.buf, view.len))
                    self._buffer_size = view.len
                    self._cork_pending = True
                else:
                    self._send_or_queue(data, <char *>view.buf, view.len)
                    if not self._buffer_size:
                        return   # all sent (or a fatal error): nothing to pause for
            else:
                self._queue_corked_data()
                self._buffer.append(data if type(data) is bytes
                                    else PyBytes_FromStringAndSize(<char *>view.buf, view.len))
                self._buffer_size += view.len
        finally:
            PyBuffer_Release(&view)
        self._maybe_pause_protocol()

    cdef int _send_or_queue(self, data, char *buf, Py_ssize_t size) except -1:
        """With nothing queued: send at once, and queue what the kernel
        does not take (data's bytes are buf[:size])."""
        cdef ssize_t n = send(self._sock_fd, buf, <size_t>size, MSG_NOSIGNAL)
        if n < 0:
            if not _would_block(errno):
                self._fatal_error(_os_error(errno), "Fatal write error on socket transport")
                return 0
            n = 0
        if n == size:
            return 0
        self._loop._add_watch(self._sock_fd, True, self._write_ready, None)
        if self._buffer is None:
            self._buffer = collections.deque()
        if type(data) is bytes:
            # Immutable: queue it as is and remember where we are.
            self._buffer.append(data)
            self._buffer_offset = n
        else:
            self._buffer.append(PyBytes_FromStringAndSize(buf + n, size - n))
        self._buffer_size += size - n
        return 0

    cdef inline _queue_corked_data(self):
        """A second write while corked: the first joins the queue."""
        if self._corked_data is not None:
            if self._buffer is None:
                self._buffer = collections.deque()
            self._buffer.append(self._corked_data)
            self._corked_data = None

    cdef inline _uncork(self):
        self._corked = False
        if self._cork_pending:
            self._send_corked()

    cdef int _send_corked(self) except -1:
        """Try to send what write() queued while corked, as write() itself
        would have; what the kernel does not take waits for writability."""
        if not self._cork_pending:
            return 0
        self._cork_pending = False
        data = self._corked_data
        if data is not None:
            # One write: sent as an uncorked write() would have sent it.
            self._corked_data = None
            self._buffer_size = 0
            return self._send_or_queue(data, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
        if self._flush() < 0:
            return 0  # fatal error: the transport is closing
        if self._buffer_size:
            self._loop._add_watch(self._sock_fd, True, self._write_ready, None)
        return 0

    cdef _maybe_pause_protocol(self):
        # Corked data over the high-water mark (after a write, or a lower
        # mark set) is sent first: pause_writing() is for data the kernel
        # did not take, never for the cork.
        if self._cork_pending and self._buffer_size > self._high_water:
            self._send_corked()
        _FlowControlTransport._maybe_pause_protocol(self)

    def writelines(self, list_of_data):
        """Write each buffer; they go out together in one sendmsg()."""
        if self._eof:
            raise RuntimeError("Cannot call writelines() after write_eof()")
        if self._empty_waiter is not None:
            raise RuntimeError("unable to writelines; sendfile is in progress")
        was_empty = not self._buffer_size
        if self._conn_lost:
            for data in list_of_data:
                self.write(data)
            return
        self._queue_corked_data()
        if self._buffer is None:
            self._buffer = collections.deque()
        for data in list_of_data:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"data argument must be a bytes-like object, "
                                f"not {type(data).__name__!r}")
            chunk = data if type(data) is bytes else bytes(data)
            if chunk:
                self._buffer.append(chunk)
                self._buffer_size += len(chunk)
        if was_empty and self._buffer_size:
            self._cork_pending = True
            if not self._corked:
                self._send_corked()
        self._maybe_pause_protocol()

    cdef Py_ssize_t _flush(self) except -2:
        """One sendmsg() of the head of the queue.  Returns the bytes sent,
        or -1 after a fatal error (the transport is then closing)."""
        cdef iovec iov[_MAX_IOV]
        cdef msghdr msg
        cdef int count = 0
        cdef ssize_t n
        cdef Py_ssize_t offset = self._buffer_offset, size
        for chunk in self._buffer:
            size = PyBytes_GET_SIZE(chunk)
            iov[count].iov_base = PyBytes_AS_STRING(chunk) + offset
            iov[count].iov_len = <size_t>(size - offset)
            offset = 0
            count += 1
            if count == _MAX_IOV:
                break
        memset(&msg, 0, sizeof(msg))
        msg.msg_iov = iov
        msg.msg_iovlen = count
        n = sendmsg(self._sock_fd, &msg, MSG_NOSIGNAL)
        if n < 0:
            if _would_block(errno):
                return 0
            exc = _os_error(errno)
            self._loop._remove_watch(self._sock_fd, True)
            self._buffer.clear()
            self._buffer_size = 0
            self._buffer_offset = 0
            self._fatal_error(exc, "Fatal write error on socket transport")
            if self._empty_waiter is not None:
                self._empty_waiter.set_exception(exc)
            return -1
        self._buffer_size -= n
        # Drop the buffers sent whole; remember how far into the next we got.
        n += self._buffer_offset
        while n:
            size = PyBytes_GET_SIZE(self._buffer[0])
            if n < size:
                break
            n -= size
            self._buffer.popleft()
        self._buffer_offset = n
        return n

    def _write_ready(self):
        if self._conn_lost or not self._buffer_size:
            return
        if self._flush() < 0:
            return
        self._maybe_resume_protocol()  # may write more
        if not self._buffer_size:
            self._loop._remove_watch(self._sock_fd, True)
            if self._empty_waiter is not None:
                self._empty_waiter.set_result(None)
            if self._closing:
                # close() was waiting for the queue to drain.  Counted, so a
                # later abort() finds the connection lost already (asyncio's
                # abort() fails there).
                self._conn_lost += 1
                self._call_connection_lost(None)
            elif self._eof:
                self._shutdown_write()

    def write_eof(self):
        """Shut the write side down once the queue is flushed."""
        if self._closing or self._eof:
            return
        self._send_corked()
        self._eof = True
        if not self._buffer_size:
            self._shutdown_write()

    def can_write_eof(self):
        return True






    # -- closing --

    cdef _fatal_error(self, exc, message):
        if isinstance(exc, OSError):
            # Connection errors are the peer's business, not a bug: log them
            # in debug mode only, as asyncio does.
            if self._loop._debug:
                logger.debug("%r: %s", self, message, exc_info=exc)
        else:
            self._loop.call_exception_handler({
                "message": message,
                "exception": exc,
                "transport": self,
                "protocol": self._protocol,
            })
        self._force_close(exc)

    def _force_close(self, exc):
        # What write() queued while corked would have been sent by now
        # without the cork; send it (that may itself fail and close us).
        self._send_corked()
        if self._conn_lost:
            return
        if self._buffer_size:
            self._buffer.clear()
            self._buffer_size = 0
            self._buffer_offset = 0
            self._loop._remove_watch(self._sock_fd, True)
        if not self._closing:
            self._closing = True
            self._loop._remove_watch(self._sock_fd, False)
        self._conn_lost += 1
        self._loop._call_soon(self._call_connection_lost, (exc,), None)

    def _call_connection_lost(self, exc):
        try:
            if self._protocol_connected:
                self._protocol.connection_lost(exc)
        finally:
            self._unregister()
            # What get_extra_info() answers after the close: asyncio read
            # these when the transport was made.  (A transport that served
            # its fd alone makes its 'socket' answer when asked.)
            self.get_extra_info("sockname")
            if self._sock is not None:
                self.get_extra_info("socket")
            self._close_socket()
            self._protocol = None
            # _loop stays: it is a typed field that late calls dereference
            # (asyncio drops it to break cycles; the loop holds no strong
            # reference to a closed transport, so there is none to break).
            server = self._server
            if server is not None:
                if _PY313:
                    server._detach(self)
                else:
                    server._detach()
                self._server = None

    # -- sendfile support (asyncio's sendfile() drives these) --

    def _make_empty_waiter(self):
        if self._empty_waiter is not None:
            raise RuntimeError("Empty waiter is already set")
        self._empty_waiter = self._loop.create_future()
        if not self._buffer_size:
            self._empty_waiter.set_result(None)
        return self._empty_waiter

    def _reset_empty_waiter(self):
        self._empty_waiter = None


cdef object _SocketTransportInterface = _interface_class(
    "SocketTransport", _selector_events._SelectorSocketTransport)


from libc.errno cimport ECONNABORTED

cdef object _SOCKET_ACCEPT = socket.socket.accept


cdef class _StreamServing:
    """Accepts connections on one listening socket for a Server."""

    cdef Loop loop
    cdef object protocol_factory, sock, sslcontext, server
    cdef object ssl_handshake_timeout, ssl_shutdown_timeout
    cdef int backlog
    # The listener's family, type and proto, when accepting natively
    # (_accept_native) gives exactly what sock.accept() would: a plain
    # socket.socket of family AF_INET, AF_INET6 or AF_UNIX.
    cdef bint _native
    cdef int _family, _type, _proto

    def accept_ready(self):
        # Accept up to backlog connections per readiness: a burst of clients
        # is served without one poll per connection.
        cdef int i
        if self._native and socket.socket.accept is _SOCKET_ACCEPT:
            self._accept_native()
            return
        for i in range(self.backlog):
            try:
                conn, addr = self.sock.accept()
                conn.setblocking(False)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                self._accept_failed(exc)
                return
            self.connection_accepted(conn, -1, addr)

    cdef _accept_native(self):
        """accept_ready's loop without socket.accept()'s Python frames: one
        accept4() per connection, a would-block that ends the burst without
        an exception, and the peer's address converted once."""
        cdef int i, fd, conn_fd, err
        cdef sockaddr_storage peer
        cdef socklen_t peerlen
        for i in range(self.backlog):
            # Asked afresh each time: the protocol factory, which runs
            # between two accepts, may have closed the server.
            fd = self.sock.fileno()
            if fd < 0:
                return
            peerlen = sizeof(peer)
            memset(&peer, 0, sizeof(peer))   # see _sockaddr_to_python
            conn_fd = lx_accept_nonblock(fd, <sockaddr *>&peer, &peerlen)
            if conn_fd < 0:
                err = errno
                if err == EINTR:
                    PyErr_CheckSignals()   # PEP 475, as socket.accept() does
                    continue
                if _would_block(err) or err == ECONNABORTED:
                    return
                self._accept_failed(_os_error(err))
                return
            conn = None
            try:
                peername = _sockaddr_to_python(<sockaddr *>&peer, peerlen)
                # A plain connection is served from its fd alone (see
                # SocketTransport._owns_fd); TLS and debug mode's log want
                # the socket object.
                if self.sslcontext is not None or self.loop._debug:
                    conn = _accepted_socket(self._family, self._type, self._proto, conn_fd)
            except BaseException:
                if conn is None:
                    close(conn_fd)
                else:
                    conn.close()
                raise
            self.connection_accepted(conn, conn_fd, peername)

    cdef _accept_failed(self, exc):
        if exc.errno in (errno_mod.EMFILE, errno_mod.ENFILE,
                         errno_mod.ENOBUFS, errno_mod.ENOMEM):
            # Out of fds or memory: report, stop accepting for a
            # moment (the backlog holds the clients), then retry.
            self.loop.call_exception_handler({
                "message": "socket.accept() out of system resource",
                "exception": exc,
                "socket": _trsock.TransportSocket(self.sock),
            })
            self.loop._remove_watch(self.sock.fileno(), False)
            self.loop.call_later(_constants.ACCEPT_RETRY_DELAY, self.start)
            return
        raise exc  # the loop's exception handler logs it

    cdef connection_accepted(self, conn, int fd, peername):
        """Serve an accepted connection: the socket object conn, or when it
        is None the bare fd, which is then ours to close (the transport's
        once it has one)."""
        cdef SocketTransport transport = None
        protocol = None
        if self.loop._debug:
            logger.debug("%r got a new connection from %r: %r", self.server, peername, conn)
        try:
            protocol = self.protocol_factory()
            if self.sslcontext is None:
                transport = SocketTransport.__new__(SocketTransport)
                if conn is None:
                    transport._setup_accepted(self.loop, fd, self._family, self._type,
                                              self._proto, protocol, peername, self.server)
                else:
                    transport._setup(self.loop, conn, protocol, None, None, peername, self.server)
                return
        except (SystemExit, KeyboardInterrupt):
            _close_accepted(conn, fd, transport)
            raise
        except BaseException as exc:
            _close_accepted(conn, fd, transport)
            _report_accept_error(self.loop, exc, protocol, None)
            return
        # TLS: the handshake is awaited by a task, as asyncio does.
        self.loop.create_task(_accept_tls(self.loop, conn, protocol, {"peername": peername}, self))

    def start(self):
        if self.sock.fileno() < 0:
            return  # closed while we waited to retry
        self.loop._add_watch(self.sock, False, self.accept_ready, None)


cdef _close_accepted(conn, int fd, SocketTransport transport):
    """Close a connection whose setup failed."""
    if conn is not None:
        conn.close()
    elif transport is not None:
        transport._close_socket()   # it took the fd (a no-op if it closed it)
    else:
        close(fd)


cdef _report_accept_error(Loop loop, exc, protocol, transport):
    # asyncio reports failures to set up an accepted connection in debug
    # mode only (a client that goes away mid-handshake is routine).
    if loop._debug:
        context = {"message": "Error on transport creation for incoming connection",
                   "exception": exc}
        if protocol is not None:
            context["protocol"] = protocol
        if transport is not None:
            context["transport"] = transport
        loop.call_exception_handler(context)


async def _accept_tls(Loop loop, conn, protocol, extra, _StreamServing serving):
    transport = None
    try:
        waiter = loop.create_future()
        transport = loop._make_ssl_transport(
            conn, protocol, serving.sslcontext, waiter=waiter, server_side=True,
            extra=extra, server=serving.server,
            ssl_handshake_timeout=serving.ssl_handshake_timeout,
            ssl_shutdown_timeout=serving.ssl_shutdown_timeout)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        _report_accept_error(loop, exc, protocol, transport)


cdef _start_serving(Loop loop, protocol_factory, sock, sslcontext, server, backlog,
                    ssl_handshake_timeout, ssl_shutdown_timeout):
    cdef _StreamServing serving = _StreamServing.__new__(_StreamServing)
    serving.loop = loop
    serving.protocol_factory = protocol_factory
    serving.sock = sock
    serving.sslcontext = sslcontext
    serving.server = server
    serving.backlog = backlog
    serving.ssl_handshake_timeout = ssl_handshake_timeout
    serving.ssl_shutdown_timeout = ssl_shutdown_timeout
    if type(sock) is _socket_type and sock.family in (AF_INET, AF_INET6, AF_UNIX):
        serving._native = True
        serving._family = sock.family
        serving._type = sock.type
        serving._proto = sock.proto
    serving.start()


cdef _stop_serving(Loop loop, sock):
    # A Unix server socket made by create_unix_server(cleanup_socket=True)
    # (3.13+) has its file removed, if it is still the one we made.
    unix_sockets = loop._unix_server_sockets
    path = None
    if unix_sockets and sock in unix_sockets:
        path = sock.getsockname()
    loop._remove_watch(sock.fileno(), False)
    sock.close()
    if path is not None:
        inode = unix_sockets.pop(sock)
        try:
            if os.stat(path).st_ino == inode:
                os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as err:
            logger.error("Unable to clean up listening UNIX socket %r: %r", path, err)


async def _sendfile_native(Loop loop, SocketTransport transp, file, offset, count):
    # Hand the socket to sock_sendfile() while the transport is quiet: reading
    # paused, nothing queued, and no longer registered as the fd's owner.
    fd = transp._sock_fd
    transp._unregister()
    resume_reading = transp.is_reading()
    transp.pause_reading()
    await transp._make_empty_waiter()
    try:
        return await loop.sock_sendfile(transp._socket_object(), file, offset, count, fallback=False)
    finally:
        transp._reset_empty_waiter()
        if resume_reading:
            transp.resume_reading()
        if transp._socket_open() and fd < loop._fds_cap:
            loop._fds[fd].transport = <PyObject *>transp


class _SendfileFallbackProtocol(_protocols.Protocol):
    """Stands in for the transport's protocol while sendfile() copies a file
    through write(): it turns pause_writing/resume_writing into a drain()
    the copy loop awaits, and hands everything else to the real protocol."""

    def __init__(self, transport):
        self._transport = transport
        self._protocol = transport.get_protocol()
        self._resume_reading = transport.is_reading()
        self._resume_writing = getattr(transport, "_protocol_paused", False)
        self._writable = None
        transport.pause_reading()
        transport.set_protocol(self)
        if self._resume_writing:
            self._writable = asyncio.get_running_loop().create_future()

    async def drain(self):
        if self._transport.is_closing():
            raise ConnectionError("Connection closed by peer")
        if self._writable is not None:
            await self._writable

    def connection_made(self, transport):
        raise RuntimeError("Invalid state: connection should have been established already.")

    def connection_lost(self, exc):
        if self._writable is not None:
            self._writable.set_exception(
                exc if exc is not None else ConnectionError("Connection is closed by peer"))
            self._writable = None
        self._protocol.connection_lost(exc)

    def pause_writing(self):
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self):
        if self._writable is not None:
            self._writable.set_result(None)
            self._writable = None

    def data_received(self, data):
        raise RuntimeError("Invalid state: reading should be paused")

    def eof_received(self):
        raise RuntimeError("Invalid state: reading should be paused")

    async def restore(self):
        self._transport.set_protocol(self._protocol)
        if self._resume_reading:
            self._transport.resume_reading()
        if self._writable is not None:
            self._writable.cancel()
        if self._resume_writing:
            self._protocol.resume_writing()


async def _sendfile_fallback(Loop loop, transport, file, offset, count):
    """sendfile() by reading the file in the default executor and writing
    each block, respecting the transport's flow control."""
    if offset:
        file.seek(offset)
    blocksize = min(count, 16384) if count else 16384
    buf = bytearray(blocksize)
    total = 0
    proto = _SendfileFallbackProtocol(transport)
    try:
        while True:
            if count:
                blocksize = min(count - total, blocksize)
                if blocksize <= 0:
                    return total
            view = memoryview(buf)[:blocksize]
            nread = await loop.run_in_executor(None, file.readinto, view)
            if not nread:
                return total
            await proto.drain()
            transport.write(bytes(view[:nread]))
            total += nread
    finally:
        if total > 0 and hasattr(file, "seek"):
            file.seek(offset + total)
        await proto.restore()
