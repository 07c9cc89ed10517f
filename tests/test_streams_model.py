"""asyncio streams over a loop's transport, driven through random programs.

loopx feeds a StreamReader from C (stream_feed.pxi): it appends to the
reader's buffer, wakes its waiter and pauses the transport past twice the
limit, standing in for StreamReaderProtocol.data_received and
StreamReader.feed_data.  Here hypothesis writes programs of what an
application does with (reader, writer) and what its peer does with the other
end of the socket -- sends with and without newlines, shutting down, reading
-- and every one runs on asyncio's loop and on loopx, with a reader limit
small enough that pausing and LimitOverrunError happen.

A reader call is made only when what it returns is decided (the data it
needs has been sent, or the peer has shut down), so the loops must agree on
each call's outcome, as long as the same was decided in both runs (a peer's
send takes what the buffers have room for, which timing can change, and so
can how much a readline() over the limit drops): the bytes (always the next
bytes the peer sent, never one lost or repeated) or the exception.  read(n) may return less than n on
either loop; only its bytes are checked.  At the end the reader gets the
rest of the stream, and the peer everything the writer wrote.
"""
import asyncio
import socket

from hypothesis import given, settings
from hypothesis import strategies as st

import helpers

_OUT = helpers.pattern_bytes(2 << 20, seed="streams-out")
_IN = helpers.pattern_bytes(2 << 20, seed="streams-in").replace(b"\n", b".")

_SIZES = st.integers(1, 70_000)
_OPS = st.one_of(
    st.tuples(st.just("send"), _SIZES, st.booleans()),   # (size, ends with a newline)
    st.tuples(st.sampled_from(["read", "readexactly", "write", "writelines", "peer_read"]), _SIZES),
    st.sampled_from([("readline",), ("readuntil",), ("drain",), ("peer_shutdown",),
                     ("cancelled_read",)]),
)


class _Program:
    """One program's state on one loop."""

    def __init__(self, loop, reader, writer, peer, limit):
        self.loop = loop
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.limit = limit
        self.stream = bytearray()   # what the peer's kernel accepted, in order
        self.consumed = 0           # how much of it the reader has returned
        self.eof_sent = False
        self.written = 0
        self.peer_got = bytearray()

    def take(self, data):
        """The reader returned data: it must be the stream's next bytes."""
        assert data == self.stream[self.consumed:self.consumed + len(data)]
        self.consumed += len(data)

    def pending(self):
        return len(self.stream) - self.consumed

    async def buffered_at_least(self, size):
        """Wait until the reader holds size bytes (or all there is to get,
        when fewer): then a reader call sees the same buffer on both loops."""
        size = min(size, self.pending())
        await helpers.async_wait_until(lambda: len(self.reader._buffer) >= size)

    def send(self, size, newline):
        if self.eof_sent:
            return
        chunk = _IN[len(self.stream):len(self.stream) + size]
        if newline:
            chunk = chunk[:-1] + b"\n"
        try:
            self.stream += chunk[:self.peer.send(chunk)]
        except BlockingIOError:
            pass

    def peer_read(self, size):
        while size > 0:
            try:
                chunk = self.peer.recv(size)
            except BlockingIOError:
                return
            if not chunk:
                return
            self.peer_got += chunk
            size -= len(chunk)

    async def peer_read_until(self, size):
        """Read until the peer holds size bytes, or EOF."""
        self.peer_got += await helpers.read_exactly(self.loop, self.peer, size - len(self.peer_got))

    def write(self, size, lines):
        data = _OUT[self.written:self.written + size]
        if lines:
            self.writer.writelines([data[:size // 2], data[size // 2:]])
        else:
            self.writer.write(data)
        self.written += len(data)


async def _line_op(p, name):
    """readline() or readuntil(): (what decides the outcome, the outcome)."""
    newline = p.stream.find(b"\n", p.consumed)
    if newline != -1 and newline - p.consumed <= p.limit:
        decision = "a line within the limit"
        await p.buffered_at_least(newline + 1 - p.consumed)
    elif p.pending() > p.limit:
        # No separator within the limit: LimitOverrunError once the reader
        # holds more than the limit.
        decision = "over the limit"
        await p.buffered_at_least(p.limit + 1)
    elif not p.eof_sent:
        return "would wait", None
    else:
        decision = "the rest, then EOF"
        await p.buffered_at_least(p.pending())
        await helpers.async_wait_until(lambda: p.reader._eof)
    before = len(p.reader._buffer)
    try:
        if name == "readline":
            line = await p.reader.readline()
        else:
            line = await p.reader.readuntil(b"\n")
    except (asyncio.LimitOverrunError, ValueError) as exc:
        # readline() turns the overrun into ValueError and drops what it
        # looked at (through the separator, or all); readuntil() keeps it.
        p.take(p.stream[p.consumed:p.consumed + before - len(p.reader._buffer)])
        return decision, type(exc).__name__
    except asyncio.IncompleteReadError as exc:   # readuntil() at EOF
        p.take(exc.partial)
        return decision, "IncompleteReadError"
    p.take(line)
    return decision, "line" if line.endswith(b"\n") else "rest"


async def _step(p, op):
    """Apply op: (what decides its outcome, the outcome).  The peer's sends
    may take less than asked when buffers fill, so what is decided depends
    on the run; the loops are compared while it is the same."""
    name = op[0]
    if name == "send":
        p.send(op[1], op[2])
        await asyncio.sleep(0)
        return len(p.stream), None
    if name == "peer_shutdown":
        if not p.eof_sent:
            p.eof_sent = True
            p.peer.shutdown(socket.SHUT_WR)
    elif name == "peer_read":
        p.peer_read(op[1])
    elif name in ("write", "writelines"):
        p.write(op[1], name == "writelines")
    elif name == "drain":
        # The peer reads meanwhile, so drain() must finish.
        await asyncio.gather(p.writer.drain(), p.peer_read_until(p.written))
        return None, "drained"
    elif name == "read":
        has_data = p.pending() > 0
        if not has_data and not p.eof_sent:
            return "would wait", None
        data = await p.reader.read(op[1])
        p.take(data)
        return has_data, "data" if data else "eof"
    elif name == "cancelled_read":
        # A read that waits, cancelled: the reader's waiter is then a
        # cancelled future, which the next feed must pass over.
        if p.pending() or p.eof_sent:
            return "would not wait", None
        waiting = asyncio.ensure_future(p.reader.read(100))
        await asyncio.sleep(0)
        waiting.cancel()
        try:
            await waiting
        except asyncio.CancelledError:
            return "waits", "cancelled"
        return "waits", "not cancelled"
    elif name == "readexactly":
        enough = p.pending() >= op[1]
        if not enough and not p.eof_sent:
            return "would wait", None
        try:
            p.take(await p.reader.readexactly(op[1]))
        except asyncio.IncompleteReadError as exc:
            p.take(exc.partial)
            return enough, "IncompleteReadError"
        return enough, "exactly"
    else:
        return await _line_op(p, name)
    await asyncio.sleep(0)
    return None, None


async def _play(loop, limit, ops):
    errors = helpers.collect_errors(loop)
    ours, peer = helpers.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    with peer:
        try:
            reader, writer = await asyncio.open_connection(sock=ours, limit=limit)
        except BaseException:
            ours.close()
            raise
        p = _Program(loop, reader, writer, peer, limit)
        outcomes = [await _step(p, op) for op in ops]
        # The rest of the stream, then the writer's close.
        if not p.eof_sent:
            p.eof_sent = True
            peer.shutdown(socket.SHUT_WR)
        p.take(await reader.read())
        assert p.consumed == len(p.stream)
        assert reader.at_eof()
        writer.close()
        await asyncio.gather(writer.wait_closed(), p.peer_read_until(p.written + 1))
    assert p.peer_got == _OUT[:p.written]
    assert reader.exception() is None
    assert errors == []
    return outcomes


@settings(max_examples=helpers.examples(60), deadline=None)
@given(limit=st.sampled_from([64, 1000, 65536]), ops=st.lists(_OPS, max_size=14))
def test_property_streams_return_every_byte_in_order_as_on_asyncio(limit, ops):
    outcomes = {}
    for impl in helpers.IMPLS:
        loop = helpers.loop_factory(impl)()
        try:
            outcomes[impl] = helpers.run(loop, _play(loop, limit, ops))
        finally:
            loop.close()
    for ours, theirs in zip(outcomes["loopx"], outcomes["asyncio"]):
        if ours[0] != theirs[0]:
            break   # from here on, the runs differ in what was decided
        assert ours == theirs
