"""asyncio streams over loopx's socket transport.

loopx feeds an exact StreamReaderProtocol's reader from C (loopx/stream_feed.pxi)
instead of through data_received/feed_data; every test here runs on asyncio's
loop too, so each asserts what the standard library's methods do.
"""
import asyncio
import socket
import sys

import pytest

import helpers


async def _connected_streams(limit=2 ** 16, protocol_class=asyncio.StreamReaderProtocol):
    """(reader, writer, peer): a StreamReader/Writer over one end of a
    socket pair, and the other end as a plain non-blocking socket."""
    loop = asyncio.get_running_loop()
    ours, peer = helpers.socketpair()
    reader = asyncio.StreamReader(limit=limit)
    protocol = protocol_class(reader)
    transport, _ = await loop.connect_accepted_socket(lambda: protocol, ours)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer, peer


def test_stream_reads_every_byte_in_order(loop):
    payload = helpers.pattern_bytes(3 * 2 ** 20 + 17)

    async def main():
        reader, writer, peer = await _connected_streams(limit=2 ** 20)
        with peer:
            sender = asyncio.ensure_future(asyncio.get_running_loop().sock_sendall(peer, payload))
            got = await reader.readexactly(len(payload))
            await sender
            writer.close()
        return got

    assert helpers.run(loop, main()) == payload


# Small reads are copied into the reader's buffer; from 32 KiB on, loopx
# receives straight into it: both sizes for each behaviour.
SIZES = pytest.mark.parametrize("size", [1024, 128 * 1024], ids=["small", "large"])


@SIZES
def test_reading_pauses_past_twice_the_limit_and_resumes(loop, size):
    limit = size

    async def main():
        reader, writer, peer = await _connected_streams(limit=limit)
        with peer:
            sender = asyncio.ensure_future(
                asyncio.get_running_loop().sock_sendall(peer, b"x" * (4 * limit)))
            while len(reader._buffer) <= 2 * limit:
                await asyncio.sleep(0.01)
            paused = not writer.transport.is_reading()
            data = await reader.readexactly(4 * limit)
            await sender
            resumed = writer.transport.is_reading()
            writer.close()
        return paused, len(data), resumed

    paused, n, resumed = helpers.run(loop, main())
    assert paused and resumed
    assert n == 4 * limit


def test_cancelled_read_is_not_woken_and_data_stays(loop):
    async def main():
        reader, writer, peer = await _connected_streams()
        with peer:
            pending = asyncio.ensure_future(reader.read(100))
            await asyncio.sleep(0)
            pending.cancel()
            peer.send(b"kept")
            await asyncio.sleep(0.05)
            data = await reader.read(100)
            writer.close()
        return pending.cancelled(), data

    assert helpers.run(loop, main()) == (True, b"kept")


def test_data_for_a_collected_reader_is_dropped(loop):
    async def main():
        loop_ = asyncio.get_running_loop()
        ours, peer = helpers.socketpair()
        protocol = asyncio.StreamReaderProtocol(asyncio.StreamReader())
        transport, _ = await loop_.connect_accepted_socket(lambda: protocol, ours)
        import gc
        gc.collect()  # the protocol only holds its reader weakly
        with peer:
            peer.send(b"nobody reads this")
            await asyncio.sleep(0.05)
            closing = transport.is_closing()
            transport.close()
        return closing

    assert helpers.run(loop, main()) is False


def test_data_after_feed_eof_fails_the_transport_like_feed_data(loop):
    """Data arriving for a reader that already had EOF fed makes feed_data
    raise AssertionError: a fatal protocol error that closes the transport
    and reaches the exception handler (with -O the assert is skipped, and
    loopx then feeds exactly as feed_data does)."""
    errors = helpers.collect_errors(loop)

    async def main():
        reader, writer, peer = await _connected_streams()
        with peer:
            reader.feed_eof()
            peer.send(b"late")
            await asyncio.sleep(0.05)
            closing = writer.transport.is_closing()
            writer.close()
        return closing

    closing = helpers.run(loop, main())
    if __debug__:
        assert closing
        assert any(isinstance(e.get("exception"), AssertionError) for e in errors)


@SIZES
def test_exported_buffer_fails_the_transport_like_extend(loop, size):
    errors = helpers.collect_errors(loop)

    async def main():
        reader, writer, peer = await _connected_streams(limit=4 * size)
        with peer:
            await asyncio.get_running_loop().sock_sendall(peer, b"1" * size)
            while len(reader._buffer) < size:
                await reader._wait_for_data("test")
            view = memoryview(reader._buffer)  # now the bytearray cannot grow
            peer.send(b"2" * size)
            await asyncio.sleep(0.05)
            closing = writer.transport.is_closing()
            view.release()
            writer.close()
        return closing

    assert helpers.run(loop, main())
    assert any(isinstance(e.get("exception"), BufferError) for e in errors)


def test_subclassed_protocol_gets_data_received(loop):
    seen = []

    class Spy(asyncio.StreamReaderProtocol):
        def data_received(self, data):
            seen.append(data)
            super().data_received(data)

    async def main():
        reader, writer, peer = await _connected_streams(protocol_class=Spy)
        with peer:
            peer.send(b"spied")
            data = await reader.read(100)
            writer.close()
        return data

    assert helpers.run(loop, main()) == b"spied"
    assert b"".join(seen) == b"spied"


def test_patched_feed_data_is_called(loop, monkeypatch):
    seen = []
    original = asyncio.StreamReader.feed_data

    def feed_data(self, data):
        seen.append(data)
        original(self, data)

    monkeypatch.setattr(asyncio.StreamReader, "feed_data", feed_data)

    async def main():
        reader, writer, peer = await _connected_streams()
        with peer:
            peer.send(b"patched")
            data = await reader.read(100)
            writer.close()
        return data

    assert helpers.run(loop, main()) == b"patched"
    assert b"".join(seen) == b"patched"


def test_reader_subclass_gets_feed_data(loop):
    seen = []

    class Reader(asyncio.StreamReader):
        def feed_data(self, data):
            seen.append(data)
            super().feed_data(data)

    async def main():
        loop_ = asyncio.get_running_loop()
        ours, peer = helpers.socketpair()
        reader = Reader()
        protocol = asyncio.StreamReaderProtocol(reader)
        transport, _ = await loop_.connect_accepted_socket(lambda: protocol, ours)
        with peer:
            peer.send(b"sub")
            data = await reader.read(100)
            transport.close()
        return data

    assert helpers.run(loop, main()) == b"sub"
    assert seen == [b"sub"]


@helpers.only("loopx")
def test_loopx_feeds_an_exact_stream_reader_without_python_calls(loop):
    """The point of the fast path: no data_received/feed_data frames."""
    import sys
    called = []

    def profiler(frame, event, arg):
        if event == "call" and frame.f_code.co_name in ("data_received", "feed_data", "_wakeup_waiter"):
            called.append(frame.f_code.co_name)

    async def main():
        reader, writer, peer = await _connected_streams()
        with peer:
            sys.setprofile(profiler)
            try:
                peer.send(b"fast")
                data = await reader.read(100)
            finally:
                sys.setprofile(None)
            writer.close()
        return data

    assert helpers.run(loop, main()) == b"fast"
    assert called == []


# Subprocess pipes: asyncio.create_subprocess_* readers fed from C when the
# whole chain is the standard library's (stream_feed.pxi, bottom part).

# The child writes `size` bytes of a pattern to stdout (and a short line to
# stderr) as fast as it can, then exits 0.
_WRITER = (
    "import sys\n"
    "size = int(sys.argv[1])\n"
    "block = bytes(range(251)) * 1045\n"
    "sys.stderr.write('err-line\\n'); sys.stderr.flush()\n"
    "out = sys.stdout.buffer\n"
    "while size > 0:\n"
    "    out.write(block[:size]); size -= len(block)\n"
    "out.flush()\n"
)


def _pattern(size):
    block = bytes(range(251)) * 1045
    return (block * (size // len(block) + 1))[:size]


async def _child_output(size, limit=2 ** 16, read_size=None):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _WRITER, str(size),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=limit)
    if read_size is None:
        out, err = await proc.communicate()
    else:
        chunks = []
        while chunk := await proc.stdout.read(read_size):
            chunks.append(chunk)
        out, err = b"".join(chunks), await proc.stderr.read()
        assert proc.stdout.at_eof()
    return out, err, await proc.wait()


@pytest.mark.parametrize("size", [10, 300_000, 5_000_000])
def test_subprocess_output_arrives_whole_and_in_order(loop, size):
    out, err, status = helpers.run(loop, _child_output(size))
    assert (len(out), status, err) == (size, 0, b"err-line\n")
    assert out == _pattern(size)


def test_subprocess_reader_pauses_past_twice_its_limit_and_resumes(loop):
    """With a small limit and a reader that waits before reading, the pipe
    transport is paused (the child blocks) and resumed as the data is read."""
    async def main():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _WRITER, str(2_000_000),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=4096)
        for _ in range(200):
            await asyncio.sleep(0.005)
            if proc.stdout._paused:
                break
        paused = proc.stdout._paused
        buffered = len(proc.stdout._buffer)
        out = b""
        while chunk := await proc.stdout.read(65536):
            out += chunk
        await proc.stderr.read()
        return paused, buffered, out, await proc.wait()

    paused, buffered, out, status = helpers.run(loop, main())
    assert paused and buffered > 2 * 4096
    assert buffered < 2_000_000
    assert out == _pattern(2_000_000) and status == 0


def test_patched_pipe_data_received_is_called(loop, monkeypatch):
    seen = []
    original = asyncio.subprocess.SubprocessStreamProtocol.pipe_data_received

    def pipe_data_received(self, fd, data):
        seen.append((fd, len(data)))
        original(self, fd, data)

    monkeypatch.setattr(asyncio.subprocess.SubprocessStreamProtocol, "pipe_data_received",
                        pipe_data_received)
    out, err, status = helpers.run(loop, _child_output(300_000, read_size=65536))
    assert out == _pattern(300_000) and err == b"err-line\n" and status == 0
    assert sum(n for fd, n in seen if fd == 1) == 300_000
    assert sum(n for fd, n in seen if fd == 2) == len(b"err-line\n")


def test_custom_subprocess_protocol_gets_every_callback_in_order(loop):
    """A protocol of one's own (not SubprocessStreamProtocol) sees asyncio's
    callbacks: data before the pipe's connection_lost, exit reported."""
    events = []

    class Recorder(asyncio.SubprocessProtocol):
        def __init__(self, done):
            self.done = done
            self.received = bytearray()

        def pipe_data_received(self, fd, data):
            if fd == 1:
                self.received += data
            events.append(("data", fd))

        def pipe_connection_lost(self, fd, exc):
            events.append(("lost", fd))

        def process_exited(self):
            events.append(("exited",))

        def connection_lost(self, exc):
            self.done.set_result(None)

    async def main():
        loop_ = asyncio.get_running_loop()
        done = loop_.create_future()
        transport, protocol = await loop_.subprocess_exec(
            lambda: Recorder(done), sys.executable, "-c", _WRITER, "300000",
            stdin=None, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        await done
        transport.close()
        return bytes(protocol.received)

    assert helpers.run(loop, main()) == _pattern(300_000)
    for fd in (1, 2):
        mine = [e for e in events if e[1:] == (fd,)]
        assert mine[-1] == ("lost", fd) and all(e[0] == "data" for e in mine[:-1])
    assert ("exited",) in events


@helpers.only("loopx")
def test_loopx_feeds_subprocess_readers_without_python_calls(loop):
    """The point of the fast path: once the pipes are connected, no
    data_received / pipe_data_received / feed_data frames per read."""
    called = []

    def profiler(frame, event, arg):
        if event == "call" and frame.f_code.co_name in (
                "data_received", "_pipe_data_received", "pipe_data_received", "feed_data"):
            called.append(frame.f_code.co_name)

    async def main():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        sys.setprofile(profiler)
        try:
            proc.stdin.write(b"x" * 200_000)
            proc.stdin.close()
            out = await proc.stdout.read()
        finally:
            sys.setprofile(None)
        await proc.wait()
        return out

    assert helpers.run(loop, main()) == b"x" * 200_000
    assert called == []
