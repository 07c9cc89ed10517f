# Pipe transports: connect_read_pipe / connect_write_pipe (and, later, the
# subprocess transport's stdio).  Included into _loop.pyx after
# transport_base.pxi.
#
# Behaviour is that of asyncio.unix_events._UnixReadPipeTransport and
# _UnixWritePipeTransport: the same file types accepted (pipes, sockets,
# character devices such as ptys; a regular file is a ValueError), the fd made
# non-blocking, EOF reported as eof_received() then connection_lost(None), a
# write pipe whose reader went away closed with BrokenPipeError if data was
# still queued, EIO from a pty whose other side closed treated as a normal
# end (debug log only).  Reading starts only if the transport is still
# reading when connection_made() has run, as in 3.12 (early 3.11 releases
# would watch an fd that pause_reading() or close() had already given up).  asyncio bugs not copied:
# connection_lost() is never called twice (abort() after close() did so), and
# the write pipe's peer watch is not added after the transport was closed.
#
# Writes.  write() calls write(2) at once when nothing is queued, as asyncio
# does.  What is left is queued without copying when it is a large bytes
# object (immutable, so holding a reference is enough); anything else is
# copied into a trailing bytearray, so many small writes make one chunk.  The
# queue is flushed with writev(2), up to _IOV_BATCH chunks per call, instead
# of asyncio's single bytearray and `del buffer[:n]` (a memmove of everything
# queued after every partial write: quadratic for large transfers).  As the
# flow control contract says, resume_writing() is called once the queue is at
# or below the low-water mark (asyncio's pipe transport waits until it is
# empty).

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize, PyByteArray_FromStringAndSize
from posix.uio cimport iovec, writev
import stat as _stat
from asyncio import unix_events as _unix_events

# is_reading() on read pipes came with 3.12 (and a 3.11 patch release);
# before, ReadTransport's NotImplementedError stub.
cdef enum:
    _PIPE_BUF_SIZE = 64 * 1024   # Linux's and macOS's default pipe capacity

cdef bint _READ_PIPE_HAS_IS_READING = "is_reading" in _unix_events._UnixReadPipeTransport.__dict__

cdef enum:
    # Chunks per writev(): far below IOV_MAX (1024), and more than a pipe's
    # 64 KiB ever needs unless the chunks are tiny (and then they are
    # coalesced).
    _IOV_BATCH = 64
    # A bytes object at least this big is queued by reference; smaller
    # leftovers are copied into the trailing bytearray.
    _ZERO_COPY_MIN = 4096


cdef Py_ssize_t _fd_write(int fd, const char *buf, Py_ssize_t n) except -1:
    """write(2) with the socket module's error rules: the byte count, 0 if it
    would block; EINTR retried after running signal handlers (PEP 475)."""
    cdef ssize_t r
    cdef int err
    while True:
        r = write(fd, buf, <size_t>n)
        if r >= 0:
            return r
        err = errno
        if err == EINTR:
            PyErr_CheckSignals()
            continue
        if err == EAGAIN or err == EWOULDBLOCK:
            return 0
        raise _os_error(err)


@cython.no_gc_clear
@cython.nonecheck(True)   # a transport made with __new__ has no loop: raise, not crash
@cython.final
cdef class ReadPipeTransport(_TransportBase):
    """asyncio.ReadTransport over the read end of a pipe (or a socket, a pty,
    another character device)."""
    cdef:
        public object _pipe     # public: CPython's tests reset it to silence the unclosed warning
        int _fileno
        bint _paused
        bint _big_reads       # see _DIRECT_READ_THRESHOLD
        bint _lost_called
        bint _feeds_subprocess  # the protocol is asyncio's subprocess pipe protocol (stream_feed.pxi)
        public Py_ssize_t max_size

    def __init__(self, Loop loop not None, pipe, protocol, waiter=None, extra=None):
        self._init_base(loop, protocol, extra)
        self._extra["pipe"] = pipe
        self._fileno = pipe.fileno()
        mode = os.fstat(self._fileno).st_mode
        if not (_stat.S_ISFIFO(mode) or _stat.S_ISSOCK(mode) or _stat.S_ISCHR(mode)):
            # _pipe stays None: the pipe is still the caller's, so neither
            # __del__ nor anything else may close it.
            self._protocol = None
            raise ValueError("Pipe transport is for pipes/sockets only.")
        self._pipe = pipe
        self._feeds_subprocess = _feeds_subprocess_reader(protocol)
        self.max_size = _READ_SCRATCH_SIZE
        os.set_blocking(self._fileno, False)
        self._schedule(self._protocol.connection_made, (self,))
        # Start reading only once connection_made() has run.
        self._schedule(self._start_reading, ())
        if waiter is not None:
            self._schedule(_set_result_unless_cancelled, (waiter, None))

    def __repr__(self):
        info = [type(self).__name__]
        if self._pipe is None:
            info.append("closed")
        elif self._closing:
            info.append("closing")
        info.append(f"fd={self._fileno}")
        if self._pipe is not None and not self._loop._closed:
            info.append("polling" if self._watching(self._fileno, False) else "idle")
        elif self._pipe is not None:
            info.append("open")
        else:
            info.append("closed")
        return "<{}>".format(" ".join(info))

    def __del__(self):
        if self._pipe is not None:
            warnings.warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._pipe.close()

    @property
    def __class__(self):
        return _ReadPipeTransportInterface

    def _start_reading(self):
        if self._closing or self._paused:
            return
        self._loop._add_native_reader(self._fileno, self, True, False)

    cdef int _read_event(self) except -1:
        if _still_reads(self._loop, self._fileno, self):
            self._read_once()
        return 0

    def _read_ready(self):
        self._read_once()

    def set_protocol(self, protocol):
        self._feeds_subprocess = _feeds_subprocess_reader(protocol)
        self._protocol = protocol

    cdef _read_once(self):
        """Readable: one read; data, or EOF (b'')."""
        cdef ssize_t n
        cdef int err
        reader = None
        while True:
            if self._feeds_subprocess:
                reader = _subprocess_reader(self._protocol)
            if 0 <= self.max_size <= _READ_SCRATCH_SIZE:
                # A busy pipe gives at most its capacity (64 KiB by default)
                # per read: that size straight into the bytes object (or the
                # subprocess stream's reader, stream_feed.pxi), with no
                # FIONREAD (see _read_to_bytes).  Small reads reach the
                # reader through the scratch buffer.
                n = _NOT_DIRECT
                data = None
                if reader is not None and self.max_size > 0:
                    if self._big_reads:
                        n = _read_into_reader(self._fileno, False, reader,
                                              min(self.max_size, _PIPE_BUF_SIZE))
                    else:
                        n = _read_scratch_into_reader(self._fileno, False, reader, self.max_size)
                if n != _NOT_DIRECT:
                    pass   # fed to the reader (n > 0), EOF or an error
                elif self._big_reads:
                    data = _read_to_bytes(self._fileno, False, min(self.max_size, _PIPE_BUF_SIZE),
                                          _INTO_REQUESTED, &n)
                else:
                    data = _read_to_bytes(self._fileno, False, self.max_size, _INTO_SCRATCH, &n)
                if n >= 0:
                    self._big_reads = n >= _DIRECT_READ_THRESHOLD
                    if n > 0 and data is None:
                        return   # already in the reader's buffer
                    data = data or b""
                    break
                err = -n
                if err == EINTR:
                    PyErr_CheckSignals()
                    continue
                if err == EAGAIN or err == EWOULDBLOCK:
                    return
                self._fatal_error(_os_error(err), "Fatal read error on pipe transport")
                return
            # A max_size set beyond the scratch buffer: os.read() allocates it.
            try:
                data = os.read(self._fileno, self.max_size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._fatal_error(exc, "Fatal read error on pipe transport")
                return
            break
        if data:
            if reader is not None:
                _append_to_reader(reader, data)
            else:
                self._protocol.data_received(data)
            return
        if self._loop._debug:
            logger.info("%r was closed by peer", self)
        self._closing = True
        self._loop._remove_watch(self._fileno, False)
        self._schedule(self._protocol.eof_received, ())
        self._schedule(self._call_connection_lost, (None,))

    def is_reading(self):
        if not _READ_PIPE_HAS_IS_READING:
            raise NotImplementedError
        return not self._paused and not self._closing

    def pause_reading(self):
        if self._closing or self._paused:
            return
        self._paused = True
        self._loop._remove_watch(self._fileno, False)
        if self._loop._debug:
            logger.debug("%r pauses reading", self)

    def resume_reading(self):
        if self._closing or not self._paused:
            return
        self._paused = False
        self._loop._add_native_reader(self._fileno, self, True, False)
        if self._loop._debug:
            logger.debug("%r resumes reading", self)

    def close(self):
        if not self._closing:
            self._close(None)

    cdef _fatal_error(self, exc, message):
        # EIO is how a pty reports that its other side closed: an ordinary
        # end, logged in debug mode only.
        if isinstance(exc, OSError) and exc.errno == errno_mod.EIO:
            if self._loop._debug:
                logger.debug("%r: %s", self, message, exc_info=True)
        else:
            self._loop.call_exception_handler({
                "message": message,
                "exception": exc,
                "transport": self,
                "protocol": self._protocol,
            })
        self._close(exc)

    cdef _close(self, exc):
        self._closing = True
        self._loop._remove_watch(self._fileno, False)
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
            self._loop._remove_watch(self._fileno, False)
            self._loop._remove_watch(self._fileno, True)
            self._pipe.close()
            self._pipe = None
            self._protocol = None


@cython.no_gc_clear
@cython.nonecheck(True)   # a transport made with __new__ has no loop: raise, not crash
@cython.final
cdef class WritePipeTransport(_FlowControlTransport):
    """asyncio.WriteTransport over the write end of a pipe (or a socket, a
    pty, another character device)."""
    cdef:
        public object _pipe     # public: CPython's tests reset it to silence the unclosed warning
        int _fileno
        object _chunks          # deque of bytes (ours by reference) / bytearray (ours)
        object _tail            # the last chunk if it is one of our bytearrays
        Py_ssize_t _first_off   # bytes of _chunks[0] already written
        Py_ssize_t _buffer_size # bytes queued, not yet written
        Py_ssize_t _conn_lost
        bint _lost_called

    def __init__(self, Loop loop not None, pipe, protocol, waiter=None, extra=None):
        self._init_base(loop, protocol, extra)
        self._set_write_buffer_limits(None, None)
        self._extra["pipe"] = pipe
        self._fileno = pipe.fileno()
        mode = os.fstat(self._fileno).st_mode
        is_char = _stat.S_ISCHR(mode)
        is_fifo = _stat.S_ISFIFO(mode)
        is_socket = _stat.S_ISSOCK(mode)
        if not (is_char or is_fifo or is_socket):
            self._protocol = None
            raise ValueError("Pipe transport is only for pipes, sockets and character devices")
        self._pipe = pipe
        self._chunks = collections.deque()
        os.set_blocking(self._fileno, False)
        self._schedule(self._protocol.connection_made, (self,))
        # The reader trick: the write end of a pipe (or a socket) polls
        # readable/error when the other end is closed, so watching it tells us
        # the peer went away even while we have nothing to write.  Character
        # devices (ptys, /dev/null) don't work that way; asyncio skips them.
        if is_socket or is_fifo:
            # Only once connection_made() has run.
            self._schedule(self._start_peer_watch, ())
        if waiter is not None:
            self._schedule(_set_result_unless_cancelled, (waiter, None))

    def __repr__(self):
        info = [type(self).__name__]
        if self._pipe is None:
            info.append("closed")
        elif self._closing:
            info.append("closing")
        info.append(f"fd={self._fileno}")
        if self._pipe is not None and not self._loop._closed:
            info.append("polling" if self._watching(self._fileno, True) else "idle")
            info.append(f"bufsize={self._buffer_size}")
        elif self._pipe is not None:
            info.append("open")
        else:
            info.append("closed")
        return "<{}>".format(" ".join(info))

    def __del__(self):
        if self._pipe is not None:
            warnings.warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._pipe.close()

    @property
    def __class__(self):
        return _WritePipeTransportInterface

    cdef Py_ssize_t _pending_size(self):
        return self._buffer_size

    def _start_peer_watch(self):
        if self._closing:
            return
        self._loop._add_watch(self._fileno, False, self._read_ready, ())

    def _read_ready(self):
        """The peer closed its end (that is all readability means here)."""
        if self._loop._debug:
            logger.info("%r was closed by peer", self)
        if self._chunks:
            self._close(BrokenPipeError())
        else:
            self._close(None)

    def write(self, data):
        """Write data: at once if nothing is queued, else queued (see the
        flow control methods)."""
        cdef Py_buffer view
        cdef Py_ssize_t n = 0
        if not isinstance(data, (bytes, bytearray, memoryview)):
            # asyncio asserts the type; the same exception, -O or not.
            raise AssertionError(repr(data))
        if not data:
            return
        if self._conn_lost or self._closing:
            if self._conn_lost >= _LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning("pipe closed by peer or os.write(pipe, data) raised exception.")
            self._conn_lost += 1
            return
        try:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        except Exception:
            # Not one contiguous block of bytes.  asyncio hands it to
            # os.write() when nothing is queued (a fatal write error) and
            # appends it to its bytearray otherwise (the BufferError reaches
            # the caller); so do we, with the same exceptions.
            if self._chunks:
                raise
            self._write_fallback(data)
            return
        try:
            if not self._chunks:
                try:
                    n = _fd_write(self._fileno, <const char *>view.buf, view.len)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self._conn_lost += 1
                    self._fatal_error(exc, "Fatal write error on pipe transport")
                    return
                if n == view.len:
                    return
                self._loop._add_watch(self._fileno, True, self._write_ready, ())
            self._enqueue(data, <const char *>view.buf + n, view.len - n)
        finally:
            PyBuffer_Release(&view)
        self._maybe_pause_protocol()

    cdef _write_fallback(self, data):
        try:
            os.write(self._fileno, data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._conn_lost += 1
            self._fatal_error(exc, "Fatal write error on pipe transport")

    cdef _enqueue(self, data, const char *buf, Py_ssize_t n):
        """Queue the n bytes at buf (the unwritten end of data)."""
        cdef Py_ssize_t old
        if n >= _ZERO_COPY_MIN and type(data) is bytes:
            # Immutable: keep a reference, and the offset if it is the first.
            if not self._chunks:
                self._first_off = PyBytes_GET_SIZE(data) - n
            self._chunks.append(data)
            self._tail = None
        elif self._tail is not None:
            old = PyByteArray_GET_SIZE(self._tail)
            PyByteArray_Resize(self._tail, old + n)
            memcpy(PyByteArray_AS_STRING(self._tail) + old, buf, n)
        else:
            if not self._chunks:
                self._first_off = 0
            self._tail = PyByteArray_FromStringAndSize(buf, n)
            self._chunks.append(self._tail)
        self._buffer_size += n

    def writelines(self, list_of_data):
        """Write each item of list_of_data, as one write()."""
        self.write(b"".join(list_of_data))

    def _write_ready(self):
        """Writable: write as much of the queue as the pipe takes."""
        cdef Py_ssize_t n
        try:
            n = self._flush_some()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._drop_queue()
            self._conn_lost += 1
            self._loop._remove_watch(self._fileno, True)
            self._fatal_error(exc, "Fatal write error on pipe transport")
            return
        if self._chunks:
            if n:
                self._maybe_resume_protocol()
            return
        self._loop._remove_watch(self._fileno, True)
        self._maybe_resume_protocol()   # may write (and queue) more
        if self._closing and not self._chunks:
            # close() or write_eof() was waiting for the queue to drain.
            # (asyncio does not look at the queue again here, so a protocol
            # whose resume_writing() writes and then closes loses what was
            # queued; if anything was, the new writer watch finishes it.)
            self._loop._remove_watch(self._fileno, False)
            self._call_connection_lost(None)

    cdef Py_ssize_t _flush_some(self) except -1:
        """One writev() of the queue's head; the queue loses what it wrote.
        Returns the byte count (0 if the pipe was full)."""
        cdef iovec iov[_IOV_BATCH]
        cdef int count = 0, err
        cdef Py_ssize_t off = self._first_off, size, n, avail
        cdef char *ptr
        cdef ssize_t r
        # Borrowed pointers into the queued objects: nothing between here and
        # writev() can run Python code or change the queue.
        for chunk in self._chunks:
            if count == _IOV_BATCH:
                break
            if type(chunk) is bytes:
                ptr = PyBytes_AS_STRING(chunk)
                size = PyBytes_GET_SIZE(chunk)
            else:
                ptr = PyByteArray_AS_STRING(chunk)
                size = PyByteArray_GET_SIZE(chunk)
            iov[count].iov_base = ptr + off
            iov[count].iov_len = <size_t>(size - off)
            off = 0
            count += 1
        while True:
            r = writev(self._fileno, iov, count)
            if r >= 0:
                break
            err = errno
            if err == EINTR:
                PyErr_CheckSignals()
                continue
            if err == EAGAIN or err == EWOULDBLOCK:
                return 0
            raise _os_error(err)
        n = r
        self._buffer_size -= n
        while n > 0:
            chunk = self._chunks[0]
            avail = len(chunk) - self._first_off
            if n < avail:
                self._first_off += n
                break
            n -= avail
            if self._chunks.popleft() is self._tail:
                self._tail = None
            self._first_off = 0
        return r

    cdef _drop_queue(self):
        self._chunks.clear()
        self._tail = None
        self._first_off = 0
        self._buffer_size = 0

    # ReadTransport's methods, which asyncio's write pipe inherits as stubs.
    def is_reading(self):
        raise NotImplementedError

    def pause_reading(self):
        raise NotImplementedError

    def resume_reading(self):
        raise NotImplementedError

    def can_write_eof(self):
        return True

    def write_eof(self):
        """Close the pipe once the queue is written (a pipe's only EOF)."""
        if self._closing:
            return
        if self._pipe is None:
            raise AssertionError   # asyncio: assert self._pipe
        self._closing = True
        if not self._chunks:
            self._loop._remove_watch(self._fileno, False)
            self._schedule(self._call_connection_lost, (None,))

    def close(self):
        """Close once the queue is written; connection_lost(None) follows."""
        if self._pipe is not None and not self._closing:
            self.write_eof()

    def abort(self):
        """Close now, dropping the queue; connection_lost(None) follows."""
        self._close(None)

    cdef _fatal_error(self, exc, message):
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
        self._close(exc)

    cdef _close(self, exc):
        self._closing = True
        if self._chunks:
            self._loop._remove_watch(self._fileno, True)
        self._drop_queue()
        self._loop._remove_watch(self._fileno, False)
        if not self._lost_called:
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
            self._loop._remove_watch(self._fileno, False)
            self._loop._remove_watch(self._fileno, True)
            self._pipe.close()
            self._pipe = None
            self._protocol = None


cdef object _ReadPipeTransportInterface = _interface_class(
    "ReadPipeTransport", _unix_events._UnixReadPipeTransport)
cdef object _WritePipeTransportInterface = _interface_class(
    "WritePipeTransport", _unix_events._UnixWritePipeTransport)


cdef object _new_read_pipe_transport(Loop loop, pipe, protocol, waiter, extra):
    return ReadPipeTransport(loop, pipe, protocol, waiter, extra)


cdef object _new_write_pipe_transport(Loop loop, pipe, protocol, waiter, extra):
    return WritePipeTransport(loop, pipe, protocol, waiter, extra)
