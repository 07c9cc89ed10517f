"""Stream transports and servers (TCP, Unix) through the public API (TLS: test_tls.py).

Every test body runs on asyncio's loop and on loopx (the ``loop`` fixture),
with real sockets on loopback and the fixture's fd-leak check.
"""
import asyncio
import hashlib
import os
import socket

import pytest

import helpers


def unused_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder(asyncio.Protocol):
    """Records every protocol callback in order, with the data received."""

    def __init__(self, loop):
        self.events = []
        self.data = bytearray()
        self.transport = None
        self.lost = loop.create_future()
        self.paused = 0
        self.resumed = 0

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def data_received(self, data):
        assert isinstance(data, bytes)
        self.data += data

    def eof_received(self):
        self.events.append("eof")

    def pause_writing(self):
        self.paused += 1

    def resume_writing(self):
        self.resumed += 1

    def connection_lost(self, exc):
        self.events.append(("lost", exc))
        if not self.lost.done():
            self.lost.set_result(exc)


class EchoServer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        self.transport.close()


async def echo_connection(loop):
    """A TCP echo server on loopback and a Recorder client connected to it."""
    server = await loop.create_server(EchoServer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, proto = await loop.create_connection(lambda: Recorder(loop), "127.0.0.1", port)
    return server, transport, proto


async def close_connection(server, transport, proto):
    transport.close()
    await proto.lost
    server.close()
    await server.wait_closed()


async def _echo_round_trip(loop, connect):
    client = Recorder(loop)
    transport, _ = await connect(lambda: client)
    payload = helpers.pattern_bytes(3_000_000, seed=7)
    transport.write(payload[:1000])
    transport.writelines([payload[1000:5000], bytearray(payload[5000:20000]),
                          memoryview(payload[20000:])])
    transport.write_eof()
    exc = await asyncio.wait_for(client.lost, helpers.SAFETY)
    assert exc is None
    assert hashlib.sha256(client.data).digest() == hashlib.sha256(payload).digest()
    assert client.events == ["made", "eof", ("lost", None)]
    assert transport.is_closing()


def test_tcp_echo_round_trip(loop):
    async def main():
        server = await loop.create_server(EchoServer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        await _echo_round_trip(loop, lambda f: loop.create_connection(f, "127.0.0.1", port))
        server.close()
        await server.wait_closed()
    helpers.run(loop, main())


@helpers.windows_skip("create_unix_server: AF_UNIX")
def test_unix_echo_round_trip(loop, tmp_path):
    path = str(tmp_path / "echo.sock")

    async def main():
        server = await loop.create_unix_server(EchoServer, path)
        await _echo_round_trip(loop, lambda f: loop.create_unix_connection(f, path))
        server.close()
        await server.wait_closed()
    helpers.run(loop, main())


def test_transport_extra_info_and_nodelay(loop):
    async def main():
        server, transport, proto = await echo_connection(loop)
        sock = transport.get_extra_info("socket")
        assert transport.get_extra_info("peername") == server.sockets[0].getsockname()
        assert transport.get_extra_info("sockname") == sock.getsockname()
        assert transport.get_extra_info("nonexistent", 42) == 42
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert transport.get_protocol() is proto
        assert transport.can_write_eof()
        assert transport.is_reading()
        transport.pause_reading()
        assert not transport.is_reading()
        transport.resume_reading()
        assert transport.is_reading()
        await close_connection(server, transport, proto)
    helpers.run(loop, main())


def test_repr_says_whether_the_loop_reads_the_socket(loop):
    # asyncio's repr asks its selector: "read=polling" while the fd is
    # watched; "read=idle" when paused, and after an EOF the protocol kept
    # the connection open for (nothing more to read, though is_reading()
    # still says True).
    class WriteEof(asyncio.Protocol):
        def connection_made(self, transport):
            transport.write_eof()

    class KeepOpen(Recorder):
        def __init__(self, loop):
            super().__init__(loop)
            self.eof = loop.create_future()

        def eof_received(self):
            super().eof_received()
            self.eof.set_result(None)
            return True

    async def main():
        server = await loop.create_server(WriteEof, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, client = await loop.create_connection(lambda: KeepOpen(loop), "127.0.0.1", port)
        reprs = [repr(transport)]
        transport.pause_reading()
        reprs.append(repr(transport))
        transport.resume_reading()
        reprs.append(repr(transport))
        await asyncio.wait_for(client.eof, helpers.SAFETY)
        reprs.append(repr(transport))
        assert transport.is_reading() and not transport.is_closing()
        transport.close()
        await client.lost
        server.close()
        await server.wait_closed()
        return reprs

    reprs = helpers.run(loop, main())
    assert [r.split("read=")[1].split()[0] for r in reprs] == ["polling", "idle", "polling", "idle"]


def test_close_flushes_queued_data_before_connection_lost(loop):
    async def main():
        received = bytearray()
        done = loop.create_future()

        class Sink(asyncio.Protocol):
            def connection_made(self, transport):
                transport.pause_reading()   # let the client's queue build up
                loop.call_later(0.2, transport.resume_reading)

            def data_received(self, data):
                received.extend(data)

            def eof_received(self):
                done.set_result(None)

        server = await loop.create_server(Sink, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, proto = await loop.create_connection(lambda: Recorder(loop), "127.0.0.1", port)
        payload = helpers.pattern_bytes(8_000_000, seed=3)
        transport.write(payload)
        assert transport.get_write_buffer_size() > 0
        transport.close()
        assert transport.is_closing()
        transport.close()  # idempotent
        await asyncio.wait_for(done, helpers.SAFETY)
        assert bytes(received) == payload
        assert await proto.lost is None
        assert proto.events.count(("lost", None)) == 1
        server.close()
        await server.wait_closed()
    helpers.run(loop, main())


@helpers.only("loopx")
def test_abort_after_a_close_that_flushed_does_nothing(loop, impl):
    """close() with data queued, the queue drains, connection_lost runs;
    abort() and close() afterwards change nothing and report nothing.
    loopx only: asyncio's abort() raises AttributeError here (its
    connection_lost-after-flush path does not count the connection as lost,
    so abort() schedules connection_lost again on a loop it has dropped)."""
    async def main():
        errors = helpers.collect_errors(loop)
        ours, peer = helpers.socketpair()
        with peer:
            transport, proto = await loop.connect_accepted_socket(lambda: Recorder(loop), sock=ours)
            payload = helpers.pattern_bytes(1_000_000, seed=4)
            transport.write(payload)
            assert transport.get_write_buffer_size() > 0
            transport.close()
            assert await helpers.read_exactly(loop, peer, len(payload) + 1) == payload
            assert await proto.lost is None
            transport.abort()
            transport.close()
            await asyncio.sleep(0.01)
        assert proto.events.count(("lost", None)) == 1
        assert errors == []
    helpers.run(loop, main())


def test_abort_drops_queued_data_and_loses_once(loop):
    async def main():
        accepted = []

        class Silent(asyncio.Protocol):
            def connection_made(self, transport):
                transport.pause_reading()
                accepted.append(transport)

        server = await loop.create_server(Silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, proto = await loop.create_connection(lambda: Recorder(loop), "127.0.0.1", port)
        transport.write(b"x" * 10_000_000)
        assert transport.get_write_buffer_size() > 0
        transport.abort()
        transport.abort()
        transport.close()
        assert await proto.lost is None
        await asyncio.sleep(0.01)
        assert [e for e in proto.events if e != "made"] == [("lost", None)]
        assert transport.get_write_buffer_size() == 0
        for each in accepted:
            each.close()
        server.close()
        await server.wait_closed()
    helpers.run(loop, main())


def test_flow_control_pauses_and_resumes_writing(loop):
    async def main():
        server, transport, proto = await echo_connection(loop)
        transport.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)
        assert transport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(high=1, low=2)
        payload = helpers.pattern_bytes(16_000_000, seed=1)
        transport.write(payload)
        assert proto.paused == 1
        await helpers.async_wait_until(lambda: len(proto.data) == len(payload))
        assert proto.resumed == 1
        assert bytes(proto.data) == payload
        await close_connection(server, transport, proto)
    helpers.run(loop, main())


def test_write_argument_and_state_errors(loop):
    async def main():
        server, transport, proto = await echo_connection(loop)
        with pytest.raises(TypeError):
            transport.write("text is not bytes")
        transport.write(b"")  # nothing to do, no error
        transport.write_eof()
        with pytest.raises(RuntimeError):
            transport.write(b"after eof")
        await proto.lost
        server.close()
        await server.wait_closed()
    helpers.run(loop, main())


def test_writes_after_connection_lost_are_dropped_quietly(loop, caplog):
    async def main():
        server, transport, proto = await echo_connection(loop)
        transport.abort()
        await proto.lost
        for _ in range(10):
            transport.write(b"late")   # asyncio: counted, then a warning, no raise
        server.close()
        await server.wait_closed()
    helpers.run(loop, main())
    assert any("socket.send() raised exception" in r.getMessage() for r in caplog.records)


def test_peer_reset_reaches_connection_lost(loop):
    async def main():
        class ResetOnConnect(asyncio.Protocol):
            def connection_made(self, transport):
                sock = transport.get_extra_info("socket")
                # SO_LINGER 0: close sends RST instead of FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                transport.abort()

        server = await loop.create_server(ResetOnConnect, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, proto = await loop.create_connection(lambda: Recorder(loop), "127.0.0.1", port)
        exc = await asyncio.wait_for(proto.lost, helpers.SAFETY)
        # Either the reset is seen while reading (ConnectionResetError) or as
        # end of stream, depending on timing; both end the connection once.
        assert exc is None or isinstance(exc, ConnectionResetError)
        assert [e for e in proto.events if isinstance(e, tuple)] == [("lost", exc)]
        server.close()
        await server.wait_closed()
    helpers.run(loop, main())


def test_protocol_raising_in_data_received_goes_to_handler_and_closes(loop):
    errors = []

    async def main():
        loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

        class Broken(Recorder):
            def data_received(self, data):
                raise ZeroDivisionError("protocol bug")

        server = await loop.create_server(EchoServer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, proto = await loop.create_connection(lambda: Broken(loop), "127.0.0.1", port)
        transport.write(b"ping")
        exc = await asyncio.wait_for(proto.lost, helpers.SAFETY)
        assert isinstance(exc, ZeroDivisionError)
        server.close()
        await server.wait_closed()
    helpers.run(loop, main())
    assert len(errors) == 1
    assert isinstance(errors[0]["exception"], ZeroDivisionError)
    assert errors[0]["message"] == "Fatal error: protocol.data_received() call failed."
    assert "transport" in errors[0] and "protocol" in errors[0]


def test_connection_refused(loop):
    port = unused_tcp_port()

    async def main():
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    helpers.run(loop, main())


def test_buffered_protocol_reads_into_its_buffer(loop):
    async def main():
        received = bytearray()
        lost = loop.create_future()

        class Buffered(asyncio.BufferedProtocol):
            def __init__(self):
                self.buf = bytearray(1000)

            def get_buffer(self, sizehint):
                return self.buf

            def buffer_updated(self, nbytes):
                assert 0 < nbytes <= len(self.buf)
                received.extend(self.buf[:nbytes])

            def connection_lost(self, exc):
                lost.set_result(exc)

        server = await loop.create_server(EchoServer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(Buffered, "127.0.0.1", port)
        payload = helpers.pattern_bytes(200_000, seed=9)
        transport.write(payload)
        transport.write_eof()
        assert await asyncio.wait_for(lost, helpers.SAFETY) is None
        assert bytes(received) == payload
        server.close()
        await server.wait_closed()
    helpers.run(loop, main())


def test_streams_and_server_close_clients(loop):
    async def main():
        async def handle(reader, writer):
            line = await reader.readline()
            writer.write(line.upper())
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            for _ in range(3):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"hello loop\n")
                assert await reader.read() == b"HELLO LOOP\n"
                writer.close()
                await writer.wait_closed()
            assert server.is_serving()
        assert not server.is_serving()
    helpers.run(loop, main())


@helpers.windows_skip("add_reader: asyncio's Windows (proactor) loop has none")
def test_add_reader_on_a_transport_fd_is_refused(loop):
    async def main():
        server, transport, proto = await echo_connection(loop)
        fd = transport.get_extra_info("socket").fileno()
        with pytest.raises(RuntimeError):
            loop.add_reader(fd, lambda: None)
        await close_connection(server, transport, proto)
    helpers.run(loop, main())


def test_sendfile_over_a_transport(loop, tmp_path):
    data = helpers.pattern_bytes(3_000_000, seed=5)
    path = tmp_path / "blob"
    path.write_bytes(data)

    async def main():
        server, transport, proto = await echo_connection(loop)
        with open(path, "rb") as f:
            sent = await loop.sendfile(transport, f, offset=1000, count=2_000_000)
            assert sent == 2_000_000
            assert f.tell() == 2_001_000
        transport.write(b"tail")
        await helpers.async_wait_until(lambda: len(proto.data) == 2_000_004)
        assert bytes(proto.data) == data[1000:2_001_000] + b"tail"
        await close_connection(server, transport, proto)
    helpers.run(loop, main())


def test_sendfile_falls_back_for_objects_without_a_file_descriptor(loop):
    import io
    data = helpers.pattern_bytes(500_000, seed=11)

    async def main():
        server, transport, proto = await echo_connection(loop)
        transport.set_write_buffer_limits(high=32 * 1024)
        source = io.BytesIO(data)
        assert await loop.sendfile(transport, source, offset=10) == len(data) - 10
        assert source.tell() == len(data)
        with pytest.raises(asyncio.SendfileNotAvailableError):
            await loop.sendfile(transport, io.BytesIO(data), fallback=False)
        await helpers.async_wait_until(lambda: len(proto.data) == len(data) - 10)
        assert bytes(proto.data) == data[10:]
        assert transport.get_protocol() is proto
        assert transport.is_reading()
        await close_connection(server, transport, proto)
    helpers.run(loop, main())
