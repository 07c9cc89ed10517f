"""Writes made inside a protocol's own read callback.

loopx queues what a protocol writes during its data_received() or
buffer_updated() and sends it in one sendmsg() when the callback returns
(stream.pxi, "corking").  These tests pin down that nothing else about the
transport changes: every body runs on asyncio and on loopx and must see the
same bytes, the same end of stream and the same flow-control calls.  One
loopx-only test checks the coalescing itself.

The transport is the accepted end of a socket pair; the test holds the
other end (``peer``) as a plain non-blocking socket and sends b"go" to make
the protocol run its script.
"""
import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import helpers


class _Script:
    """Runs ``script(transport)`` inside its first read callback; records the
    flow-control calls and the end of the connection."""

    def __init__(self, loop, script):
        self.script = script
        self.transport = None
        self.paused = 0
        self.resumed = 0
        self.lost = loop.create_future()
        self.ran = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def _run_script(self):
        if not self.ran.done():
            try:
                self.script(self.transport)
            finally:
                self.ran.set_result(None)

    def pause_writing(self):
        self.paused += 1

    def resume_writing(self):
        self.resumed += 1

    def eof_received(self):
        return True   # half-close: keep writing

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


class ScriptedProtocol(_Script, asyncio.Protocol):
    def data_received(self, data):
        self._run_script()


class ScriptedBufferedProtocol(_Script, asyncio.BufferedProtocol):
    def get_buffer(self, sizehint):
        return bytearray(1024)

    def buffer_updated(self, nbytes):
        self._run_script()


async def scripted_connection(loop, script, buffered=False):
    """(transport, protocol, peer): script runs once the peer's b"go" lands."""
    ours, peer = helpers.socketpair()
    try:
        transport, proto = await loop.connect_accepted_socket(
            lambda: (ScriptedBufferedProtocol if buffered else ScriptedProtocol)(loop, script),
            sock=ours)
    except BaseException:
        ours.close()
        peer.close()
        raise
    peer.send(b"go")
    return transport, proto, peer


async def read_until_eof(loop, sock):
    chunks = []
    while True:
        chunk = await loop.sock_recv(sock, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


@pytest.mark.parametrize("buffered", [False, True], ids=["data_received", "buffer_updated"])
def test_writes_in_the_read_callback_arrive_whole_and_in_order(loop, buffered):
    """write(), writelines() and mutable buffers: the peer gets exactly what
    was written, even though a bytearray is changed right after write()."""
    async def main():
        def script(transport):
            scratch = bytearray(b"first;")
            transport.write(scratch)
            scratch[:] = b"XXXXXX"   # the transport must have copied it
            transport.write(b"")
            transport.write(memoryview(b"_second;")[1:])
            transport.writelines([b"third;", bytearray(b"fourth;"), b""])
            transport.write(b"fifth")
            transport.close()

        transport, proto, peer = await scripted_connection(loop, script, buffered)
        with peer:
            assert await read_until_eof(loop, peer) == b"first;second;third;fourth;fifth"
            assert await proto.lost is None
    helpers.run(loop, main())


@helpers.only("loopx")
@pytest.mark.parametrize("buffered", [False, True], ids=["data_received", "buffer_updated"])
def test_writes_in_the_read_callback_leave_in_one_send(loop, buffered):
    """The coalescing itself (loopx only: asyncio sends each write at once).
    Nothing reaches the peer while the callback runs; right after it, all of
    it is there, as one send (a Unix stream socket hands one sendmsg() to one
    recv())."""
    seen_during = []

    async def main():
        def script(transport):
            transport.write(b"a" * 100)
            transport.write(b"b" * 100)
            transport.writelines([b"c" * 100, b"d" * 100])
            try:
                seen_during.append(peer.recv(1000))
            except BlockingIOError:
                seen_during.append(None)

        transport, proto, peer = await scripted_connection(loop, script, buffered)
        with peer:
            await proto.ran
            assert seen_during == [None]
            assert peer.recv(1000) == b"a" * 100 + b"b" * 100 + b"c" * 100 + b"d" * 100
            transport.close()
            assert await proto.lost is None
    helpers.run(loop, main())


@pytest.mark.parametrize("ending", ["close", "abort", "write_eof"])
def test_ending_the_connection_in_the_read_callback_keeps_what_was_written(loop, ending):
    """close(), abort() and write_eof() right after writes in the callback:
    the peer still receives every byte, then end of stream.  (asyncio had
    sent them at write(); abort() only drops what the kernel refused.)"""
    async def main():
        def script(transport):
            transport.write(b"reply-1;")
            transport.write(b"reply-2")
            getattr(transport, ending)()

        transport, proto, peer = await scripted_connection(loop, script)
        with peer:
            assert await read_until_eof(loop, peer) == b"reply-1;reply-2"
            if ending == "write_eof":
                # Half-closed: our side still reads what the peer sends.
                assert not transport.is_closing()
                transport.close()
            assert await proto.lost is None
    helpers.run(loop, main())


def test_a_raising_read_callback_still_sends_what_it_wrote(loop):
    """A protocol that writes and then raises: the exception goes to the
    handler and the transport closes, but what it wrote was sent."""
    errors = helpers.collect_errors(loop)

    async def main():
        def script(transport):
            transport.write(b"partial answer")
            raise ZeroDivisionError("protocol bug")

        transport, proto, peer = await scripted_connection(loop, script)
        with peer:
            assert await read_until_eof(loop, peer) == b"partial answer"
            assert isinstance(await proto.lost, ZeroDivisionError)
    helpers.run(loop, main())
    assert [type(e["exception"]) for e in errors] == [ZeroDivisionError]


def test_buffer_size_and_limits_in_the_read_callback_are_asyncios(loop):
    """Inside the callback, get_write_buffer_size() counts only what the
    kernel refused (nothing here), and neither lowering the high-water mark
    to 0 nor writing past it pauses the protocol while the kernel takes it
    all."""
    sizes = []

    async def main():
        def script(transport):
            transport.set_write_buffer_limits(high=8192)
            for _ in range(4):
                transport.write(b"z" * 4096)   # 12 KiB is past the mark
            sizes.append(transport.get_write_buffer_size())
            transport.write(b"tail")
            transport.set_write_buffer_limits(high=0)
            sizes.append(transport.get_write_buffer_size())
            transport.close()

        transport, proto, peer = await scripted_connection(loop, script)
        with peer:
            assert await read_until_eof(loop, peer) == b"z" * 16384 + b"tail"
            await proto.lost
            assert sizes == [0, 0]
            assert (proto.paused, proto.resumed) == (0, 0)
    helpers.run(loop, main())


@pytest.mark.parametrize("writes", [1, 2])
def test_a_big_write_in_the_read_callback_pauses_once_and_resumes(loop, writes):
    """What the kernel cannot take is buffered and pauses the protocol, as
    in asyncio; once the peer reads, writing resumes and every byte arrives.
    (One write is held on its own, two in the queue: both paths.)"""
    payload = helpers.pattern_bytes(4_000_000, seed=7)

    async def main():
        def script(transport):
            if writes == 1:
                transport.write(payload)
            else:
                transport.write(payload[:1000])
                transport.write(payload[1000:])

        transport, proto, peer = await scripted_connection(loop, script)
        with peer:
            await proto.ran
            assert proto.paused == 1
            assert transport.get_write_buffer_size() > 0
            got = await helpers.read_exactly(loop, peer, len(payload))
            assert got == payload
            await helpers.async_wait_until(lambda: proto.resumed == 1)
            transport.close()
            assert await proto.lost is None
    helpers.run(loop, main())


_WRITE_KINDS = st.sampled_from(["bytes", "bytearray", "memoryview", "writelines"])


@settings(max_examples=40, deadline=None)
@given(
    writes=st.lists(st.tuples(_WRITE_KINDS, st.integers(0, 300_000)), min_size=1, max_size=8),
    high=st.sampled_from([None, 0, 1024, 100_000]),
    ending=st.sampled_from(["close", "nothing"]),
)
def test_property_read_callback_writes_arrive_as_on_asyncio(writes, high, ending):
    """Any mix of writes of any size (some far past what the kernel takes),
    any high-water mark: on both loops the peer reads the same bytes, and
    every pause_writing() is matched by a resume_writing() once it has."""
    expected = b"".join(helpers.pattern_bytes(size, seed=i) for i, (_, size) in enumerate(writes))
    for impl in helpers.IMPLS:
        loop = helpers.loop_factory(impl)()
        try:
            got, paused, resumed = helpers.run(loop, _write_script(loop, writes, high, ending))
        finally:
            loop.close()
        assert got == expected, impl
        assert paused == resumed <= 1, impl


async def _write_script(loop, writes, high, ending):
    def script(transport):
        if high is not None:
            transport.set_write_buffer_limits(high=high)
        for i, (kind, size) in enumerate(writes):
            data = helpers.pattern_bytes(size, seed=i)
            if kind == "bytearray":
                data = bytearray(data)
            elif kind == "memoryview":
                data = memoryview(data)
            if kind == "writelines":
                # No empty chunks: asyncio's own transport never finishes
                # closing after one (CPython gh-155888, in 3.12 and 3.13.0).
                transport.writelines([c for c in (data[: size // 2], data[size // 2:]) if c])
            else:
                transport.write(data)
        if ending == "close":
            transport.close()

    transport, proto, peer = await scripted_connection(loop, script)
    with peer:
        await proto.ran
        if ending == "close":
            got = await read_until_eof(loop, peer)
        else:
            total = sum(size for _, size in writes)
            got = await helpers.read_exactly(loop, peer, total)
            await helpers.async_wait_until(lambda: not transport.get_write_buffer_size())
            transport.close()
        await proto.lost
        return got, proto.paused, proto.resumed
