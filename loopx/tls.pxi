# TLS over any stream transport: a native version of asyncio's SSLProtocol
# layer.  Included into _loop.pyx after stream.pxi, whose SocketTransport
# feeds it directly.
#
# The design is asyncio's (3.11+): TLS is a protocol on the plain transport
# (SSLProtocol) that runs an ssl.SSLObject over two memory BIOs, and hands
# the application a transport of its own (SSLTransport).  The state machine,
# its callbacks and their order, flow control, timeouts and error messages
# are the standard library's; only the per-record work is moved out of the
# interpreter:
#   - SocketTransport recv()s into the loop's scratch buffer and writes it
#     straight into the incoming BIO (SSLProtocol._feed), with no
#     get_buffer()/buffer_updated() round trip and no object made per read.
#   - Decrypting stops when nothing is left that could decrypt: no ciphertext
#     in the incoming BIO and no plaintext held by the SSL object.  asyncio
#     reads until SSLWantReadError instead, an exception per read that costs
#     more than a 1 KiB record's decryption.  (Python never turns on OpenSSL's
#     read-ahead, so the SSL object holds no ciphertext beyond a partial
#     record, which only new ciphertext can complete.)
#   - Each read asks for about what the ciphertext can hold, not for a fresh
#     256 KiB bytes object shrunk afterwards.
#   - The SSL object's and the BIOs' C methods are called as bound methods
#     kept at the start, without the ssl.SSLObject wrapper's Python frames
#     (it is still what 'ssl_object' gives out).
#   - An exact asyncio StreamReaderProtocol gets the plaintext appended to its
#     reader from C, as SocketTransport does (stream_feed.pxi).

import ssl as _ssl_mod
from asyncio import exceptions as _exceptions

from cpython.buffer cimport PyBuffer_FillInfo

cdef object _SSL_AGAIN = (_ssl_mod.SSLWantReadError, _ssl_mod.SSLSyscallError)
cdef object _SSLError = _ssl_mod.SSLError
cdef object _CertificateError = _ssl_mod.CertificateError
cdef object _add_flowcontrol_defaults = _sslproto.add_flowcontrol_defaults
cdef object _create_transport_context = _sslproto._create_transport_context
cdef object _SENDFILE_FALLBACK = _constants._SendfileMode.FALLBACK
cdef Py_ssize_t _SSL_READ_HIGH_KIB = _constants.FLOW_CONTROL_HIGH_WATER_SSL_READ
cdef Py_ssize_t _SSL_WRITE_HIGH_KIB = _constants.FLOW_CONTROL_HIGH_WATER_SSL_WRITE

cdef enum:
    # asyncio's SSLProtocol.max_size: the most one read decrypts.
    _TLS_MAX_READ = 256 * 1024
    # The most one decrypting read asks for when sized by the ciphertext at
    # hand: a TLS record carries at most 16 KiB, and SSL_read returns one
    # record's plaintext at a time.
    _TLS_READ_CHUNK = 32 * 1024

# The TLS states and their legal transitions are asyncio's SSLProtocolState.
cdef enum _TLSState:
    _UNWRAPPED
    _DO_HANDSHAKE
    _WRAPPED
    _FLUSHING
    _SHUTDOWN

cdef tuple _TLS_STATE_NAMES = ("UNWRAPPED", "DO_HANDSHAKE", "WRAPPED", "FLUSHING", "SHUTDOWN")

# Where the application protocol is in its life (asyncio's AppProtocolState).
cdef enum _AppState:
    _APP_INIT
    _APP_CON_MADE
    _APP_EOF
    _APP_CON_LOST


@cython.final
cdef class _ScratchHead:
    """The first `size` bytes of the scratch buffer, through the buffer
    protocol: what SocketTransport received, handed to MemoryBIO.write()
    (which copies it before anything else can touch the buffer) with no
    object made per read.  One instance, _scratch_head."""
    cdef Py_ssize_t size

    def __getbuffer__(self, Py_buffer *view, int flags):
        PyBuffer_FillInfo(view, self, _read_scratch, self.size, 1, flags)

    def __releasebuffer__(self, Py_buffer *view):
        pass


cdef _ScratchHead _scratch_head = _ScratchHead()


# Not no_gc_clear, unlike the transports: the garbage collector may clear an
# SSLProtocol to break the cycle with its SSLTransport (which is no_gc_clear).
# Its fields are untyped objects or checked for None before use, so a call
# after that raises instead of crashing.
cdef class SSLProtocol:
    """The protocol on a plain stream transport that runs TLS over it (what
    asyncio's sslproto.SSLProtocol is, and what isinstance() says it is);
    the application talks to its SSLTransport."""

    cdef:
        object _loop
        object _transport               # the plain transport, once connection_made
        readonly object _app_protocol
        bint _app_buffered              # the application's is a BufferedProtocol
        bint _app_feeds_stream          # ... an exact asyncio StreamReaderProtocol
        SSLTransport _app_transport_obj
        bint _app_transport_created
        readonly object _sslcontext
        readonly object _sslobj         # the ssl.SSLObject (handed out as 'ssl_object')
        object _ssl                     # its C object: read/write/pending
        object _incoming, _outgoing     # MemoryBIO in (from the peer) and out
        # Their C methods, and the SSL object's, bound once (the hot calls).
        object _incoming_write, _outgoing_read, _ssl_read, _ssl_write, _ssl_pending
        object _transport_write         # the plain transport's write, once connected
        object _waiter
        object _extra                   # a dict (untyped: see the class comment)
        _TLSState _state
        _AppState _app_state
        bint _eof_received
        bint _ssl_writing_paused        # the plain transport asked us to pause
        bint _app_reading_paused
        bint _ssl_reading_paused        # we paused the plain transport's reading
        bint _app_writing_paused
        readonly Py_ssize_t _conn_lost
        object _write_backlog           # deque of what SSL did not take yet
        readonly Py_ssize_t _write_buffer_size
        object _ssl_handshake_timeout, _ssl_shutdown_timeout
        object _handshake_timeout_handle, _shutdown_timeout_handle
        object _handshake_start_time
        readonly Py_ssize_t _incoming_high_water, _incoming_low_water
        readonly Py_ssize_t _outgoing_high_water, _outgoing_low_water
        object _ssl_buffer              # get_buffer()'s bytearray, for other transports
        object __weakref__

    max_size = _TLS_MAX_READ

    def __init__(self, loop, app_protocol, sslcontext, waiter, server_side=False,
                 server_hostname=None, call_connection_made=True,
                 ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        if ssl_handshake_timeout is None:
            ssl_handshake_timeout = _constants.SSL_HANDSHAKE_TIMEOUT
        elif ssl_handshake_timeout <= 0:
            raise ValueError(f"ssl_handshake_timeout should be a positive number, "
                             f"got {ssl_handshake_timeout}")
        if ssl_shutdown_timeout is None:
            ssl_shutdown_timeout = _constants.SSL_SHUTDOWN_TIMEOUT
        elif ssl_shutdown_timeout <= 0:
            raise ValueError(f"ssl_shutdown_timeout should be a positive number, "
                             f"got {ssl_shutdown_timeout}")
        if not sslcontext:
            sslcontext = _create_transport_context(server_side, server_hostname)
        if not server_hostname or server_side:
            server_hostname = None
        self._loop = loop
        self._sslcontext = sslcontext
        self._extra = {"sslcontext": sslcontext}
        self._write_backlog = collections.deque()
        self._waiter = waiter
        self._set_app_protocol(app_protocol)
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        self._incoming = _ssl_mod.MemoryBIO()
        self._outgoing = _ssl_mod.MemoryBIO()
        self._state = _UNWRAPPED
        # With start_tls() the application is connected already.
        self._app_state = _APP_INIT if call_connection_made else _APP_CON_MADE
        self._sslobj = sslcontext.wrap_bio(self._incoming, self._outgoing,
                                           server_side=server_side,
                                           server_hostname=server_hostname)
        # ssl.SSLObject keeps its C object in _sslobj; a Python without it
        # (or a subclass of SSLContext making something else) is served
        # through the wrapper's own methods.
        self._ssl = getattr(self._sslobj, "_sslobj", None)
        if self._ssl is None or type(self._sslobj) is not _ssl_mod.SSLObject:
            self._ssl = self._sslobj
        self._ssl_read = self._ssl.read
        self._ssl_write = self._ssl.write
        self._ssl_pending = self._ssl.pending
        self._incoming_write = self._incoming.write
        self._outgoing_read = self._outgoing.read
        self._set_read_buffer_limits(None, None)
        self._set_write_buffer_limits(None, None)
        self._get_app_transport()

    @property
    def __class__(self):
        return _SSLProtocolInterface

    @property
    def _app_transport(self):
        return self._app_transport_obj

    cdef _set_app_protocol(self, app_protocol):
        self._app_protocol = app_protocol
        self._app_buffered = (hasattr(app_protocol, "get_buffer")
                              and isinstance(app_protocol, _protocols.BufferedProtocol))
        self._app_feeds_stream = not self._app_buffered and _feeds_stream_reader(app_protocol)

    cdef _wakeup_waiter(self, exc=None):
        waiter = self._waiter
        if waiter is None:
            return
        self._waiter = None
        if not waiter.cancelled():
            if exc is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(None)

    cdef SSLTransport _get_app_transport(self):
        if self._app_transport_obj is None:
            if self._app_transport_created:
                raise RuntimeError("Creating _SSLProtocolTransport twice")
            self._app_transport_obj = SSLTransport.__new__(SSLTransport)
            self._app_transport_obj._ssl_protocol = self
            self._app_transport_created = True
        return self._app_transport_obj

    cdef _set_state(self, _TLSState new_state):
        cdef _TLSState cur = self._state
        if not (new_state == _UNWRAPPED
                or (cur == _UNWRAPPED and new_state == _DO_HANDSHAKE)
                or (cur == _DO_HANDSHAKE and new_state == _WRAPPED)
                or (cur == _WRAPPED and new_state == _FLUSHING)
                or (cur == _FLUSHING and new_state == _SHUTDOWN)):
            raise RuntimeError(f"cannot switch state from {_TLS_STATE_NAMES[<int>cur]} "
                               f"to {_TLS_STATE_NAMES[<int>new_state]}")
        self._state = new_state

    # -- the plain transport's protocol --

    def connection_made(self, transport):
        self._transport = transport
        self._transport_write = transport.write
        self._start_handshake()

    def connection_lost(self, exc):
        self._write_backlog.clear()
        self._write_buffer_size = 0
        self._outgoing.read()
        self._conn_lost += 1
        app_transport = self._app_transport_obj
        if app_transport is not None:
            app_transport._closed = True
        if self._state != _DO_HANDSHAKE and (self._app_state == _APP_CON_MADE
                                            or self._app_state == _APP_EOF):
            self._app_state = _APP_CON_LOST
            self._loop.call_soon(self._app_protocol.connection_lost, exc)
        self._set_state(_UNWRAPPED)
        self._transport = None
        self._transport_write = None
        self._app_transport_obj = None
        self._app_protocol = None
        self._wakeup_waiter(exc)
        self._cancel_timeouts()

    cdef _cancel_timeouts(self):
        if self._shutdown_timeout_handle is not None:
            self._shutdown_timeout_handle.cancel()
            self._shutdown_timeout_handle = None
        if self._handshake_timeout_handle is not None:
            self._handshake_timeout_handle.cancel()
            self._handshake_timeout_handle = None

    def get_buffer(self, n):
        # For transports other than SocketTransport (start_tls over an
        # SSLTransport, say); SocketTransport calls _feed instead.
        want = n
        if want <= 0 or want > _TLS_MAX_READ:
            want = _TLS_MAX_READ
        if self._ssl_buffer is None or len(self._ssl_buffer) < want:
            self._ssl_buffer = bytearray(want)
        return memoryview(self._ssl_buffer)[:want]

    def buffer_updated(self, nbytes):
        self._incoming.write(memoryview(self._ssl_buffer)[:nbytes])
        self._advance()

    cdef int _feed(self, Py_ssize_t n) except -1:
        """buffer_updated() for the first n bytes of the scratch buffer
        (SocketTransport's receive buffer), which the BIO copies at once."""
        _scratch_head.size = n
        self._incoming_write(_scratch_head)
        self._advance()
        return 0

    cdef _advance(self):
        """Move the state machine on with what the incoming BIO holds (new
        ciphertext, or what waited while the application was not reading)."""
        cdef _TLSState state = self._state
        if state == _WRAPPED:
            self._do_read()
        elif state == _DO_HANDSHAKE:
            self._do_handshake()
        elif state == _FLUSHING:
            self._do_flush()
        elif state == _SHUTDOWN:
            self._do_shutdown()

    def eof_received(self):
        self._eof_received = True
        try:
            if self._loop.get_debug():
                logger.debug("%r received EOF", self)
            if self._state == _DO_HANDSHAKE:
                self._on_handshake_complete(ConnectionResetError())
            elif self._state == _WRAPPED:
                self._set_state(_FLUSHING)
                if self._app_reading_paused:
                    return True   # flushed when the application resumes reading
                self._do_flush()
            elif self._state == _FLUSHING:
                self._do_write()
                self._set_state(_SHUTDOWN)
                self._do_shutdown()
            elif self._state == _SHUTDOWN:
                self._do_shutdown()
        except BaseException:
            self._transport.close()
            raise

    def pause_writing(self):
        self._ssl_writing_paused = True

    def resume_writing(self):
        self._ssl_writing_paused = False
        self._process_outgoing()

    cdef _get_extra_info(self, name, default):
        if name in self._extra:
            return self._extra[name]
        if self._transport is not None:
            return self._transport.get_extra_info(name, default)
        return default

    # -- handshake --

    cdef _start_handshake(self):
        if self._loop.get_debug():
            logger.debug("%r starts SSL handshake", self)
            self._handshake_start_time = self._loop.time()
        else:
            self._handshake_start_time = None
        self._set_state(_DO_HANDSHAKE)
        self._handshake_timeout_handle = self._loop.call_later(
            self._ssl_handshake_timeout, self._check_handshake_timeout)
        self._do_handshake()

    def _check_handshake_timeout(self):
        if self._state == _DO_HANDSHAKE:
            self._fatal_error(ConnectionAbortedError(
                f"SSL handshake is taking longer than {self._ssl_handshake_timeout} "
                f"seconds: aborting the connection"))

    cdef _do_handshake(self):
        try:
            self._sslobj.do_handshake()
        except _SSL_AGAIN:
            self._process_outgoing()
        except _SSLError as exc:
            self._on_handshake_complete(exc)
        else:
            self._on_handshake_complete(None)

    cdef _on_handshake_complete(self, handshake_exc):
        if self._handshake_timeout_handle is not None:
            self._handshake_timeout_handle.cancel()
            self._handshake_timeout_handle = None
        sslobj = self._sslobj
        try:
            if handshake_exc is not None:
                raise handshake_exc
            self._set_state(_WRAPPED)
            peercert = sslobj.getpeercert()
        except Exception as exc:
            self._set_state(_UNWRAPPED)
            if isinstance(exc, _CertificateError):
                msg = "SSL handshake failed on verifying the certificate"
            else:
                msg = "SSL handshake failed"
            self._fatal_error(exc, msg)
            self._wakeup_waiter(exc)
            return
        if self._loop.get_debug():
            logger.debug("%r: SSL handshake took %.1f ms", self,
                         (self._loop.time() - self._handshake_start_time) * 1e3)
        self._extra.update(peercert=peercert, cipher=sslobj.cipher(),
                           compression=sslobj.compression(), ssl_object=sslobj)
        if self._app_state == _APP_INIT:
            self._app_state = _APP_CON_MADE
            self._app_protocol.connection_made(self._get_app_transport())
        self._wakeup_waiter()
        self._do_read()

    # -- shutdown --

    cdef _start_shutdown(self):
        if self._state == _FLUSHING or self._state == _SHUTDOWN or self._state == _UNWRAPPED:
            return
        if self._app_transport_obj is not None:
            self._app_transport_obj._closed = True
        if self._state == _DO_HANDSHAKE:
            self._abort(None)
        else:
            self._set_state(_FLUSHING)
            self._shutdown_timeout_handle = self._loop.call_later(
                self._ssl_shutdown_timeout, self._check_shutdown_timeout)
            self._do_flush()

    def _check_shutdown_timeout(self):
        if self._state == _FLUSHING or self._state == _SHUTDOWN:
            self._transport._force_close(_exceptions.TimeoutError("SSL shutdown timed out"))

    cdef _do_flush(self):
        self._do_read()
        self._set_state(_SHUTDOWN)
        self._do_shutdown()

    cdef _do_shutdown(self):
        try:
            if not self._eof_received:
                self._sslobj.unwrap()
        except _SSL_AGAIN:
            self._process_outgoing()
        except _SSLError as exc:
            self._on_shutdown_complete(exc)
        else:
            self._process_outgoing()
            self._call_eof_received()
            self._on_shutdown_complete(None)

    cdef _on_shutdown_complete(self, shutdown_exc):
        if self._shutdown_timeout_handle is not None:
            self._shutdown_timeout_handle.cancel()
            self._shutdown_timeout_handle = None
        if shutdown_exc is not None:
            self._fatal_error(shutdown_exc)
        else:
            self._loop.call_soon(self._transport.close)

    cdef _abort(self, exc):
        self._set_state(_UNWRAPPED)
        if self._transport is not None:
            self._transport._force_close(exc)

    # -- outgoing data --

    cdef _write_appdata(self, data, Py_ssize_t size):
        """Encrypt one buffer of `size` bytes for the peer (or queue it
        during the handshake)."""
        cdef Py_ssize_t count
        if self._state == _FLUSHING or self._state == _SHUTDOWN or self._state == _UNWRAPPED:
            if self._conn_lost >= _LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning("SSL connection is closed")
            self._conn_lost += 1
            return
        try:
            if self._state == _WRAPPED and not self._write_buffer_size:
                # The common case: SSL takes it all at once, nothing queued.
                try:
                    count = self._ssl_write(data)
                except _SSL_AGAIN:
                    count = 0   # kept for _do_write, as asyncio keeps it
                if count < size:
                    self._queue_appdata(data, size, count)
                self._process_outgoing()
            else:
                self._queue_appdata(data, size, 0)
                if self._state == _WRAPPED:
                    self._do_write()
        except Exception as exc:
            self._fatal_error(exc, "Fatal error on SSL protocol")

    cdef _queue_appdata(self, data, Py_ssize_t size, Py_ssize_t start):
        # Queued as immutable bytes, as SocketTransport queues: the caller
        # may reuse a bytearray once write() returns.
        if type(data) is not bytes or start:
            data = bytes(memoryview(data).cast("B")[start:])
        self._write_backlog.append(data)
        self._write_buffer_size += size - start

    cdef _do_write(self):
        cdef Py_ssize_t count, size
        backlog = self._write_backlog
        try:
            while backlog:
                data = backlog[0]
                count = self._ssl_write(data)
                size = len(data)
                if count < size:
                    backlog[0] = data[count:]
                    self._write_buffer_size -= count
                else:
                    backlog.popleft()
                    self._write_buffer_size -= size
        except _SSL_AGAIN:
            pass
        self._process_outgoing()

    cdef _process_outgoing(self):
        if self._ssl_writing_paused:
            self._control_app_writing()
            return
        data = self._outgoing_read()
        if data:
            self._transport_write(data)
        # The outgoing BIO is empty now: the buffer is the backlog alone.
        self._control_app_writing_at(self._write_buffer_size)

    cdef Py_ssize_t _get_write_buffer_size(self) except -1:
        return self._outgoing.pending + self._write_buffer_size

    cdef _control_app_writing(self):
        self._control_app_writing_at(self._get_write_buffer_size())

    cdef _control_app_writing_at(self, Py_ssize_t size):
        """pause_writing() or resume_writing() for a buffer of `size` bytes."""
        if self._app_protocol is None:
            # Disconnected (new limits after connection_lost): asyncio
            # calls None.pause_writing() here and reports the AttributeError.
            return
        if size >= self._outgoing_high_water and not self._app_writing_paused:
            self._app_writing_paused = True
            self._call_app_flow("pause_writing")
        elif size <= self._outgoing_low_water and self._app_writing_paused:
            self._app_writing_paused = False
            self._call_app_flow("resume_writing")

    cdef _call_app_flow(self, str name):
        try:
            getattr(self._app_protocol, name)()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                "message": f"protocol.{name}() failed",
                "exception": exc,
                "transport": self._app_transport_obj,
                "protocol": self,
            })

    cdef _set_write_buffer_limits(self, high, low):
        high, low = _add_flowcontrol_defaults(high, low, _SSL_WRITE_HIGH_KIB)
        self._outgoing_high_water = high
        self._outgoing_low_water = low

    # -- incoming data --

    cdef Py_ssize_t _decryptable(self) except -1:
        """About how many bytes a read could still turn into plaintext: the
        ciphertext in the incoming BIO, or else the plaintext the SSL object
        holds.  0 means a read would only raise SSLWantReadError."""
        cdef Py_ssize_t n = self._incoming.pending
        return n if n else self._ssl_pending()

    cdef _do_read(self):
        if self._state != _WRAPPED and self._state != _FLUSHING:
            return
        try:
            if not self._app_reading_paused:
                if self._app_buffered:
                    self._read_buffered()
                else:
                    self._read_copied()
            # (The backlog holds no empty buffer: its size is 0 iff it is empty.)
            if self._write_buffer_size:
                self._do_write()
            else:
                self._process_outgoing()
            self._control_ssl_reading()
        except Exception as exc:
            self._fatal_error(exc, "Fatal error on SSL protocol")

    cdef _read_copied(self):
        cdef Py_ssize_t want
        cdef bint eof = False
        first = None
        chunks = None
        reader = _plain_reader(self._app_protocol) if self._app_feeds_stream else None
        while True:
            want = self._decryptable()
            if want == 0:
                break
            try:
                chunk = self._ssl_read(min(want, <Py_ssize_t>_TLS_READ_CHUNK))
            except _SSL_AGAIN:
                break
            if not chunk:
                eof = True   # the peer's close_notify
                break
            if reader is not None:
                _append_to_reader(reader, chunk)
            elif first is None:
                first = chunk
            elif chunks is None:
                chunks = [first, chunk]
            else:
                chunks.append(chunk)
        if chunks is not None:
            self._app_protocol.data_received(b"".join(chunks))
        elif first is not None:
            self._app_protocol.data_received(first)
        if eof:
            self._call_eof_received()
            self._start_shutdown()

    cdef _read_buffered(self):
        cdef Py_ssize_t offset = 0, wants, count = 1
        buf = self._app_protocol.get_buffer(self._incoming.pending)
        view = memoryview(buf).cast("B")
        wants = len(view)
        if wants == 0:
            raise RuntimeError("get_buffer() returned an empty buffer")
        try:
            while offset < wants and self._decryptable():
                count = self._ssl_read(wants - offset, view[offset:] if offset else view)
                if count <= 0:
                    break
                offset += count
        except _SSL_AGAIN:
            count = 1
        view.release()
        if offset:
            self._app_protocol.buffer_updated(offset)
            if offset == wants and self._decryptable():
                # The buffer is full and more may decrypt: another round
                # with a fresh buffer.
                self._loop.call_soon(self._resume_after_pause)
        if count == 0:
            self._call_eof_received()
            self._start_shutdown()

    cdef _call_eof_received(self):
        try:
            if self._app_state == _APP_CON_MADE:
                self._app_state = _APP_EOF
                if self._app_protocol.eof_received():
                    logger.warning("returning true from eof_received() has no effect when using ssl")
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Error calling eof_received()")

    cdef _control_ssl_reading(self):
        if self._transport is None:
            return   # disconnected: nothing to pause or resume
        cdef Py_ssize_t size = self._incoming.pending
        if size >= self._incoming_high_water and not self._ssl_reading_paused:
            self._ssl_reading_paused = True
            self._transport.pause_reading()
        elif size <= self._incoming_low_water and self._ssl_reading_paused:
            self._ssl_reading_paused = False
            self._transport.resume_reading()

    cdef _set_read_buffer_limits(self, high, low):
        high, low = _add_flowcontrol_defaults(high, low, _SSL_READ_HIGH_KIB)
        self._incoming_high_water = high
        self._incoming_low_water = low

    cdef _pause_reading(self):
        self._app_reading_paused = True

    cdef _resume_reading(self):
        if self._app_reading_paused:
            self._app_reading_paused = False
            self._loop.call_soon(self._resume_after_pause)

    def _resume_after_pause(self):
        # What arrived while the application was not reading, or what a
        # full buffer left.
        self._advance()

    # -- errors --

    cdef _fatal_error(self, exc, message="Fatal error on transport"):
        transport = self._transport
        if transport is not None:
            transport._force_close(exc)
        if isinstance(exc, OSError):
            if self._loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=True)
        elif not isinstance(exc, _exceptions.CancelledError):
            self._loop.call_exception_handler({
                "message": message,
                "exception": exc,
                "transport": transport,
                "protocol": self,
            })


cdef object _SSLProtocolInterface = _make_interface_class("SSLProtocol", (_sslproto.SSLProtocol,))


@cython.no_gc_clear
@cython.nonecheck(True)
cdef class SSLTransport(_TransportBase):
    """The application's transport over TLS (what asyncio's
    sslproto._SSLProtocolTransport is)."""

    cdef:
        readonly SSLProtocol _ssl_protocol
        public bint _closed

    # Read by asyncio's start_tls() and sendfile().
    _start_tls_compatible = True
    _sendfile_compatible = _SENDFILE_FALLBACK

    def __init__(self, *args, **kwargs):
        raise TypeError("SSLTransport is made by its SSLProtocol")

    @property
    def __class__(self):
        return _SSLTransportInterface

    def __repr__(self):
        if self._closed or self._ssl_protocol is None:
            return "<SSLTransport closed>"
        return f"<SSLTransport {_TLS_STATE_NAMES[<int>self._ssl_protocol._state].lower()}>"

    def __del__(self):
        if not self._closed:
            self._closed = True
            # asyncio's words, which warning filters out there match.
            warnings.warn("unclosed transport <asyncio._SSLProtocolTransport object>",
                          ResourceWarning, source=self)

    def get_extra_info(self, name, default=None):
        return self._ssl_protocol._get_extra_info(name, default)

    def set_protocol(self, protocol):
        self._ssl_protocol._set_app_protocol(protocol)

    def get_protocol(self):
        return self._ssl_protocol._app_protocol

    def is_closing(self):
        return self._closed

    def close(self):
        """Close after the data written is sent and TLS is shut down;
        connection_lost(None) follows."""
        if not self._closed:
            self._closed = True
            self._ssl_protocol._start_shutdown()
        else:
            # asyncio's transport lets go of its TLS layer here, and code
            # counts on it: an application protocol that keeps its transport
            # no longer keeps the SSL context and the connection's state
            # alive once it has closed twice (CPython's test_ssl checks).
            # Most methods then raise AttributeError, as asyncio's do.
            self._ssl_protocol = None

    def abort(self):
        """Close now, dropping what is not sent; connection_lost(None) follows."""
        self._force_close(None)

    def _force_close(self, exc):
        self._closed = True
        if self._ssl_protocol is not None:
            self._ssl_protocol._abort(exc)

    # -- reading --

    def is_reading(self):
        return not self._ssl_protocol._app_reading_paused

    def pause_reading(self):
        self._ssl_protocol._pause_reading()

    def resume_reading(self):
        self._ssl_protocol._resume_reading()

    def set_read_buffer_limits(self, high=None, low=None):
        self._ssl_protocol._set_read_buffer_limits(high, low)
        self._ssl_protocol._control_ssl_reading()

    def get_read_buffer_limits(self):
        return (self._ssl_protocol._incoming_low_water, self._ssl_protocol._incoming_high_water)

    def get_read_buffer_size(self):
        return self._ssl_protocol._incoming.pending

    # -- writing --

    def write(self, data):
        """Encrypt and send data."""
        cdef Py_buffer view
        cdef Py_ssize_t size
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expecting a bytes-like instance, got {type(data).__name__}")
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        size = view.len
        PyBuffer_Release(&view)
        if size:
            self._ssl_protocol._write_appdata(data, size)

    def writelines(self, list_of_data):
        """Write each buffer in turn."""
        cdef Py_buffer view
        items = list(list_of_data)
        sizes = []
        for data in items:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"data: expecting a bytes-like instance, got {type(data).__name__}")
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            sizes.append(view.len)
            PyBuffer_Release(&view)
        for data, size in zip(items, sizes):
            if size:
                self._ssl_protocol._write_appdata(data, size)

    def write_eof(self):
        """TLS has no half-close: NotImplementedError, as asyncio's."""
        raise NotImplementedError

    def can_write_eof(self):
        return False

    def set_write_buffer_limits(self, high=None, low=None):
        self._ssl_protocol._set_write_buffer_limits(high, low)
        self._ssl_protocol._control_app_writing()

    def get_write_buffer_limits(self):
        return (self._ssl_protocol._outgoing_low_water, self._ssl_protocol._outgoing_high_water)

    def get_write_buffer_size(self):
        return self._ssl_protocol._get_write_buffer_size()

    @property
    def _protocol_paused(self):
        # The sendfile fallback reads it.
        return self._ssl_protocol._app_writing_paused

    def _test__append_write_backlog(self, data):
        # CPython's test_ssl fills the backlog this way.
        self._ssl_protocol._write_backlog.append(data)
        self._ssl_protocol._write_buffer_size += len(data)


# Derived from asyncio's own TLS transport class itself, not only from the
# public classes (as _interface_class would): code tells TLS connections
# apart with isinstance(transport, asyncio.sslproto._SSLProtocolTransport).
cdef object _SSLTransportInterface = _make_interface_class("SSLTransport", (_sslproto._SSLProtocolTransport,))


cdef _make_tls_transport(Loop loop, rawsock, protocol, sslcontext, waiter,
                         server_side, server_hostname, extra, server,
                         ssl_handshake_timeout, ssl_shutdown_timeout,
                         call_connection_made):
    """loop._make_ssl_transport(): TLS over a new SocketTransport."""
    tls = SSLProtocol(loop, protocol, sslcontext, waiter, server_side, server_hostname,
                      call_connection_made, ssl_handshake_timeout, ssl_shutdown_timeout)
    SocketTransport(loop, rawsock, tls, None, extra, server)
    return tls._app_transport_obj


async def _start_tls(Loop loop, transport, protocol, sslcontext, server_side,
                     server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout):
    """loop.start_tls(): asyncio's steps, with an SSLProtocol."""
    if not isinstance(sslcontext, _ssl_mod.SSLContext):
        raise TypeError(f"sslcontext is expected to be an instance of ssl.SSLContext, "
                        f"got {sslcontext!r}")
    if not getattr(transport, "_start_tls_compatible", False):
        raise TypeError(f"transport {transport!r} is not supported by start_tls()")
    waiter = loop.create_future()
    tls = SSLProtocol(loop, protocol, sslcontext, waiter, server_side, server_hostname,
                      False, ssl_handshake_timeout, ssl_shutdown_timeout)
    # Paused first, so that no data reaches the TLS layer before its
    # connection_made().
    transport.pause_reading()
    transport.set_protocol(tls)
    conmade_cb = loop.call_soon(tls.connection_made, transport)
    resume_cb = loop.call_soon(transport.resume_reading)
    try:
        await waiter
    except BaseException:
        transport.close()
        conmade_cb.cancel()
        resume_cb.cancel()
        raise
    return tls._app_transport_obj
