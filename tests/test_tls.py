"""TLS over stream transports (loopx's native layer, tls.pxi), through the
public API: create_connection/create_server/start_server with ssl=,
start_tls, sendfile.  Every test runs on asyncio's loop too, as the reference.
"""
import asyncio
import gc
import hashlib
import os
import ssl
import weakref

import pytest

import helpers
from helpers import Recorder


@pytest.fixture(scope="module")
def tls_contexts():
    return helpers.tls_contexts()


class TLSEcho(asyncio.Protocol):
    """Echoes each chunk; closes at EOF (TLS has no half-close)."""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class BufferedTLSEcho(asyncio.BufferedProtocol):
    """Echoes through a small buffer of a given kind (bytearray or
    memoryview), which one TLS record fills more than once."""

    def __init__(self, size, kind):
        self.buf = bytearray(size)
        self.kind = kind
        self.asked = []

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        self.asked.append(sizehint)
        return self.buf if self.kind is bytearray else memoryview(self.buf)

    def buffer_updated(self, nbytes):
        self.transport.write(bytes(self.buf[:nbytes]))


def port_of(server):
    return server.sockets[0].getsockname()[1]


async def close_server(server):
    server.close()
    await server.wait_closed()


async def tls_connection(loop, tls_contexts, server_protocol, client=None):
    """A TLS server of server_protocol on loopback and a client connected to
    it (a Recorder unless given): (server, transport, client)."""
    server_ctx, client_ctx = tls_contexts
    server = await loop.create_server(server_protocol, "127.0.0.1", 0, ssl=server_ctx)
    port = port_of(server)
    client = client or Recorder(loop)
    transport, _ = await loop.create_connection(
        lambda: client, "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost")
    return server, transport, client


async def close_stream(server, writer):
    writer.close()
    await writer.wait_closed()
    await close_server(server)


async def close_connection(server, transport, client):
    transport.close()
    await client.lost
    await close_server(server)


@pytest.mark.parametrize("server_kind", ["Protocol", "BufferedProtocol/bytearray",
                                         "BufferedProtocol/memoryview"])
def test_tls_echo_keeps_every_byte_of_every_size(loop, tls_contexts, server_kind):
    # Sizes around a record (16 KiB of plaintext) and many records at once.
    if server_kind.endswith("bytearray") and not helpers.is_loopx(loop):
        pytest.skip("asyncio's TLS layer reads the rest of a record into a copy "
                    "of a bytearray buffer (buf[offset:]), losing it")
    sizes = [1, 1000, 16383, 16384, 16385, 100_000, 1_000_000]
    if server_kind == "Protocol":
        factory = TLSEcho
    else:
        kind = bytearray if server_kind.endswith("bytearray") else memoryview
        factory = lambda: BufferedTLSEcho(4099, kind)   # less than a record

    async def main():
        server, transport, client = await tls_connection(loop, tls_contexts, factory)
        expected = b""
        for i, size in enumerate(sizes):
            chunk = helpers.pattern_bytes(size, seed=i)
            transport.write(chunk)
            expected += chunk
        transport.writelines([b"a", bytearray(b"bc"), memoryview(b"def")])
        expected += b"abcdef"
        await client.wait_for(lambda c: len(c.data()) >= len(expected))
        assert client.data() == expected
        await close_connection(server, transport, client)
        assert client.names()[0] == "connection_made"
        assert client.names()[-1] == "connection_lost"
        assert client.lost.result() is None
    helpers.run(loop, main())


def test_tls_data_then_close_arrives_whole_then_eof(loop, tls_contexts):
    payload = helpers.pattern_bytes(300_000, seed=3)

    class SendAndClose(asyncio.Protocol):
        def connection_made(self, transport):
            transport.write(payload[:10])
            transport.write(payload[10:])
            transport.close()   # close_notify right behind the data

    async def main():
        server, transport, client = await tls_connection(loop, tls_contexts, SendAndClose)
        assert await asyncio.wait_for(client.lost, helpers.SAFETY) is None
        assert client.data() == payload
        names = client.names()
        assert names[0] == "connection_made"
        assert names[-2:] == ["eof_received", "connection_lost"]
        assert set(names[1:-2]) == {"data_received"}
        await close_server(server)
    helpers.run(loop, main())


def test_tls_pause_reading_holds_data_and_the_close_until_resumed(loop, tls_contexts):
    payload = helpers.pattern_bytes(50_000, seed=4)
    server_closed = None

    class SendAndClose(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            assert data == b"go"
            self.transport.write(payload)
            # Its close_notify waits for ours, which waits for the client
            # to read again.
            self.transport.close()
            server_closed.set_result(None)

    async def main():
        nonlocal server_closed
        server_closed = loop.create_future()
        server, transport, client = await tls_connection(loop, tls_contexts, SendAndClose)
        transport.pause_reading()
        assert not transport.is_reading()
        transport.write(b"go")
        await asyncio.wait_for(server_closed, helpers.SAFETY)
        await asyncio.sleep(0.2)
        assert client.names() == ["connection_made"]   # held while paused
        transport.resume_reading()
        assert transport.is_reading()
        assert await asyncio.wait_for(client.lost, helpers.SAFETY) is None
        assert client.data() == payload
        assert client.names()[-2:] == ["eof_received", "connection_lost"]
        await close_server(server)
    helpers.run(loop, main())


def test_tls_write_flow_control_pauses_and_resumes_the_writer(loop, tls_contexts):
    # The TLS layer's buffer is what it could not hand to the plain transport
    # yet: it fills once the plain transport, its peer not reading, asks it
    # to pause.
    received = bytearray()
    sink = None

    class Sink(asyncio.Protocol):
        def connection_made(self, transport):
            nonlocal sink
            sink = self
            self.transport = transport
            transport.pause_reading()   # the peer does not read at first

        def data_received(self, data):
            received.extend(data)

    async def main():
        server, transport, client = await tls_connection(loop, tls_contexts, Sink)
        transport.set_write_buffer_limits(high=64 * 1024)
        assert transport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        sent = bytearray()
        while "pause_writing" not in client.names():
            assert len(sent) < 256 * 1024 * 1024, "the writer was never paused"
            chunk = helpers.pattern_bytes(64 * 1024, seed=len(sent))
            transport.write(chunk)
            sent += chunk
            await asyncio.sleep(0)
        assert transport.get_write_buffer_size() >= 64 * 1024
        sink.transport.resume_reading()
        await client.wait_for(lambda c: "resume_writing" in c.names())
        assert transport.get_write_buffer_size() <= 16 * 1024
        await helpers.async_wait_until(lambda: len(received) == len(sent))
        assert received == sent
        await close_connection(server, transport, client)
        flow = [name for name in client.names() if name.endswith("_writing")]
        assert flow[0] == "pause_writing"
        assert all(a != b for a, b in zip(flow, flow[1:]))   # they alternate
    helpers.run(loop, main())


def test_tls_transport_calls_after_close(loop, tls_contexts):
    async def main():
        server, transport, client = await tls_connection(loop, tls_contexts, TLSEcho)
        assert isinstance(transport, asyncio.Transport)
        # Code tells TLS connections apart by asyncio's private classes.
        assert isinstance(transport, asyncio.sslproto._SSLProtocolTransport)
        assert isinstance(transport._ssl_protocol, asyncio.sslproto.SSLProtocol)
        assert "ssl" in type(transport).__name__.lower()
        assert isinstance(transport.get_extra_info("sslcontext"), ssl.SSLContext)
        assert isinstance(transport.get_extra_info("ssl_object"), ssl.SSLObject)
        assert transport.get_extra_info("socket") is not None
        assert transport.get_extra_info("peername")[0] == "127.0.0.1"
        assert transport.get_extra_info("no such thing", 42) == 42
        assert not transport.can_write_eof()
        with pytest.raises(NotImplementedError):
            transport.write_eof()
        with pytest.raises(TypeError):
            transport.write("text")
        assert transport.get_protocol() is client
        transport.close()
        assert transport.is_closing()
        transport.write(b"late")          # dropped, as asyncio drops it
        assert await asyncio.wait_for(client.lost, helpers.SAFETY) is None
        transport.write(b"later")
        transport.abort()
        # A second close() lets go of the TLS layer (asyncio's does, and
        # code counts on it); closing or aborting again is still harmless.
        transport.close()
        transport.close()
        transport.abort()
        await asyncio.sleep(0)
        assert client.names().count("connection_lost") == 1
        await close_server(server)
    helpers.run(loop, main())


def test_tls_abort_drops_queued_data_and_calls_connection_lost_once(loop, tls_contexts):
    async def main():
        server, transport, client = await tls_connection(loop, tls_contexts, TLSEcho)
        transport.write(b"x" * 4_000_000)
        transport.abort()
        assert transport.is_closing()
        assert await asyncio.wait_for(client.lost, helpers.SAFETY) is None
        await asyncio.sleep(0.01)
        assert client.names().count("connection_lost") == 1
        await close_server(server)
    helpers.run(loop, main())


@helpers.only("loopx")
def test_tls_writelines_refuses_a_non_bytes_item_before_sending_any(loop, tls_contexts):
    # asyncio's TLS transport takes the list, and the str then fails inside
    # the TLS layer: a fatal error that closes the connection.  loopx raises
    # at the call, as its plain transports do.
    async def main():
        server, transport, client = await tls_connection(loop, tls_contexts, TLSEcho)
        with pytest.raises(TypeError):
            transport.writelines([b"sent?", "text"])
        transport.write(b"ok")
        await client.wait_for(lambda c: len(c.data()) >= 2)
        assert client.data() == b"ok"
        await close_connection(server, transport, client)
    helpers.run(loop, main())


def test_tls_layers_are_freed_after_the_connection(loop, tls_contexts):
    async def main():
        server, transport, client = await tls_connection(loop, tls_contexts, TLSEcho)
        refs = [weakref.ref(transport), weakref.ref(transport.get_extra_info("ssl_object"))]
        transport.write(b"hello")
        await client.wait_for(lambda c: c.data() == b"hello")
        await close_connection(server, transport, client)
        return refs

    refs = helpers.run(loop, main())
    gc.collect()
    assert [ref() for ref in refs] == [None, None]


def test_tls_streams_with_a_small_reader_limit(loop, tls_contexts):
    # The reader pauses its (TLS) transport past twice its limit, and resumes
    # it as the application reads.
    server_ctx, client_ctx = tls_contexts
    payload = helpers.pattern_bytes(2_000_000, seed=6)

    async def main():
        async def handle(reader, writer):
            writer.write(payload)
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        port = port_of(server)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost", limit=100)
        got = bytearray()
        while len(got) < len(payload):
            got += await reader.readexactly(min(999, len(payload) - len(got)))
        assert got == payload
        assert await reader.read() == b""
        await close_stream(server, writer)
    helpers.run(loop, main())


def test_start_tls_over_a_tls_connection(loop, tls_contexts):
    # TLS inside TLS: the inner layer's transport is the outer TLS transport.
    server_ctx, client_ctx = tls_contexts
    payload = helpers.pattern_bytes(200_000, seed=8)

    async def main():
        async def handle(reader, writer):
            assert await reader.readline() == b"STARTTLS\n"
            writer.write(b"OK\n")
            await writer.drain()
            await writer.start_tls(server_ctx)
            data = await reader.readexactly(len(payload))
            writer.write(hashlib.sha256(data).digest())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        port = port_of(server)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost")
        outer = writer.transport
        writer.write(b"STARTTLS\n")
        assert await reader.readline() == b"OK\n"
        await writer.start_tls(client_ctx, server_hostname="localhost")
        assert writer.transport is not outer
        assert writer.get_extra_info("ssl_object") is not outer.get_extra_info("ssl_object")
        writer.write(payload)
        assert await reader.readexactly(32) == hashlib.sha256(payload).digest()
        await close_stream(server, writer)
    helpers.run(loop, main())


def test_start_tls_refuses_bad_arguments(loop, tls_contexts):
    _, client_ctx = tls_contexts

    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = port_of(server)
        transport, proto = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        with pytest.raises(TypeError):
            await loop.start_tls(transport, proto, "not a context")
        read_transport, _ = await loop.connect_read_pipe(asyncio.Protocol, open(os.devnull, "rb"))
        with pytest.raises(TypeError):
            await loop.start_tls(read_transport, proto, client_ctx)
        read_transport.close()
        transport.close()
        await close_server(server)
    helpers.run(loop, main())


def test_tls_round_trip_and_extra_info(loop, tls_contexts):
    server_ctx, client_ctx = tls_contexts

    async def main():
        async def handle(reader, writer):
            size = int(await reader.readline())
            data = await reader.readexactly(size)
            writer.write(hashlib.sha256(data).hexdigest().encode())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        port = port_of(server)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost")
        assert writer.get_extra_info("ssl_object") is not None
        assert writer.get_extra_info("cipher") is not None
        assert writer.get_extra_info("peercert")["subjectAltName"] == (("DNS", "localhost"),)
        payload = os.urandom(1_500_000)
        writer.write(b"%d\n" % len(payload) + payload)
        assert await reader.read() == hashlib.sha256(payload).hexdigest().encode()
        await close_stream(server, writer)
    helpers.run(loop, main())


class Garbage(asyncio.Protocol):
    def connection_made(self, transport):
        transport.write(b"this is not TLS at all\r\n" * 100)
        transport.close()


@pytest.mark.parametrize("case, server_tls, server_protocol, connect_args, error", [
    ("wrong hostname", True, asyncio.Protocol, {"server_hostname": "not-localhost"},
     ssl.SSLCertVerificationError),
    ("peer speaks garbage", False, Garbage, {}, (ssl.SSLError, ConnectionResetError)),
    ("peer never answers", False, asyncio.Protocol, {"ssl_handshake_timeout": 0.2},
     ConnectionAbortedError),
])
def test_tls_handshake_failures_raise(loop, tls_contexts, case, server_tls, server_protocol,
                                      connect_args, error):
    server_ctx, client_ctx = tls_contexts

    async def main():
        server = await loop.create_server(server_protocol, "127.0.0.1", 0,
                                          ssl=server_ctx if server_tls else None)
        port = port_of(server)
        with pytest.raises(error):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", port, ssl=client_ctx,
                                         **{"server_hostname": "localhost", **connect_args})
        await close_server(server)
    helpers.run(loop, main())


def test_start_tls_upgrades_a_plain_connection(loop, tls_contexts):
    server_ctx, client_ctx = tls_contexts

    async def main():
        async def handle(reader, writer):
            assert await reader.readline() == b"STARTTLS\n"
            writer.write(b"OK\n")
            await writer.drain()
            await writer.start_tls(server_ctx)
            writer.write((await reader.readline()).upper())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = port_of(server)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"STARTTLS\n")
        assert await reader.readline() == b"OK\n"
        await writer.start_tls(client_ctx, server_hostname="localhost")
        assert writer.get_extra_info("ssl_object") is not None
        writer.write(b"secret\n")
        assert await reader.readline() == b"SECRET\n"
        await close_stream(server, writer)
    helpers.run(loop, main())


def test_sendfile_over_tls_uses_the_fallback(loop, tls_contexts, tmp_path):
    server_ctx, client_ctx = tls_contexts
    data = helpers.pattern_bytes(300_000, seed=12)
    path = tmp_path / "blob"
    path.write_bytes(data)

    async def main():
        got = loop.create_future()

        async def handle(reader, writer):
            got.set_result(await reader.readexactly(len(data)))
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        port = port_of(server)
        transport, proto = await loop.create_connection(
            lambda: Recorder(loop), "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost")
        with open(path, "rb") as f:
            assert await loop.sendfile(transport, f) == len(data)
        assert await asyncio.wait_for(got, helpers.SAFETY) == data
        await close_connection(server, transport, proto)
    helpers.run(loop, main())


@helpers.only("loopx")
def test_tls_new_limits_after_the_connection_is_lost_call_nothing(loop, tls_contexts):
    # asyncio's TLS transport calls pause_writing() on the protocol it has
    # let go of (None) and reports the AttributeError to the exception
    # handler; set_read_buffer_limits() raises it.
    async def main():
        errors = helpers.collect_errors(loop)
        server, transport, client = await tls_connection(loop, tls_contexts, TLSEcho)
        await close_connection(server, transport, client)
        transport.set_write_buffer_limits(high=0)
        transport.set_read_buffer_limits(high=0)
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(high=1, low=2)
        await asyncio.sleep(0)
        assert errors == []
        assert client.names().count("pause_writing") == 0
    helpers.run(loop, main())
