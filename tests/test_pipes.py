"""Pipe transports: loop.connect_read_pipe and loop.connect_write_pipe.

Every test runs on asyncio's selector loop and on loopx (see
conftest.py's loop), whose teardown also checks that no file descriptor
leaked.
"""
import asyncio
import gc
import hashlib
import os
import socket
import stat
import sys
import tempfile
import tty
import warnings

import pytest

import helpers
from helpers import Recorder, collect_errors, is_loopx, open_fds, pattern_bytes, run

helpers.skip_module_on_windows(
    "pipe transports over os.pipe() fds: Windows' proactor loop takes overlapped pipe handles (asyncio.windows_utils), not CRT fds")

BIG = 10 * 1024 * 1024
CAN_ASK_IS_READING = "is_reading" in asyncio.unix_events._UnixReadPipeTransport.__dict__


async def read_pipe(loop, pipe, protocol=Recorder):
    if isinstance(pipe, int):
        pipe = os.fdopen(pipe, "rb", 0)
    return await loop.connect_read_pipe(lambda: protocol(loop), pipe)


async def write_pipe(loop, pipe, protocol=Recorder):
    if isinstance(pipe, int):
        pipe = os.fdopen(pipe, "wb", 0)
    return await loop.connect_write_pipe(lambda: protocol(loop), pipe)


def close_fd(fd):
    try:
        os.close(fd)
    except OSError:
        pass


# -- data, EOF, closing ----------------------------------------------------------


def test_round_trip_through_os_pipe(loop):
    r, w = os.pipe()

    async def main():
        rt, rp = await read_pipe(loop, r)
        wt, wp = await write_pipe(loop, w)
        assert not os.get_blocking(r) and not os.get_blocking(w)
        wt.write(b"hello")
        wt.write(bytearray(b" "))
        wt.write(memoryview(b"world"))
        wt.write(b"")  # ignored
        wt.writelines([b"!", bytearray(b"?"), memoryview(b".")])
        await rp.wait_for(lambda p: p.data() == b"hello world!?.")
        wt.close()
        assert wt.is_closing()
        assert await wp.lost is None
        assert await rp.lost is None
        assert rp.names()[0] == "connection_made"
        assert rp.names()[-2:] == ["eof_received", "connection_lost"]
        assert set(rp.names()[1:-2]) == {"data_received"}
        assert wp.names() == ["connection_made", "connection_lost"]
        assert rt.is_closing()

    run(loop, main())


def test_eof_from_a_raw_fd(loop):
    r, w = os.pipe()

    async def main():
        rt, rp = await read_pipe(loop, r)
        os.write(w, b"abc")
        os.close(w)
        assert await rp.lost is None
        assert rp.data() == b"abc"
        assert rp.names() == ["connection_made", "data_received", "eof_received", "connection_lost"]
        assert rt.is_closing()

    run(loop, main())


def test_close_read_pipe_is_idempotent_and_loses_the_connection_once(loop):
    r, w = os.pipe()

    async def main():
        rt, rp = await read_pipe(loop, r)
        rt.close()
        rt.close()
        assert rt.is_closing()
        assert await rp.lost is None
        await asyncio.sleep(0.01)
        assert rp.names() == ["connection_made", "connection_lost"]
        assert rt.get_extra_info("pipe").closed
        os.close(w)

    run(loop, main())


def test_write_eof(loop):
    r, w = os.pipe()

    async def main():
        rt, rp = await read_pipe(loop, r)
        wt, wp = await write_pipe(loop, w)
        assert wt.can_write_eof()
        wt.write(b"last words")
        wt.write_eof()
        assert wt.is_closing()
        wt.write(b"too late")  # dropped silently, as after close()
        wt.write_eof()
        assert await wp.lost is None
        assert await rp.lost is None
        assert rp.data() == b"last words"

    run(loop, main())


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview"])
def test_large_transfer_with_flow_control(loop, kind):
    payload = pattern_bytes(BIG)
    chunk = 256 * 1024

    class Producer(Recorder):
        """Writes while not paused, the way a well-behaved protocol does."""

        pos = 0
        paused = False

        def pump(self):
            while not self.paused and self.pos < len(payload):
                piece = payload[self.pos : self.pos + chunk]
                if kind == "bytearray":
                    piece = bytearray(piece)
                elif kind == "memoryview":
                    piece = memoryview(payload)[self.pos : self.pos + chunk]
                self.transport.write(piece)
                self.pos += chunk
            if self.pos >= len(payload) and not self.transport.is_closing():
                # Not close() right here: asyncio's pipe transport loses the
                # queue when resume_writing() closes it (see
                # test_close_from_resume_writing_keeps_the_queue).
                self.loop.call_soon(self.transport.close)

        def pause_writing(self):
            super().pause_writing()
            self.paused = True

        def resume_writing(self):
            super().resume_writing()
            self.paused = False
            self.pump()

    class Hasher(Recorder):
        size = 0
        digest = hashlib.sha256()

        def data_received(self, data):
            self.size += len(data)
            self.digest.update(data)

    r, w = os.pipe()

    async def main():
        rt, rp = await read_pipe(loop, r, Hasher)
        wt, wp = await write_pipe(loop, w, Producer)
        wp.pump()
        assert await wp.lost is None
        assert await rp.lost is None
        assert rp.size == BIG
        assert rp.digest.hexdigest() == hashlib.sha256(payload).hexdigest()
        pauses = [a[0] for n, a in wp.events if n == "pause_writing"]
        resumes = [a[0] for n, a in wp.events if n == "resume_writing"]
        assert pauses and len(resumes) == len(pauses)
        low, high = wt.get_write_buffer_limits()
        assert all(size > high for size in pauses)
        assert all(size <= low for size in resumes)

    run(loop, main())


def test_one_huge_write_then_close(loop):
    payload = pattern_bytes(BIG, 1)
    r, w = os.pipe()

    async def main():
        rt, rp = await read_pipe(loop, r)
        wt, wp = await write_pipe(loop, w)
        wt.write(payload)
        assert wt.get_write_buffer_size() > 0
        assert wp.names() == ["connection_made", "pause_writing"]
        wt.close()
        assert await wp.lost is None
        assert await rp.lost is None
        assert hashlib.sha256(rp.data()).digest() == hashlib.sha256(payload).digest()
        assert wt.get_write_buffer_size() == 0

    run(loop, main())


def test_many_small_writes(loop):
    pieces = [pattern_bytes(13, i) for i in range(30000)]
    r, w = os.pipe()

    async def main():
        rt, rp = await read_pipe(loop, r)
        wt, wp = await write_pipe(loop, w)
        for piece in pieces:
            wt.write(piece)
        # The pipe took at most its 64 KiB; the rest is queued.
        assert 13 * 30000 - 65536 <= wt.get_write_buffer_size() < 13 * 30000
        wt.close()
        assert await rp.lost is None
        assert rp.data() == b"".join(pieces)

    run(loop, main())


def test_mixed_write_sizes_keep_their_order(loop):
    # Small writes are copied together and big bytes objects are queued as
    # they are: the bytes must still come out in the order written.
    sizes = [1, 5000, 3, 70000, 2, 2, 300000, 4096, 4095, 1, 100000]
    pieces = [pattern_bytes(n, i) for i, n in enumerate(sizes)]
    r, w = os.pipe()

    async def main():
        rt, rp = await read_pipe(loop, r)
        wt, wp = await write_pipe(loop, w)
        for round_ in range(3):
            for i, piece in enumerate(pieces):
                wt.write(piece if i % 2 else bytearray(piece))
            await asyncio.sleep(0)
        wt.close()
        assert await rp.lost is None
        assert rp.data() == b"".join(pieces) * 3

    run(loop, main())


# -- the peer goes away -------------------------------------------------------------


def test_write_after_reader_closed_is_broken_pipe(loop):
    r, w = os.pipe()

    async def main():
        errors = collect_errors(loop)
        wt, wp = await write_pipe(loop, w)
        os.close(r)
        wt.write(b"nobody listens")
        assert wt.is_closing()
        exc = await wp.lost
        assert isinstance(exc, BrokenPipeError)
        assert errors == []  # an OSError: logged in debug mode only
        wt.write(b"again")  # dropped silently
        assert wp.names() == ["connection_made", "connection_lost"]

    run(loop, main())


def test_reader_closing_with_queued_data_is_broken_pipe(loop):
    r, w = os.pipe()

    async def main():
        wt, wp = await write_pipe(loop, w)
        wt.write(b"x" * 1000000)
        assert wt.get_write_buffer_size() > 0
        os.close(r)
        exc = await wp.lost
        assert isinstance(exc, BrokenPipeError)
        assert wt.get_write_buffer_size() == 0

    run(loop, main())


def test_reader_closing_with_nothing_queued_is_a_clean_end(loop):
    r, w = os.pipe()

    async def main():
        wt, wp = await write_pipe(loop, w)
        os.close(r)
        assert await wp.lost is None
        assert wt.is_closing()

    run(loop, main())


def test_socket_peer_closed(loop):
    a, b = socket.socketpair()

    async def main():
        wt, wp = await write_pipe(loop, b)
        a.close()
        wt.write(b"x" * 100)
        exc = await wp.lost
        assert isinstance(exc, (BrokenPipeError, ConnectionResetError))
        assert b.fileno() == -1  # the transport closed it

    run(loop, main())


def test_socket_as_read_pipe(loop):
    a, b = socket.socketpair()

    async def main():
        rt, rp = await read_pipe(loop, b)
        a.sendall(b"over a socket")
        a.shutdown(socket.SHUT_WR)
        assert await rp.lost is None
        assert rp.data() == b"over a socket"
        assert "eof_received" in rp.names()

    with a:
        run(loop, main())


def test_named_fifo(loop):
    path = os.path.join(tempfile.mkdtemp(prefix="lx-", dir="/tmp"), "fifo")
    os.mkfifo(path)
    try:
        r = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        w = os.open(path, os.O_WRONLY)

        async def main():
            rt, rp = await read_pipe(loop, r)
            wt, wp = await write_pipe(loop, w)
            wt.write(b"through a fifo")
            wt.close()
            assert await rp.lost is None
            assert rp.data() == b"through a fifo"

        run(loop, main())
    finally:
        os.unlink(path)
        os.rmdir(os.path.dirname(path))


# -- what can be a pipe -------------------------------------------------------------


def test_regular_file_is_rejected(loop, tmp_path):
    path = tmp_path / "regular"
    path.write_bytes(b"data")

    async def main():
        with open(path, "rb") as f:
            with pytest.raises(ValueError, match=r"^Pipe transport is for pipes/sockets only\.$"):
                await read_pipe(loop, f)
            assert not f.closed  # still the caller's
        with open(path, "ab") as f:
            with pytest.raises(ValueError, match="^Pipe transport is only for pipes, sockets and character devices$"):
                await write_pipe(loop, f)
            assert not f.closed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()  # earlier tests' garbage must not warn in the block below
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(loop, main())
        gc.collect()
    assert not [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_dev_null_is_a_write_pipe(loop):
    async def main():
        wt, wp = await write_pipe(loop, open(os.devnull, "wb", buffering=0))
        assert stat.S_ISCHR(os.fstat(wt.get_extra_info("pipe").fileno()).st_mode)
        wt.write(b"\0" * 1000000)
        assert wt.get_write_buffer_size() == 0
        wt.close()
        assert await wp.lost is None

    run(loop, main())


def test_pty(loop):
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no newline translation

    async def main():
        errors = collect_errors(loop)
        rt, rp = await read_pipe(loop, master)
        wt, wp = await write_pipe(loop, slave)
        wt.write(b"through a pty\n")
        await rp.wait_for(lambda p: p.data() == b"through a pty\n")
        # Closing the last fd of the slave side makes reads of the master
        # fail with EIO: a normal end for a pty, reported to connection_lost
        # but not to the exception handler.
        wt.close()
        assert await wp.lost is None
        exc = await rp.lost
        assert isinstance(exc, OSError) and exc.errno == 5  # EIO
        assert "eof_received" not in rp.names()
        assert errors == []

    run(loop, main())


# -- reading control ----------------------------------------------------------------


def test_pause_and_resume_reading(loop):
    r, w = os.pipe()

    async def main():
        rt, rp = await read_pipe(loop, r)
        rt.pause_reading()
        rt.pause_reading()
        if CAN_ASK_IS_READING:
            assert not rt.is_reading()
        os.write(w, b"held")
        await asyncio.sleep(0.05)
        assert rp.data() == b""
        rt.resume_reading()
        rt.resume_reading()
        if CAN_ASK_IS_READING:
            assert rt.is_reading()
        await rp.wait_for(lambda p: p.data() == b"held")
        os.close(w)
        assert await rp.lost is None
        if CAN_ASK_IS_READING:
            assert not rt.is_reading()

    run(loop, main())


def test_paused_in_connection_made_reads_nothing_until_resumed(loop):
    class PausesAtOnce(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.pause_reading()

    r, w = os.pipe()

    async def main():
        os.write(w, b"early")
        rt, rp = await read_pipe(loop, r, PausesAtOnce)
        await asyncio.sleep(0.05)
        assert rp.data() == b""
        rt.resume_reading()
        await rp.wait_for(lambda p: p.data() == b"early")
        rt.close()
        await rp.lost
        os.close(w)

    run(loop, main())


def test_closed_in_connection_made_never_reads(loop):
    class ClosesAtOnce(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.close()

    r, w = os.pipe()
    # In debug mode connect_read_pipe() logs pipe.fileno() after the waiter,
    # which fails on a pipe the protocol has already closed (both loops run
    # asyncio's own connect_read_pipe).
    loop.set_debug(False)

    async def main():
        os.write(w, b"ignored")
        rt, rp = await read_pipe(loop, r, ClosesAtOnce)
        assert await rp.lost is None
        assert rp.names() == ["connection_made", "connection_lost"]
        os.close(w)

    run(loop, main())


# -- write transport details ----------------------------------------------------------


def test_abort_drops_the_queue(loop):
    r, w = os.pipe()

    async def main():
        rt, rp = await read_pipe(loop, r)
        wt, wp = await write_pipe(loop, w)
        wt.write(b"a" * 65536)  # fills the pipe exactly
        wt.write(b"b" * 100000)  # queued
        assert wt.get_write_buffer_size() == 100000
        wt.abort()
        assert wt.is_closing()
        assert wt.get_write_buffer_size() == 0
        assert await wp.lost is None
        assert await rp.lost is None
        assert rp.data() == b"a" * 65536
        if is_loopx(loop):
            # asyncio fails here with AttributeError: its transport has
            # dropped its loop after connection_lost.
            wt.abort()
            wt.close()
        await asyncio.sleep(0.01)
        assert wp.names().count("connection_lost") == 1

    run(loop, main())


def test_close_from_resume_writing_keeps_the_queue(loop, request):
    if not is_loopx(loop):
        # asyncio's _UnixWritePipeTransport._write_ready() calls
        # connection_lost (closing the pipe) right after resume_writing()
        # returns if the transport is closing, without looking whether
        # resume_writing() queued more data: that data is lost.
        request.applymarker(pytest.mark.xfail(reason="asyncio loses the queue", strict=True))
    payload = pattern_bytes(3 * 65536, 7)

    class WritesThenCloses(Recorder):
        def resume_writing(self):
            super().resume_writing()
            self.transport.write(payload)  # more than the pipe takes: queued
            self.transport.close()

    r, w = os.pipe()

    async def main():
        rt, rp = await read_pipe(loop, r)
        wt, wp = await write_pipe(loop, w, WritesThenCloses)
        wt.set_write_buffer_limits(high=0)
        wt.write(b"x" * 100000)  # pauses; the reader drains it and we resume
        assert await wp.lost is None
        assert await rp.lost is None
        assert rp.data() == b"x" * 100000 + payload

    run(loop, main())


def test_abort_after_close_with_queued_data_loses_the_connection_once(loop):
    r, w = os.pipe()

    async def main():
        rt, rp = await read_pipe(loop, r)
        wt, wp = await write_pipe(loop, w)
        wt.write(b"z" * 200000)
        wt.close()
        wt.abort()
        assert await wp.lost is None
        await asyncio.sleep(0.02)
        assert wp.names().count("connection_lost") == 1
        rt.close()
        await rp.lost

    run(loop, main())


@pytest.mark.skipif(sys.flags.optimize, reason="asyncio checks the type with assert")
def test_write_rejects_non_bytes(loop):
    r, w = os.pipe()

    async def main():
        wt, wp = await write_pipe(loop, w)
        with pytest.raises(AssertionError):
            wt.write("text")
        wt.close()
        await wp.lost
        os.close(r)

    run(loop, main())


def test_write_buffer_limits(loop):
    r, w = os.pipe()

    async def main():
        wt, wp = await write_pipe(loop, w)
        assert wt.get_write_buffer_limits() == (16384, 65536)
        wt.set_write_buffer_limits(high=100, low=10)
        assert wt.get_write_buffer_limits() == (10, 100)
        with pytest.raises(ValueError):
            wt.set_write_buffer_limits(high=1, low=5)
        wt.write(b"x" * 65636)  # 100 bytes over what the pipe takes
        assert wp.names() == ["connection_made"]  # not above the high mark
        wt.write(b"y")
        assert wp.names() == ["connection_made", "pause_writing"]
        wt.set_write_buffer_limits(high=1000)  # still above low: stays paused
        os.close(r)
        await wp.lost

    run(loop, main())


def test_extra_info_protocol_and_repr(loop):
    r, w = os.pipe()

    async def main():
        rpipe = os.fdopen(r, "rb", 0)
        wpipe = os.fdopen(w, "wb", 0)
        rt, rp = await read_pipe(loop, rpipe)
        wt, wp = await write_pipe(loop, wpipe)
        assert rt.get_extra_info("pipe") is rpipe
        assert wt.get_extra_info("pipe") is wpipe
        assert wt.get_extra_info("missing", 42) == 42
        assert rt.get_protocol() is rp
        other = Recorder(loop)
        rt.set_protocol(other)
        assert rt.get_protocol() is other
        rt.set_protocol(rp)
        assert f"fd={r}" in repr(rt) and "polling" in repr(rt)
        assert f"fd={w}" in repr(wt) and "bufsize=0" in repr(wt)
        wt.close()
        await wp.lost
        await rp.lost
        assert "closed" in repr(rt) and "closed" in repr(wt)
        assert rpipe.closed and wpipe.closed

    run(loop, main())


def test_unclosed_pipe_transport_warns(loop):
    r, w = os.pipe()

    async def main():
        return await read_pipe(loop, r)

    held = list(run(loop, main()))  # transport, protocol
    loop.close()
    os.close(w)
    messages = helpers.resource_warnings_when_collected(held)
    # The file object may warn about itself too: the collector finalizes the
    # cycle's members in no particular order.
    assert any(m.startswith("unclosed transport") for m in messages), messages


def test_no_fd_leaks_over_many_pipes(loop):
    async def once(i):
        r, w = os.pipe()
        rt, rp = await read_pipe(loop, r)
        wt, wp = await write_pipe(loop, w)
        wt.write(pattern_bytes(100 + i, i))
        if i % 3 == 0:
            wt.abort()
        else:
            wt.close()
        await wp.lost
        await rp.lost

    async def main():
        await once(0)  # anything created lazily exists from here on
        before = len(open_fds())
        for i in range(1, 60):
            await once(i)
        gc.collect()
        assert len(open_fds()) == before

    run(loop, main())


def test_debug_mode_pipes(loop):
    loop.set_debug(True)
    r, w = os.pipe()

    async def main():
        rt, rp = await read_pipe(loop, r)
        wt, wp = await write_pipe(loop, w)
        rt.pause_reading()
        rt.resume_reading()
        wt.write(b"debug")
        wt.close()
        assert await rp.lost is None
        assert rp.data() == b"debug"

    run(loop, main())


class _Named(asyncio.Protocol):
    def __init__(self, name, log):
        self.name, self.log = name, log

    def data_received(self, data):
        self.log.append((self.name, data))

    def connection_lost(self, exc):
        self.log.append((self.name, "lost"))


def test_a_new_pipe_s_waiting_data_comes_before_an_old_pipe_s_close(loop):
    """asyncssh's redirect_stdin: open a read pipe whose data is already
    there, then close the old one.  As with asyncio, the new pipe's data is
    delivered before the old pipe's connection_lost."""
    log = []

    async def main():
        old_w, old_r = helpers.socketpair()
        new_w, new_r = helpers.socketpair()
        old_w.send(b"xxx")
        new_w.send(b"yyy")
        old_file = os.fdopen(old_r.detach(), "rb", buffering=0)
        new_file = os.fdopen(new_r.detach(), "rb", buffering=0)
        old, _ = await loop.connect_read_pipe(lambda: _Named("old", log), old_file)
        await asyncio.sleep(0.05)
        new, _ = await loop.connect_read_pipe(lambda: _Named("new", log), new_file)
        old.close()
        await asyncio.sleep(0.05)
        new.close()
        await asyncio.sleep(0)
        old_w.close()
        new_w.close()

    helpers.run(loop, main())
    assert log == [("old", b"xxx"), ("new", b"yyy"), ("old", "lost"), ("new", "lost")]
