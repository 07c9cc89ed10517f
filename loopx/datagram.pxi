# Datagram transports (UDP over IPv4/IPv6, Unix datagram sockets).  Included
# into _loop.pyx after transport_base.pxi.
#
# Behaviour is that of asyncio.selector_events._SelectorDatagramTransport in
# the running Python: what is sent at once and what is queued, which errors go
# to error_received() and which close the transport, when connection_lost()
# runs.  Version differences followed: pause_reading() and resume_reading()
# work where asyncio's datagram transport has them (3.12, and 3.11 from a
# patch release on: we look at the running asyncio's classes); 3.13 sends
# empty datagrams (gh-113812) and counts 8 bytes of header per queued
# datagram in the write buffer size.
#
# asyncio bugs not copied: 3.13.0 adds the header on queueing but never takes
# it off again (fixed upstream by gh-135444, which we follow); the buffer size
# is reset when abort() drops the queue; connection_lost() is never called
# twice (it could be, when abort() followed a close() that had to flush); and
# sendto() on an unconnected transport after connection_lost() drops the
# datagram like a connected one does, instead of failing with AttributeError.
#
# The fast path.  For plain socket.socket objects of family AF_INET/AF_INET6
# (the only ones where speed matters) receiving and sending are direct
# syscalls:
#   - queued datagrams are read with one recvmmsg() (csrc/dgram_batch.h)
#     into a scratch buffer, so a datagram costs a bytes object of its own
#     size (asyncio's sock.recvfrom(256 KiB) allocates 256 KiB per datagram
#     and shrinks it), and delivered in batches as long as that is
#     indistinguishable from asyncio's one per loop iteration (_read_batch).
#   - the sender's address tuple is built once per peer: raw sockaddrs of
#     recent senders are kept with their tuples, and the next datagram from a
#     known peer gets the same (immutable) tuple.
#   - sendto() with exactly the last sender's tuple (the echo-server case)
#     reuses its raw sockaddr; any other numeric address is converted the way
#     CPython's socket module does (inet_pton, then port checks), and cached.
# Anything else (host names, '' or '<broadcast>', odd port types, other
# families, socket subclasses) goes through the socket object's own methods,
# so the results and the exceptions are exactly the socket module's.
#
# Loopback UDP is kernel-bound: profiling the echo benchmark puts about 80%
# of the server's CPU time in sendto/recvfrom, so these savings show as a
# fraction of the remaining 20%.

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.tuple cimport PyTuple_GET_SIZE, PyTuple_GET_ITEM
from libc.string cimport memcmp, memcpy, memset
import collections
from asyncio import selector_events as _selector_events, trsock as _trsock


cdef extern from "<sys/socket.h>" nogil:
    ssize_t recvfrom(int fd, void *buf, size_t n, int flags, sockaddr *addr, socklen_t *addrlen)
    ssize_t sendto(int fd, const void *buf, size_t n, int flags, const sockaddr *addr, socklen_t addrlen)
    ssize_t send(int fd, const void *buf, size_t n, int flags)


cdef extern from "dgram_batch.h" nogil:
    ctypedef struct lx_rdgram:
        sockaddr_in6 addr
        socklen_t addrlen
        size_t len
    int lx_recv_datagrams(int fd, char *buf, size_t stride, size_t slot, lx_rdgram *d, int n)
    int LX_RECV_BATCH_MAX


cdef enum:
    # The peer cache (see _peer_of): 2**_PEER_CACHE_BITS direct-mapped
    # slots, enough that the few dozen peers of a busy server rarely share
    # one (two that do keep evicting each other, and every eviction costs
    # inet_ntop() and a new tuple).
    _PEER_CACHE_BITS = 8
    _PEER_CACHE_SIZE = 1 << _PEER_CACHE_BITS
    # Datagrams read per wakeup at most (see _read_batch): enough to drain
    # what a busy server finds queued, few enough not to starve other fds.
    # At most LX_DGRAM_BATCH_MAX.
    _DATAGRAM_READ_BATCH = 16


# Where recvmmsg() puts a batch: slot i at i * _READ_SCRATCH_SIZE, so any
# max_size the native path takes fits.  Like _read_scratch, it only holds
# datagrams between the syscall and their copy into bytes objects right
# after, with the GIL held.  Pages the kernel never wrote to (past the
# datagrams' sizes) are never made resident.
cdef char _dgram_scratch[_DATAGRAM_READ_BATCH * _READ_SCRATCH_SIZE]

# For the tests: how many datagrams one read takes at most on this build.
_DATAGRAMS_PER_READ = LX_RECV_BATCH_MAX


ctypedef struct _PeerSlot:
    sockaddr_in6 raw      # holds either family
    socklen_t rawlen


cdef inline Py_ssize_t _peer_slot(sockaddr *sa):
    """The peer cache slot of an AF_INET/AF_INET6 address: its port and last
    address bytes (the parts that differ between the peers of one endpoint),
    hashed multiplicatively so that neighbouring ports spread out."""
    cdef const unsigned char *b
    cdef uint32_t h, port
    if sa.sa_family == AF_INET:
        h = (<sockaddr_in *>sa).sin_addr.s_addr
        port = (<sockaddr_in *>sa).sin_port
    else:
        b = (<sockaddr_in6 *>sa).sin6_addr.s6_addr
        h = ((<uint32_t>b[12] << 24) | (<uint32_t>b[13] << 16) | (<uint32_t>b[14] << 8)
             | b[15])
        port = (<sockaddr_in6 *>sa).sin6_port
    h = (h ^ (port << 16) ^ port) * <uint32_t>2654435761u
    return h >> (32 - _PEER_CACHE_BITS)


cdef bint _DATAGRAM_EMPTY_SENT = sys.version_info >= (3, 13)   # gh-113812
cdef Py_ssize_t _DATAGRAM_HEADER_SIZE = 8 if _DATAGRAM_EMPTY_SENT else 0
cdef object _TransportSocket = _trsock.TransportSocket
# Early 3.11 releases have pause_reading() on stream transports only; the
# datagram transport inherits ReadTransport's NotImplementedError stubs.
cdef bint _DATAGRAM_CAN_PAUSE = "pause_reading" in _selector_events._SelectorTransport.__dict__


cdef inline bint _is_exact_uint(obj, unsigned long long limit):
    # An int (not a subclass: bool and IntEnum take the socket module's
    # route) within [0, limit].
    if type(obj) is not int:
        return False
    if obj < 0 or obj > limit:
        return False
    return True


cdef bint _tuple_to_sockaddr(int family, addr, sockaddr_storage *out, socklen_t *outlen) except -1:
    """Convert a numeric address tuple the way socket.sendto() would.

    Returns False (and leaves *out alone) for anything that is not plainly
    numeric: the caller then lets the socket module convert it, which is also
    where every invalid address gets its exact exception.
    """
    cdef sockaddr_storage converted   # *out stays as it was until we succeed
    cdef sockaddr_in *a4 = <sockaddr_in *>&converted
    cdef sockaddr_in6 *a6 = <sockaddr_in6 *>&converted
    cdef Py_ssize_t n
    cdef bytes host
    if type(addr) is not tuple:
        return False
    n = PyTuple_GET_SIZE(addr)
    if n < 2:
        return False
    h = <object>PyTuple_GET_ITEM(addr, 0)
    port = <object>PyTuple_GET_ITEM(addr, 1)
    if type(h) is not str or not _is_exact_uint(port, 0xffff):
        return False
    if not (<str>h).isascii():
        return False
    host = (<str>h).encode("ascii")
    if b"\0" in host:
        return False
    if family == AF_INET:
        if n != 2:
            return False
        memset(a4, 0, sizeof(sockaddr_in))
        # Same test as the socket module's setipaddr(): inet_pton first.
        if inet_pton(AF_INET, host, &a4.sin_addr) != 1:
            return False
        a4.sin_family = AF_INET
        a4.sin_port = htons(<unsigned short>port)
        memcpy(out, a4, sizeof(sockaddr_in))
        outlen[0] = sizeof(sockaddr_in)
        return True
    if family == AF_INET6:
        if n > 4:
            return False
        flowinfo = <object>PyTuple_GET_ITEM(addr, 2) if n > 2 else 0
        scope_id = <object>PyTuple_GET_ITEM(addr, 3) if n > 3 else 0
        if not _is_exact_uint(flowinfo, 0xfffff) or not _is_exact_uint(scope_id, 0xffffffff):
            return False
        memset(a6, 0, sizeof(sockaddr_in6))
        if inet_pton(AF_INET6, host, &a6.sin6_addr) != 1:
            return False
        a6.sin6_family = AF_INET6
        a6.sin6_port = htons(<unsigned short>port)
        a6.sin6_flowinfo = htonl(<uint32_t>flowinfo)
        a6.sin6_scope_id = <uint32_t>scope_id
        memcpy(out, a6, sizeof(sockaddr_in6))
        outlen[0] = sizeof(sockaddr_in6)
        return True
    return False


cdef bint _same_numeric_address(a, b):
    """a and b are the same address tuple, element types included (an
    equal-comparing float port must not reuse a converted int port)."""
    cdef Py_ssize_t i, n
    if a is b:
        return True
    if type(a) is not tuple or type(b) is not tuple:
        return False
    n = PyTuple_GET_SIZE(a)
    if n != PyTuple_GET_SIZE(b):
        return False
    for i in range(n):
        x = <object>PyTuple_GET_ITEM(a, i)
        y = <object>PyTuple_GET_ITEM(b, i)
        if type(x) is not type(y) or x != y:
            return False
    return True


@cython.no_gc_clear
@cython.nonecheck(True)   # a transport made with __new__ has no loop: raise, not crash
@cython.final
cdef class DatagramTransport(_FlowControlTransport):
    """asyncio.DatagramTransport over a datagram socket."""
    cdef:
        readonly object _sock   # readonly: CPython's tests look at transport._sock
        int _sock_fd            # as registered with the loop (and in reprs)
        object _address         # remote_addr of the endpoint, else None
        bint _connected         # the socket has a peer: send() not sendto()
        bint _native            # AF_INET/AF_INET6 socket.socket: syscalls here
        int _family
        object _buffer          # deque of (bytes, address)
        Py_ssize_t _buffer_size
        Py_ssize_t _conn_lost   # >0 once connection_lost is scheduled or ran
        bint _lost_called       # connection_lost has been called
        bint _paused            # pause_reading() (where asyncio has it)
        public Py_ssize_t max_size
        # Datagrams read but not yet delivered (see _read_batch):
        # [_held_next, _held_count) of _held_data, their senders in _held.
        list _held_data
        lx_rdgram _held[_DATAGRAM_READ_BATCH]
        int _held_next
        int _held_count
        bint _held_marked       # in the loop's _readable_after_poll
        uint64_t _event_poll    # the loop's _poll_count when a read event last ran
        # The sender of the datagram last delivered, raw and as a tuple.
        sockaddr_storage _peer_raw
        socklen_t _peer_rawlen
        object _peer_tuple
        # Recent senders (a server hears from several peers in turn): a
        # direct-mapped cache from raw address to its tuple, slot chosen by
        # _peer_slot().  Allocated when a second sender shows up, so an
        # endpoint that talks to one peer never pays for it.
        _PeerSlot *_peer_cache
        list _peer_cache_tuple
        # The last address sendto() converted itself, raw and as given.
        sockaddr_storage _dest_raw
        socklen_t _dest_rawlen
        object _dest_tuple

    def __init__(self, Loop loop not None, sock, protocol, address=None,
                 waiter=None, extra=None):
        self._init_base(loop, protocol, extra)
        self._set_write_buffer_limits(None, None)
        self._extra["socket"] = _TransportSocket(sock)
        try:
            self._extra["sockname"] = sock.getsockname()
        except OSError:
            self._extra["sockname"] = None
        if "peername" not in self._extra:
            try:
                self._extra["peername"] = sock.getpeername()
            except OSError:
                self._extra["peername"] = None
        self._sock = sock
        self._sock_fd = sock.fileno()
        self._address = address
        self._connected = bool(self._extra["peername"])
        self._family = sock.family
        self._native = (type(sock) is _socket_type
                        and (self._family == AF_INET or self._family == AF_INET6))
        self._buffer = collections.deque()
        self._held_data = [None] * _DATAGRAM_READ_BATCH
        self.max_size = _READ_SCRATCH_SIZE
        self._schedule(self._protocol.connection_made, (self,))
        # Start reading only once connection_made() has run.
        self._schedule(self._start_reading, ())
        if waiter is not None:
            # Likewise, the waiter learns of the endpoint after connection_made().
            self._schedule(_set_result_unless_cancelled, (waiter, None))

    def __repr__(self):
        info = [type(self).__name__]
        if self._sock is None:
            info.append("closed")
        elif self._closing:
            info.append("closing")
        info.append(f"fd={self._sock_fd}")
        if not self._loop._closed:
            info.append("read=polling" if self._watching(self._sock_fd, False) else "read=idle")
            state = "polling" if self._watching(self._sock_fd, True) else "idle"
            info.append(f"write=<{state}, bufsize={self._buffer_size}>")
        return "<{}>".format(" ".join(info))

    def __del__(self):
        if self._sock is not None:
            warnings.warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._sock.close()

    def __dealloc__(self):
        PyMem_Free(self._peer_cache)

    @property
    def __class__(self):
        return _DatagramTransportInterface

    cdef Py_ssize_t _pending_size(self):
        return self._buffer_size

    # -- reading --

    def _start_reading(self):
        # The watch is only added while reading is wanted: a transport closed
        # or paused before this ran must not watch an fd it is giving up.
        if self._closing or self._paused:
            return
        self._loop._add_native_reader(self._sock_fd, self, True, False)

    cdef int _read_event(self) except -1:
        # One read event per poll, as a selector reports an fd once: this
        # poll may have reported the socket and also run us for the held
        # datagrams (_schedule_held); the second would deliver a datagram
        # before the callbacks the first one's scheduled.
        if self._event_poll == self._loop._poll_count:
            return 0
        self._event_poll = self._loop._poll_count
        self._held_marked = False
        if _still_reads(self._loop, self._sock_fd, self):
            self._read_batch()
        return 0

    # WriteTransport's stream methods: stubs in asyncio's datagram transport.
    def write(self, data):
        raise NotImplementedError

    def writelines(self, list_of_data):
        raise NotImplementedError

    def write_eof(self):
        raise NotImplementedError

    def can_write_eof(self):
        raise NotImplementedError

    def is_reading(self):
        if not _DATAGRAM_CAN_PAUSE:
            raise NotImplementedError
        return not self._closing and not self._paused

    def pause_reading(self):
        if not _DATAGRAM_CAN_PAUSE:
            raise NotImplementedError
        if self._closing or self._paused:
            return
        self._paused = True
        self._loop._remove_watch(self._sock_fd, False)
        if self._loop._debug:
            logger.debug("%r pauses reading", self)

    def resume_reading(self):
        if not _DATAGRAM_CAN_PAUSE:
            raise NotImplementedError
        if self._closing or not self._paused:
            return
        self._paused = False
        self._start_reading()
        self._schedule_held()
        if self._loop._debug:
            logger.debug("%r resumes reading", self)

    def _read_ready(self):
        self._read_batch()

    cdef _read_batch(self):
        """The socket is readable (or has a pending error), or held
        datagrams are due.

        asyncio reads one datagram per wakeup.  We take all that are queued
        (up to _DATAGRAM_READ_BATCH) with one recvmmsg(), and deliver the
        next as long as that cannot be told apart from asyncio's next loop
        iteration: the protocol scheduled no callback (asyncio would run it
        before reading again), no timer is due (asyncio's next iteration
        would run it after the next datagram: call_later(0) in
        datagram_received), nobody asked the loop to stop, and the transport
        still reads.  Otherwise the rest are held, and delivered after the
        next poll, as if it had reported the socket readable (_schedule_held):
        after the callbacks this iteration scheduled, before anything newer
        from the socket.  What a poll in between could have found on other
        fds waits for a few more datagrams at most; the kernel promises no
        order there anyway.  A busy server saves a poll, a callback and a
        syscall per datagram; a ping-pong peer pays no failing recvfrom() to
        learn that nothing more is queued.

        Answers the protocol sends meanwhile leave at once, each with its own
        sendto(), as in asyncio.  (Holding them for one sendmmsg() at the
        batch's end saves syscalls but costs a ping-pong peer on another core
        its overlap with us: both sides then work in turns.  UDP ping-pong
        measured 0.86x uvloop that way on a 2-core Xeon host, 1.33x without.)
        """
        cdef int n
        cdef Loop loop = self._loop
        try:
            for n in range(_DATAGRAM_READ_BATCH):
                # Only the first step reads the socket: a hold emptied later
                # held all that was queued (recvmmsg() takes a whole batch).
                if not self._read_one(n == 0):
                    return
                if (not self._wants_datagrams() or loop._ready.len or loop._stopping
                        or loop._timer_due()):
                    return
        finally:
            # Also when datagram_received() raised: the rest are not lost.
            self._schedule_held()

    cdef bint _read_one(self, bint may_read) except -1:
        """One datagram to the protocol: the next held one, else, if
        may_read, one from the socket.  False if there was none (or an error
        ended the batch)."""
        cdef int i
        if self._conn_lost:
            return False
        if self._held_next == self._held_count:
            if not may_read:
                return False
            if not (self._native and 0 <= self.max_size <= _READ_SCRATCH_SIZE):
                return self._read_unbatched()
            if not self._hold_queued():
                return False
        i = self._held_next
        self._held_next = i + 1
        data = self._held_data[i]
        self._held_data[i] = None
        self._protocol.datagram_received(data, self._peer_of(&self._held[i]))
        return True

    cdef bint _read_unbatched(self) except -1:
        """One datagram through the socket object's recvfrom(), as asyncio
        reads it (socket subclasses, other families, a max_size beyond the
        scratch buffer)."""
        try:
            data, addr = self._sock.recvfrom(self.max_size)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            # ICMP errors (port unreachable, ...) arrive here: they concern
            # one datagram, not the endpoint, which stays open.
            self._protocol.error_received(exc)
            return False
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on datagram transport")
            return False
        self._protocol.datagram_received(data, addr)
        return True

    cdef bint _hold_queued(self) except -1:
        """Move the datagrams the socket has queued (a batch at most) to the
        hold.  False if there were none, or on an error, which goes to
        error_received() as from asyncio's recvfrom()."""
        cdef int n, i, err
        # The socket's current fd, not the one we registered: if the user
        # closed the socket, reading -1 fails with EBADF like the socket
        # module, instead of reading from whatever reused the number.
        cdef int fd = _socket_fd(self._sock)
        while True:
            n = lx_recv_datagrams(fd, _dgram_scratch, _READ_SCRATCH_SIZE, <size_t>self.max_size,
                                  self._held, _DATAGRAM_READ_BATCH)
            if n > 0:
                break
            err = errno
            if err == EINTR:
                PyErr_CheckSignals()   # PEP 475: run handlers, then retry
                continue
            if err == EAGAIN or err == EWOULDBLOCK:
                return False
            # ICMP errors (port unreachable, ...) arrive here: they concern
            # one datagram, not the endpoint, which stays open.
            self._protocol.error_received(_os_error(err))
            return False
        for i in range(n):
            self._held_data[i] = PyBytes_FromStringAndSize(
                _dgram_scratch + <size_t>i * _READ_SCRATCH_SIZE, <Py_ssize_t>self._held[i].len)
        self._held_next = 0
        self._held_count = n
        return True

    cdef object _peer_of(self, lx_rdgram *d):
        """The sender of a held datagram as a tuple, built once per peer;
        also left in _peer_tuple and _peer_raw, for sendto() to it."""
        cdef sockaddr *sa = <sockaddr *>&d.addr
        cdef socklen_t salen = d.addrlen
        cdef Py_ssize_t slot
        cdef _PeerSlot *cached
        if (self._peer_tuple is not None and salen == self._peer_rawlen
                and memcmp(sa, &self._peer_raw, salen) == 0):
            return self._peer_tuple   # the same sender as last time
        if (self._peer_tuple is not None
                and ((sa.sa_family == AF_INET and salen == sizeof(sockaddr_in))
                     or (sa.sa_family == AF_INET6 and salen == sizeof(sockaddr_in6)))):
            if self._peer_cache == NULL:
                self._peer_cache = <_PeerSlot *>PyMem_Calloc(_PEER_CACHE_SIZE, sizeof(_PeerSlot))
                if self._peer_cache == NULL:
                    raise MemoryError()
                self._peer_cache_tuple = [None] * _PEER_CACHE_SIZE
            slot = _peer_slot(sa)
            cached = &self._peer_cache[slot]
            peer = self._peer_cache_tuple[slot]
            if (peer is None or cached.rawlen != salen
                    or memcmp(&cached.raw, sa, salen) != 0):
                peer = _sockaddr_to_python(sa, salen)
                memcpy(&cached.raw, sa, salen)
                cached.rawlen = salen
                self._peer_cache_tuple[slot] = peer
        else:
            peer = _sockaddr_to_python(sa, salen)
        self._peer_tuple = peer
        memcpy(&self._peer_raw, sa, salen)
        self._peer_rawlen = salen
        return peer

    cdef inline bint _wants_datagrams(self):
        # Reading, neither paused nor closing.
        return not (self._conn_lost or self._closing or self._paused)

    cdef _schedule_held(self):
        """Have the held datagrams delivered after the next poll, where
        asyncio's selector would report them, still queued in the socket
        (unless reading stopped: resume_reading() calls this again)."""
        readable = self._loop._readable_after_poll   # None once the gc cleared the loop
        if (self._held_next < self._held_count and not self._held_marked
                and self._wants_datagrams() and readable is not None):
            self._held_marked = True
            readable.append(self)

    cdef _drop_held(self):
        # Closing: what was read but not delivered goes, as the kernel drops
        # what asyncio had not read yet when it closes the socket.
        cdef int i
        for i in range(self._held_next, self._held_count):
            self._held_data[i] = None
        self._held_next = self._held_count = 0

    # -- writing --

    def sendto(self, data, addr=None):
        """Send one datagram to addr (the endpoint's remote address if it has
        one); queued if the socket cannot take it now."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, "
                            f"not {type(data).__name__!r}")
        if not _DATAGRAM_EMPTY_SENT and not data:
            return
        if self._address:
            if addr is not None and addr != self._address:
                raise ValueError(f"Invalid address: must be None or {self._address}")
            addr = self._address
        if self._conn_lost and (self._address or self._sock is None):
            if self._conn_lost >= _LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning("socket.send() raised exception.")
            self._conn_lost += 1
            return

        if not self._buffer:
            try:
                if self._send_one(data, addr):
                    return
                # Would block: queue it, and send when the socket is writable.
                self._loop._add_watch(self._sock_fd, True, self._sendto_ready, ())
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on datagram transport")
                return

        # Queue a copy: the caller may reuse a bytearray or memoryview.
        data = bytes(data)
        self._buffer.append((data, addr))
        self._buffer_size += len(data) + _DATAGRAM_HEADER_SIZE
        self._maybe_pause_protocol()

    cdef bint _send_one(self, data, addr) except -1:
        """Send one datagram now: True if sent, False if it would block.
        Other failures raise, as the socket module's send()/sendto()."""
        cdef Py_buffer view
        cdef sockaddr *sa = NULL
        cdef socklen_t salen = 0
        cdef ssize_t n
        cdef int fd, err
        if self._native:
            if not self._connected:
                if addr is not None and addr is self._peer_tuple:
                    sa = <sockaddr *>&self._peer_raw
                    salen = self._peer_rawlen
                elif self._dest_tuple is not None and _same_numeric_address(addr, self._dest_tuple):
                    sa = <sockaddr *>&self._dest_raw
                    salen = self._dest_rawlen
                elif _tuple_to_sockaddr(self._family, addr, &self._dest_raw, &self._dest_rawlen):
                    self._dest_tuple = addr
                    sa = <sockaddr *>&self._dest_raw
                    salen = self._dest_rawlen
            if self._connected or sa != NULL:
                try:
                    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
                except Exception:
                    # Not one contiguous buffer (or a released memoryview):
                    # the socket module reports that in its own words below.
                    pass
                else:
                    try:
                        fd = _socket_fd(self._sock)
                        while True:
                            if self._connected:
                                n = send(fd, view.buf, <size_t>view.len, 0)
                            else:
                                n = sendto(fd, view.buf, <size_t>view.len, 0, sa, salen)
                            if n >= 0:
                                return True
                            err = errno
                            if err == EINTR:
                                PyErr_CheckSignals()
                                continue
                            if err == EAGAIN or err == EWOULDBLOCK:
                                return False
                            raise _os_error(err)
                    finally:
                        PyBuffer_Release(&view)
        try:
            if self._connected:
                self._sock.send(data)
            else:
                self._sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            return False
        return True

    def _sendto_ready(self):
        """The socket is writable: send queued datagrams until it blocks."""
        while self._buffer:
            data, addr = self._buffer.popleft()
            self._buffer_size -= len(data) + _DATAGRAM_HEADER_SIZE
            try:
                sent = self._send_one(data, addr)
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on datagram transport")
                return
            if not sent:
                self._buffer.appendleft((data, addr))   # try again when writable
                self._buffer_size += len(data) + _DATAGRAM_HEADER_SIZE
                break

        self._maybe_resume_protocol()   # may queue more
        if not self._buffer:
            self._loop._remove_watch(self._sock_fd, True)
            if self._closing:
                # close() was waiting for the queue to drain.
                self._conn_lost += 1
                self._call_connection_lost(None)

    # -- closing --

    def close(self):
        """Close after the queued datagrams are sent; connection_lost(None)
        follows."""
        if self._closing:
            return
        self._closing = True
        self._loop._remove_watch(self._sock_fd, False)
        self._drop_held()
        if not self._buffer:
            self._conn_lost += 1
            self._loop._remove_watch(self._sock_fd, True)
            self._schedule(self._call_connection_lost, (None,))

    def abort(self):
        """Close now, dropping queued datagrams; connection_lost(None) follows."""
        self._force_close(None)

    cdef _fatal_error(self, exc, message):
        # OSErrors are the network's doing, not a bug: logged in debug mode only.
        if isinstance(exc, OSError):
            if self._loop._debug:
                logger.debug("%r: %s", self, message, exc_info=True)
        else:
            self._loop.call_exception_handler({
                "message": message,
                "exception": exc,
                "transport": self,
                "protocol": self._protocol,
            })
        self._force_close(exc)

    cdef _force_close(self, exc):
        if self._conn_lost:
            return
        self._buffer.clear()
        self._buffer_size = 0
        # Unconditionally: an error in _sendto_ready can leave the watch with
        # an empty queue.
        self._loop._remove_watch(self._sock_fd, True)
        if not self._closing:
            self._closing = True
            self._loop._remove_watch(self._sock_fd, False)
        self._drop_held()
        self._conn_lost += 1
        self._schedule(self._call_connection_lost, (exc,))

    def _call_connection_lost(self, exc):
        if self._lost_called:
            return
        self._lost_called = True
        try:
            self._protocol.connection_lost(exc)
        finally:
            # No watch may outlive the fd (a later fd with the same number
            # would inherit it).
            self._loop._remove_watch(self._sock_fd, False)
            self._loop._remove_watch(self._sock_fd, True)
            self._sock.close()
            self._sock = None
            self._protocol = None
            self._peer_tuple = None
            self._peer_cache_tuple = None
            PyMem_Free(self._peer_cache)
            self._peer_cache = NULL
            self._dest_tuple = None


cdef object _DatagramTransportInterface = _interface_class(
    "DatagramTransport", _selector_events._SelectorDatagramTransport)


cdef object _new_datagram_transport(Loop loop, sock, protocol, address, waiter, extra):
    return DatagramTransport(loop, sock, protocol, address, waiter, extra)
