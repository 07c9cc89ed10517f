"""Socket and pipe transports driven through random programs, on both loops.

hypothesis writes a program of what an application and its peer do to one
connection, in any order: writes of every kind and size (many past what the
kernel takes at once), pause and resume reading, new write-buffer limits,
write_eof, the peer sending, reading a little, or shutting down its side.
Then the connection ends one of five ways (close, abort, write_eof, the peer
shutting down, the peer resetting).  The program runs on asyncio's loop and on
loopx, each time over a fresh TCP or Unix socket pair, a TLS connection over
TCP (the peer runs TLS by hand over its socket), or a pipe (the transport at
either end), with small kernel buffers, and both must show:

* the protocol's calls in a legal order: connection_made first,
  connection_lost exactly once and last, nothing read after eof_received,
  pause_writing and resume_writing alternating;
* no byte lost, duplicated or reordered either way: each side gets a prefix
  of what the other sent, and all of it where the connection ended in good
  order (while the transport is open, the protocol gets all the peer sent
  once it reads again, and the peer all the protocol wrote);
* the same exception from each call the program makes (writing after
  write_eof, bad limits, ...), the same end (connection_lost's argument,
  whether eof_received came) where the ending decides it, and nothing
  passed to the exception handler.

Kernel timing differs from run to run, so only what the program decides is
compared between the loops; what only timing decides (how much the peer had
read when a reset cut the connection) is held to the prefix rule.
"""
import asyncio
import os
import socket
import ssl
import struct
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

import helpers

try:
    import fcntl
except ImportError:   # Windows: no pipe tests there
    fcntl = None

# Far more than any program sends: both directions are slices of these.
_OUT = helpers.pattern_bytes(4 << 20, seed="model-out")
_IN = helpers.pattern_bytes(4 << 20, seed="model-in")

_SIZES = st.integers(1, 150_000)
_OPS = st.one_of(
    st.tuples(st.just("write"),
              st.sampled_from(["bytes", "bytearray", "changed_bytearray", "memoryview",
                               "writelines", "empty"]),
              _SIZES),
    st.tuples(st.just("peer_send"), _SIZES),
    st.tuples(st.just("peer_read"), _SIZES),
    st.tuples(st.just("limits"),
              st.sampled_from([None, 0, 1, 4096, 65536, 1 << 20]),
              st.sampled_from([None, 0, 1024, 8192])),
    st.sampled_from([("pause_reading",), ("resume_reading",), ("write_eof",),
                     ("peer_shutdown",), ("spin",)]),
)
# asyncio's own writelines() (3.12 to 3.13.0 at least) does not check for a
# lost connection: afterwards it queues the data, or raises TypeError, where
# write() drops it quietly.  loopx drops both; the asyncio runs of a program
# use write() there instead.
_ASYNCIO_WRITELINES = asyncio.selector_events._SelectorSocketTransport.__dict__.get("writelines")
_ASYNCIO_WRITELINES_IGNORES_LOST = (
    _ASYNCIO_WRITELINES is not None and "_conn_lost" not in _ASYNCIO_WRITELINES.__code__.co_names)
_ENDINGS = ["close", "abort", "write_eof", "peer_shutdown", "peer_reset"]


class _ModelProtocol:
    """Records what the transport does, and any call out of order."""

    def __init__(self, loop, keep_open):
        self.keep_open = keep_open
        self.transport = None
        self.received = bytearray()
        self.names = []
        self.violations = []
        self.writing_paused = False
        self.eof = False
        self.lost = loop.create_future()

    def _note(self, name):
        if not self.names and name != "connection_made":
            self.violations.append(f"{name} before connection_made")
        if self.lost.done():
            self.violations.append(f"{name} after connection_lost")
        self.names.append(name)

    def connection_made(self, transport):
        self._note("connection_made")
        self.transport = transport

    def _data(self, data):
        self._note("data")
        if self.eof:
            self.violations.append("data after eof_received")
        if not data:
            self.violations.append("empty data")
        self.received += data

    def eof_received(self):
        # Not checked for once only: after eof_received returned true,
        # pause_reading() and resume_reading() make asyncio's transport read
        # the EOF, and call this, again (loopx does as asyncio does).
        self._note("eof_received")
        self.eof = True
        return self.keep_open

    def pause_writing(self):
        self._note("pause_writing")
        if self.writing_paused:
            self.violations.append("pause_writing twice")
        self.writing_paused = True

    def resume_writing(self):
        self._note("resume_writing")
        if not self.writing_paused:
            self.violations.append("resume_writing while not paused")
        self.writing_paused = False

    def connection_lost(self, exc):
        self._note("connection_lost")
        if not self.lost.done():
            self.lost.set_result(exc)


class ModelProtocol(_ModelProtocol, asyncio.Protocol):
    def data_received(self, data):
        self._data(data)


class BufferedModelProtocol(_ModelProtocol, asyncio.BufferedProtocol):
    """Reads into a small buffer, so big sends take many reads."""

    def __init__(self, loop, keep_open):
        super().__init__(loop, keep_open)
        self.buffer = bytearray(3000)

    def get_buffer(self, sizehint):
        # A memoryview: asyncio's TLS layer loses data read into a bytearray
        # (it fills a copy, buf[offset:]); loopx's takes either (test_tls.py).
        return memoryview(self.buffer)

    def buffer_updated(self, nbytes):
        self._data(bytes(self.buffer[:nbytes]))


class _SocketPeer:
    """The far end of a socket pair."""

    def __init__(self, sock):
        self.sock = sock
        self.can_send = self.can_recv = True

    def send(self, data):
        return self.sock.send(data)

    def recv(self, size):
        return self.sock.recv(size)

    def flush(self):
        """Push out what the peer holds back (only a TLS peer does)."""

    def shutdown(self):
        self.sock.shutdown(socket.SHUT_WR)

    def reset(self):
        # SO_LINGER 0: closing sends a RST.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def close(self):
        self.can_recv = False
        self.sock.close()


class _TLSPeer(_SocketPeer):
    """The far end of a TLS connection: a server-side ssl.SSLObject over the
    socket, pumped by hand, so it reads only when the program says so."""

    def __init__(self, sock, context):
        super().__init__(sock)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.unsent = bytearray()   # ciphertext the kernel did not take yet

    def flush(self):
        self.unsent += self.outgoing.read()
        while self.unsent:
            try:
                sent = self.sock.send(self.unsent)
            except BlockingIOError:
                return
            del self.unsent[:sent]

    def _take_in(self, limit):
        """Move up to `limit` bytes of ciphertext from the socket into TLS."""
        while limit > 0 and not self.incoming.eof:
            try:
                data = self.sock.recv(limit)
            except BlockingIOError:
                return
            if not data:
                self.incoming.write_eof()
                return
            self.incoming.write(data)
            limit -= len(data)

    async def handshake(self, connecting):
        while True:
            self._take_in(1 << 20)
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                pass
            else:
                self.flush()
                return
            self.flush()
            if connecting.done():
                connecting.result()   # the transport's side failed: raise that
            await asyncio.sleep(0.001)

    def send(self, data):
        self.flush()
        if self.unsent:
            raise BlockingIOError   # the kernel is full: nothing more now
        self.tls.write(data)
        self.flush()
        return len(data)

    def recv(self, size):
        self.flush()
        # About size bytes of plaintext, with the records' overhead.
        self._take_in(size + 1024)
        try:
            data = self.tls.read(size)
        except ssl.SSLWantReadError:
            if self.incoming.eof:
                return b""
            raise BlockingIOError from None
        except ssl.SSLZeroReturnError:
            return b""   # after both close_notify
        except (ssl.SSLEOFError, ssl.SSLSyscallError):
            raise ConnectionResetError from None   # the end without close_notify
        if not data:
            self.shutdown()   # answer the transport's close_notify
        return data

    def shutdown(self):
        # TLS has no half-close: the peer's close_notify ends the stream.
        try:
            self.tls.unwrap()
        except ssl.SSLError:
            pass   # the answer is not here yet, or the session is over
        self.flush()


class _PipePeer:
    """The far end of a pipe: the read end of a write pipe transport, or the
    write end of a read pipe transport.  Closing it is its only way to end."""

    def __init__(self, fd, reads):
        self.fd = fd
        self.can_recv = reads
        self.can_send = not reads

    def send(self, data):
        return os.write(self.fd, data)

    def recv(self, size):
        return os.read(self.fd, size)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            self.can_recv = self.can_send = False

    def flush(self):
        pass

    shutdown = reset = close


class _Run:
    """One program on one loop: the transport, its peer, and what went each way."""

    def __init__(self, loop, transport, proto, peer):
        self.loop = loop
        self.transport = transport
        self.proto = proto
        self.peer = peer
        self.written = 0          # bytes of _OUT accepted by write()/writelines()
        self.peer_sent = 0        # bytes of _IN the peer's kernel accepted
        self.peer_got = bytearray()
        self.peer_shut = False
        self.peer_reset = False   # the peer's reads ended with a reset
        self.sent_to_closing = False  # peer data may meet a closed socket (RST)
        # asyncio's transport queues a reference to what it could not send at
        # once since 3.12 (zero-copy writes, CPython gh-91166): changing a
        # bytearray after write() is then the caller's error.  loopx copies.
        # (TLS encrypts what is written at once, on both loops.)
        tls = isinstance(peer, _TLSPeer)
        self.copies_writes = helpers.is_loopx(loop) or tls or sys.version_info < (3, 12)
        self.writelines_when_closing = (helpers.is_loopx(loop) or tls
                                        or not _ASYNCIO_WRITELINES_IGNORES_LOST)

    # -- the application's side --

    def write(self, kind, size):
        data = _OUT[self.written:self.written + size]
        if kind == "empty":
            data = b""
        elif kind in ("bytearray", "changed_bytearray"):
            data = bytearray(data)
        elif kind == "memoryview":
            data = memoryview(data)
        if kind == "writelines" and (self.writelines_when_closing or not self.transport.is_closing()):
            half = len(data) // 2
            # No empty chunks: asyncio's own transport never finishes
            # closing after one (CPython gh-155888, in 3.12 and 3.13.0).
            self.transport.writelines([c for c in (data[:half], data[half:]) if c])
        else:
            self.transport.write(data)
        if kind == "changed_bytearray" and self.copies_writes:
            # What the transport queued must be its own copy.
            data[:] = bytes(len(data))
        self.written += len(data)

    # -- the peer's side --

    def peer_send(self, size):
        if self.peer_shut or self.peer_reset or not self.peer.can_send:
            return
        if self.transport.is_closing():
            self.sent_to_closing = True
        try:
            self.peer_sent += self.peer.send(_IN[self.peer_sent:self.peer_sent + size])
        except BlockingIOError:
            pass
        except (BrokenPipeError, ConnectionResetError):
            self.peer_reset = True

    def _peer_recv(self, size):
        """What the peer reads now: bytes, b"" at the end, None if nothing waits."""
        if self.peer_reset or not self.peer.can_recv:
            return b""
        try:
            chunk = self.peer.recv(size)
        except BlockingIOError:
            return None
        except ConnectionResetError:
            self.peer_reset = True
            return b""
        self.peer_got += chunk
        return chunk

    def peer_read(self, size):
        while size > 0:
            chunk = self._peer_recv(size)
            if not chunk:
                return
            size -= len(chunk)

    async def peer_read_until(self, predicate):
        """Read until predicate() or the end (EOF, a reset, a peer that does
        not read)."""
        while not predicate():
            chunk = self._peer_recv(1 << 20)
            if chunk is None:
                await asyncio.sleep(0.001)
            elif not chunk:
                return

    def peer_shutdown(self):
        if not self.peer_shut and not self.peer_reset:
            self.peer_shut = True
            try:
                self.peer.shutdown()
            except OSError:
                self.peer_reset = True


def _call(fn, *args):
    """The name of the exception fn(*args) raised, or None."""
    try:
        fn(*args)
    except Exception as exc:
        return type(exc).__name__
    return None


def _call_method(obj, name, *args):
    """_call of obj.<name>: a read pipe has no write side's methods."""
    try:
        method = getattr(obj, name)
    except AttributeError:
        return "AttributeError"
    return _call(method, *args)


async def _spin(times=3):
    for _ in range(times):
        await asyncio.sleep(0)


async def _connect(loop, family, factory):
    """(transport, protocol, peer) over a fresh connection with small
    kernel buffers, so a few writes fill them and flow control runs."""
    if family in ("tcp", "unix", "tls"):
        if family == "unix":
            ours, peer = helpers.socketpair(socket.AF_UNIX)
        else:
            peer, ours = await helpers.tcp_pair(loop)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        try:
            if family != "tls":
                transport, proto = await loop.connect_accepted_socket(factory, sock=ours)
                return transport, proto, _SocketPeer(peer)
            server_ctx, client_ctx = helpers.tls_contexts()
            tls_peer = _TLSPeer(peer, server_ctx)
            connecting = asyncio.ensure_future(loop.create_connection(
                factory, sock=ours, ssl=client_ctx, server_hostname="localhost"))
            await tls_peer.handshake(connecting)
            transport, proto = await connecting
            return transport, proto, tls_peer
        except BaseException:
            ours.close()
            peer.close()
            raise
    rfd, wfd = os.pipe()
    if hasattr(fcntl, "F_SETPIPE_SZ"):   # Linux
        fcntl.fcntl(wfd, fcntl.F_SETPIPE_SZ, 16384)
    ours, theirs, reads = (wfd, rfd, True) if family == "write_pipe" else (rfd, wfd, False)
    os.set_blocking(theirs, False)
    connect = loop.connect_write_pipe if reads else loop.connect_read_pipe
    pipe = os.fdopen(ours, "wb" if reads else "rb", 0)
    try:
        transport, proto = await connect(factory, pipe)
    except BaseException:
        pipe.close()
        os.close(theirs)
        raise
    return transport, proto, _PipePeer(theirs, reads)


async def _play(loop, family, buffered, keep_open, ops, ending):
    errors = helpers.collect_errors(loop)
    factory = BufferedModelProtocol if buffered else ModelProtocol
    transport, proto, peer = await _connect(loop, family, lambda: factory(loop, keep_open))
    try:
        run = _Run(loop, transport, proto, peer)
        outcome = [await _step(run, op) for op in ops]
        strict = await _settle(run)
        summary = await _end(run, ending, strict)
    finally:
        peer.close()
    lost = proto.lost.result()
    assert not proto.violations, proto.violations
    assert proto.names.count("connection_lost") == 1
    # Never a byte lost, duplicated or reordered, in either direction.
    assert bytes(proto.received) == _IN[:len(proto.received)]
    assert len(proto.received) <= run.peer_sent
    assert bytes(run.peer_got) == _OUT[:len(run.peer_got)]
    assert len(run.peer_got) <= run.written
    assert _write_buffer_size(transport) == 0
    assert errors == []
    summary["outcome"] = outcome
    if summary.pop("decided"):
        summary["lost"] = type(lost).__name__
    return summary


def _write_buffer_size(transport):
    """What the transport has queued (0 for one that cannot write, and for a
    TLS transport closed twice: asyncio's lets go of its TLS layer then, and
    so does loopx's)."""
    size = getattr(transport, "get_write_buffer_size", None)
    if size is None or getattr(transport, "_ssl_protocol", True) is None:
        return 0
    return size()


def _eof_seen(run):
    """Whether the transport has acted on the peer's EOF (or ended)."""
    return run.proto.eof or run.transport.is_closing() or run.proto.lost.done()


async def _step(run, op):
    """Apply one op; what it raised (compared between the loops)."""
    t = run.transport
    kind = op[0]
    if kind == "write":
        result = _call(run.write, op[1], op[2])
    elif kind == "limits":
        if isinstance(run.peer, _TLSPeer) and not helpers.is_loopx(run.loop) and run.proto.lost.done():
            # asyncio's TLS transport calls pause_writing() on None after
            # connection_lost, an error for the exception handler; loopx's
            # checks the limits alone, as this does.
            result = _call(asyncio.sslproto.add_flowcontrol_defaults, op[1], op[2], 512)
        else:
            result = _call_method(t, "set_write_buffer_limits", op[1], op[2])
    elif kind in ("pause_reading", "resume_reading", "write_eof"):
        result = _call_method(t, kind)
    else:
        result = None
        if kind == "peer_send":
            run.peer_send(op[1])
        elif kind == "peer_read":
            run.peer_read(op[1])
        elif kind == "peer_shutdown":
            already = run.peer_shut or run.peer_reset
            run.peer_shutdown()
            if (not already and not run.peer_reset
                    and _call_method(t, "is_reading") is None and t.is_reading()):
                # Seen by the next poll, normally; under load a spin may not
                # be enough, and whether the transport is closing by the
                # end of the program decides what is compared.
                await helpers.async_wait_until(lambda: _eof_seen(run))
    await _spin()
    return result


async def _settle(run):
    """While the transport is open: read again, and let everything sent
    either way arrive.  Returns whether the connection is still in good
    order (then the ending decides the rest exactly)."""
    t = run.transport
    if t.is_closing() or run.peer_reset or run.sent_to_closing:
        return False
    _call_method(t, "resume_reading")   # NotImplementedError for a write pipe

    def peer_data_arrived():
        run.peer.flush()
        return len(run.proto.received) == run.peer_sent or run.proto.lost.done()

    await helpers.async_wait_until(peer_data_arrived)
    if run.peer_shut and _call_method(t, "is_reading") is None:
        # The peer shut down while reading was paused: the data having
        # arrived says nothing of its EOF, and whether that closed the
        # transport decides what is compared.  Wait for it, as the
        # peer_shutdown step does.
        await helpers.async_wait_until(lambda: _eof_seen(run))
    await run.peer_read_until(lambda: len(run.peer_got) >= run.written)
    if run.proto.lost.done() or run.peer_reset or t.is_closing():
        # (Closing, say after that EOF: connection_lost comes when the
        # close completes, on either side of this check.)
        return False
    assert len(run.proto.received) == run.peer_sent
    assert len(run.peer_got) == run.written
    assert _write_buffer_size(t) == 0
    await _spin()
    if not isinstance(run.peer, _TLSPeer):
        # Drained below the low-water mark.  (A TLS transport pauses at a
        # size >= its high mark, so a high mark of 0 keeps it paused, on
        # both loops.)
        assert not run.proto.writing_paused
    return True


async def _end(run, ending, strict):
    t, proto = run.transport, run.proto
    if ending == "close":
        t.close()
    elif ending == "abort":
        # asyncio's abort() fails (AttributeError) once a close() that had
        # to flush has finished; loopx's is a no-op then, as it should be.
        if helpers.is_loopx(run.loop) or not proto.lost.done():
            if _call_method(t, "abort") == "AttributeError":
                t.close()   # a read pipe
    elif ending == "write_eof":
        if _call_method(t, "can_write_eof") is None and t.can_write_eof():
            t.write_eof()
            await run.peer_read_until(lambda: False)   # to the EOF write_eof sent
        t.close()
    elif ending == "peer_shutdown":
        run.peer_shutdown()
        await helpers.async_wait_until(lambda: proto.eof or proto.lost.done())
        if not t.is_closing():
            # Kept open (eof_received returned true): still writable,
            # unless write_eof came first.
            _call(run.write, "bytes", 5000)
            t.close()
    else:  # peer_reset
        run.peer.reset()
        run.peer_reset = True
        for _ in range(50):
            if proto.lost.done():
                break
            _call(run.write, "bytes", 1000)
            await asyncio.sleep(0.01)
        t.close()
    await run.peer_read_until(lambda: False)
    await asyncio.wait_for(asyncio.shield(proto.lost), helpers.PROMPT)
    graceful = strict and ending != "abort" and ending != "peer_reset" and not run.peer_reset
    if graceful:
        # Everything written arrived, and the peer saw EOF.
        assert bytes(run.peer_got) == _OUT[:run.written]
    return {
        "decided": strict and ending != "peer_reset",
        "eof": proto.eof if strict and ending in ("write_eof", "peer_shutdown") else None,
        "graceful": graceful,
    }


def _on_both_loops(*args):
    results = {}
    for impl in helpers.IMPLS:
        loop = helpers.loop_factory(impl)()
        try:
            results[impl] = helpers.run(loop, _play(loop, *args))
        finally:
            loop.close()
    assert results["loopx"] == results["asyncio"]


_FAMILIES = ["tcp", "tls"] + (["unix"] if hasattr(socket, "AF_UNIX") else [])


@settings(max_examples=helpers.examples(60), deadline=None)
@given(
    family=st.sampled_from(_FAMILIES),
    buffered=st.booleans(),
    keep_open=st.booleans(),
    ops=st.lists(_OPS, max_size=12),
    ending=st.sampled_from(_ENDINGS),
)
def test_property_any_program_on_a_socket_keeps_every_byte_and_the_order_of_calls(
        family, buffered, keep_open, ops, ending):
    _on_both_loops(family, buffered, keep_open, ops, ending)


@helpers.windows_skip("pipe transports over os.pipe() fds")
@settings(max_examples=helpers.examples(60), deadline=None)
@given(
    family=st.sampled_from(["read_pipe", "write_pipe"]),
    ops=st.lists(_OPS, max_size=12),
    ending=st.sampled_from(_ENDINGS),
)
def test_property_any_program_on_a_pipe_keeps_every_byte_and_the_order_of_calls(
        family, ops, ending):
    # Pipe transports call data_received() only (as asyncio's do), and
    # end at EOF whatever eof_received() returns.
    _on_both_loops(family, False, False, ops, ending)
