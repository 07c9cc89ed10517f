"""Accepting connections on a server: what each accepted socket and
transport look like, bursts, a listener loopx must not accept for natively,
and running out of fds.

loopx accepts TCP connections with its own accept4() (stream.pxi,
_StreamServing._accept_native) and serves a plain one from its fd, making the
socket object only when asked (SocketTransport._owns_fd); these tests hold it
to what socket.accept() gives asyncio's loop, before and after the close.
Every test runs on both loops, with real sockets.
"""
import asyncio
import errno
import gc
import os
import socket
import sys

import pytest

import helpers


class Accepted(asyncio.Protocol):
    """Server side: records each accepted transport, echoes, closes on EOF."""

    def __init__(self, log):
        self.log = log

    def connection_made(self, transport):
        self.transport = transport
        self.log.append(transport)

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        self.transport.close()


def _has_ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


FAMILIES = [
    pytest.param(socket.AF_INET, "127.0.0.1", id="ipv4"),
    pytest.param(socket.AF_INET6, "::1", id="ipv6", marks=pytest.mark.skipif(
        not _has_ipv6_loopback(), reason="no IPv6 loopback on this machine")),
]


async def _echo_once(loop, sock, payload):
    await loop.sock_sendall(sock, payload)
    got = b""
    while len(got) < len(payload):
        chunk = await loop.sock_recv(sock, 65536)
        assert chunk, "the server closed early"
        got += chunk
    return got


@pytest.mark.parametrize("family, host", FAMILIES)
def test_accepted_socket_and_extra_info_match_socket_accept(loop, family, host):
    async def main():
        log = []
        server = await loop.create_server(lambda: Accepted(log), host, 0, family=family)
        addr = server.sockets[0].getsockname()
        clients = []
        for i in range(5):
            c = socket.socket(family)
            c.setblocking(False)
            await loop.sock_connect(c, addr)
            assert await _echo_once(loop, c, b"ping %d" % i) == b"ping %d" % i
            clients.append(c)
        assert len(log) == 5
        for c, transport in zip(clients, log):
            peer = transport.get_extra_info("peername")
            # Exactly the socket module's form: a tuple of the same types.
            assert type(peer) is tuple
            assert peer == c.getsockname()
            assert [type(x) for x in peer] == [type(x) for x in c.getsockname()]
            sock = transport.get_extra_info("socket")
            assert sock.getpeername() == peer
            assert transport.get_extra_info("sockname") == sock.getsockname() == c.getpeername()
            assert sock.family == family and isinstance(sock.family, socket.AddressFamily)
            assert sock.type == socket.SOCK_STREAM and isinstance(sock.type, socket.SocketKind)
            assert sock.proto == server.sockets[0].proto
            assert not os.get_blocking(sock.fileno())
            assert not os.get_inheritable(sock.fileno())
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        for c in clients:
            c.close()
        server.close()
        await server.wait_closed()
    helpers.run(loop, main())


UNIX_CLIENTS = [
    pytest.param("unnamed", id="unnamed"),
    pytest.param("path", id="path"),
    pytest.param("abstract", id="abstract", marks=pytest.mark.skipif(
        not sys.platform.startswith("linux"), reason="the abstract namespace is Linux's")),
]


@helpers.windows_skip("create_unix_server: AF_UNIX")
@pytest.mark.parametrize("client_kind", UNIX_CLIENTS)
def test_accepted_unix_connection_matches_socket_accept(loop, tmp_path, client_kind):
    path = str(tmp_path / "srv.sock")

    async def main():
        log = []
        server = await loop.create_unix_server(lambda: Accepted(log), path)
        c = socket.socket(socket.AF_UNIX)
        if client_kind == "path":
            c.bind(str(tmp_path / "client-\u00e9.sock"))   # a non-ASCII name, too
        elif client_kind == "abstract":
            c.bind(b"\0loopx-test-" + os.urandom(6).hex().encode())
        c.setblocking(False)
        await loop.sock_connect(c, path)
        assert await _echo_once(loop, c, b"unix") == b"unix"
        transport, = log
        peer = transport.get_extra_info("peername")
        assert peer == c.getsockname() and type(peer) is type(c.getsockname())
        if client_kind == "unnamed":
            assert peer == ""
        sock = transport.get_extra_info("socket")
        assert sock.getpeername() == peer
        assert transport.get_extra_info("sockname") == path
        assert sock.family == socket.AF_UNIX and sock.type == socket.SOCK_STREAM
        assert not os.get_blocking(sock.fileno())
        assert not os.get_inheritable(sock.fileno())
        c.close()
        server.close()
        await server.wait_closed()
    helpers.run(loop, main())


def test_a_burst_of_connections_is_accepted_without_errors(loop):
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

    async def main():
        log = []
        server = await loop.create_server(lambda: Accepted(log), "127.0.0.1", 0, backlog=100)
        addr = server.sockets[0].getsockname()
        # All connected (by the kernel) before the loop accepts any: one
        # readiness finds the whole queue, then a would-block.
        clients = [socket.create_connection(addr) for _ in range(40)]
        for c in clients:
            c.setblocking(False)
        replies = await asyncio.gather(*(_echo_once(loop, c, b"%d" % i)
                                         for i, c in enumerate(clients)))
        assert replies == [b"%d" % i for i in range(40)]
        assert len(log) == 40
        assert len({t.get_extra_info("peername") for t in log}) == 40
        for c in clients:
            c.close()
        server.close()
        await server.wait_closed()
    helpers.run(loop, main())
    assert errors == []


class CountingSocket(socket.socket):
    accepts = 0

    def accept(self):
        type(self).accepts += 1
        return super().accept()


@helpers.windows_skip("the proactor accepts with AcceptEx, never socket.accept()")
def test_a_socket_subclass_listener_is_accepted_through_its_accept(loop):
    async def main():
        listener = CountingSocket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        log = []
        server = await loop.create_server(lambda: Accepted(log), sock=listener)
        c = socket.socket()
        c.setblocking(False)
        await loop.sock_connect(c, listener.getsockname())
        assert await _echo_once(loop, c, b"sub") == b"sub"
        assert CountingSocket.accepts >= 1
        assert log[0].get_extra_info("peername") == c.getsockname()
        assert not os.get_blocking(log[0].get_extra_info("socket").fileno())
        c.close()
        server.close()
        await server.wait_closed()
    CountingSocket.accepts = 0
    helpers.run(loop, main())


@helpers.windows_skip("the proactor accepts with AcceptEx, never socket.accept()")
def test_a_patched_socket_accept_is_honoured(loop, monkeypatch):
    calls = []
    original = socket.socket.accept

    def spy(self):
        calls.append(self)
        return original(self)

    async def main():
        log = []
        server = await loop.create_server(lambda: Accepted(log), "127.0.0.1", 0)
        monkeypatch.setattr(socket.socket, "accept", spy)
        c = socket.socket()
        c.setblocking(False)
        await loop.sock_connect(c, server.sockets[0].getsockname())
        assert await _echo_once(loop, c, b"spy") == b"spy"
        assert calls and calls[0].fileno() == server.sockets[0].fileno()
        c.close()
        server.close()
        await server.wait_closed()
    helpers.run(loop, main())


@helpers.windows_skip("RLIMIT_NOFILE is POSIX")
def test_running_out_of_fds_pauses_accepting_then_recovers(loop):
    resource = pytest.importorskip("resource")
    reported = []

    def handler(lp, ctx):
        reported.append(ctx)

    async def main():
        loop.set_exception_handler(handler)
        log = []
        server = await loop.create_server(lambda: Accepted(log), "127.0.0.1", 0)
        addr = server.sockets[0].getsockname()
        client = socket.socket()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        fillers = []
        try:
            # The client connects (the kernel completes it) while the
            # process has no fd left for the accepted socket.
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
            try:
                while True:
                    fillers.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as exc:
                assert exc.errno == errno.EMFILE
            client.connect(addr)
            deadline = loop.time() + helpers.PROMPT
            while not reported and loop.time() < deadline:
                await asyncio.sleep(0.01)
        finally:
            for fd in fillers:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert reported, "EMFILE was not reported"
        assert reported[0]["message"] == "socket.accept() out of system resource"
        assert reported[0]["exception"].errno == errno.EMFILE
        assert log == []
        # asyncio retries after ACCEPT_RETRY_DELAY (1 s); the queued client is
        # then served.
        client.setblocking(False)
        got = await asyncio.wait_for(_echo_once(loop, client, b"later"), helpers.PROMPT)
        assert got == b"later"
        client.close()
        server.close()
        await server.wait_closed()
    helpers.run(loop, main())


async def _accept_one(loop, server_factory, connect_addr, family=socket.AF_INET):
    """Connect a plain client; return it and the server's transport."""
    log = []
    server = await server_factory(lambda: Accepted(log))
    c = socket.socket(family)
    c.setblocking(False)
    await loop.sock_connect(c, connect_addr(server))
    await helpers.async_wait_until(lambda: log)
    return server, c, log[0]


@pytest.mark.parametrize("ask_first", ["nothing", "sockname", "socket"])
def test_accepted_transport_answers_after_close_as_before(loop, ask_first):
    # loopx serves an accepted connection from its fd and makes the socket
    # object only when asked: after the close the answers must still be
    # asyncio's (its closed socket, the addresses it had).
    async def main():
        server, c, transport = await _accept_one(
            loop, lambda f: loop.create_server(f, "127.0.0.1", 0),
            lambda s: s.sockets[0].getsockname())
        before = None
        if ask_first == "sockname":
            assert transport.get_extra_info("sockname") == c.getpeername()
        elif ask_first == "socket":
            before = transport.get_extra_info("socket")
            assert before.fileno() >= 0 and before.getpeername() == c.getsockname()
        transport.close()
        assert await loop.sock_recv(c, 10) == b""   # closed: the client sees EOF
        await helpers.async_wait_until(transport.is_closing)
        await asyncio.sleep(0)   # connection_lost runs
        assert transport.get_extra_info("sockname") == c.getpeername()
        assert transport.get_extra_info("peername") == c.getsockname()
        sock = transport.get_extra_info("socket")
        assert sock is transport.get_extra_info("socket")
        assert before is None or sock is before
        assert sock.fileno() == -1
        assert sock.family == socket.AF_INET and sock.type == socket.SOCK_STREAM
        assert "closed" in repr(transport)
        c.close()
        server.close()
        await server.wait_closed()
    helpers.run(loop, main())


@helpers.windows_skip("create_unix_server: AF_UNIX")
def test_accepted_unix_transport_answers_after_close(loop, tmp_path):
    path = str(tmp_path / "srv.sock")

    async def main():
        server, c, transport = await _accept_one(
            loop, lambda f: loop.create_unix_server(f, path), lambda s: path, socket.AF_UNIX)
        transport.close()
        assert await loop.sock_recv(c, 10) == b""
        await asyncio.sleep(0)
        assert transport.get_extra_info("sockname") == path
        assert transport.get_extra_info("peername") == ""
        sock = transport.get_extra_info("socket")
        assert sock.fileno() == -1 and sock.family == socket.AF_UNIX
        c.close()
        server.close()
        await server.wait_closed()
    helpers.run(loop, main())


def test_accepted_transport_write_eof_and_sendfile(loop, tmp_path):
    data = helpers.pattern_bytes(300_000, seed=11)
    path = tmp_path / "blob"
    path.write_bytes(data)

    async def main():
        server, c, transport = await _accept_one(
            loop, lambda f: loop.create_server(f, "127.0.0.1", 0),
            lambda s: s.sockets[0].getsockname())
        with open(path, "rb") as f:
            assert await loop.sendfile(transport, f) == len(data)
        transport.write(b"tail")
        transport.write_eof()
        got = bytearray()
        while chunk := await loop.sock_recv(c, 65536):
            got += chunk
        assert got == data + b"tail"
        c.close()   # the server's protocol closes on EOF
        server.close()
        await server.wait_closed()
    helpers.run(loop, main())


class _Forgetful(asyncio.Protocol):
    """Server side: pauses reading and keeps no reference to its transport."""

    def connection_made(self, transport):
        transport.pause_reading()


def test_an_accepted_transport_dropped_unclosed_warns_and_closes(loop):
    async def main():
        server = await loop.create_server(_Forgetful, "127.0.0.1", 0)
        c = socket.socket()
        c.setblocking(False)
        with pytest.warns(ResourceWarning, match="unclosed transport"):
            await loop.sock_connect(c, server.sockets[0].getsockname())
            for _ in range(5):   # the transport goes once the loop's calls drop it
                await asyncio.sleep(0)
                gc.collect()
        assert await asyncio.wait_for(loop.sock_recv(c, 10), helpers.SAFETY) == b""
        c.close()
        server.close()
    helpers.run(loop, main())


@helpers.only("loopx")
def test_a_protocol_factory_that_raises_closes_the_connection(loop):
    """asyncio leaves the accepted socket to the garbage collector (its
    _accept_connection2 reports the error and drops the socket unclosed), so
    when the client sees EOF depends on when that runs; loopx closes it."""
    calls = []

    def factory():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("no protocol for you")
        return Accepted([])

    async def main():
        server = await loop.create_server(factory, "127.0.0.1", 0)
        addr = server.sockets[0].getsockname()
        first = socket.socket()
        first.setblocking(False)
        await loop.sock_connect(first, addr)
        assert await asyncio.wait_for(loop.sock_recv(first, 10), helpers.SAFETY) == b""
        first.close()
        second = socket.socket()   # the server goes on accepting
        second.setblocking(False)
        await loop.sock_connect(second, addr)
        assert await _echo_once(loop, second, b"still here") == b"still here"
        second.close()
        server.close()
        await server.wait_closed()
    helpers.run(loop, main())


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="only Linux routes all of 127.0.0.0/8 to loopback")
def test_peer_addresses_with_every_octet_width(loop):
    # loopx formats IPv4 addresses itself (sockaddr.pxi, _format_ipv4).
    sources = ["127.0.0.1", "127.0.0.10", "127.0.99.0", "127.1.23.200",
               "127.255.100.9", "127.10.0.255"]

    async def main():
        log = []
        server = await loop.create_server(lambda: Accepted(log), "0.0.0.0", 0)
        port = server.sockets[0].getsockname()[1]
        for source in sources:
            with socket.socket() as c:
                c.bind((source, 0))
                c.setblocking(False)
                await loop.sock_connect(c, ("127.0.0.1", port))
                assert await _echo_once(loop, c, b"hi") == b"hi"
                assert log[-1].get_extra_info("peername") == c.getsockname()
        server.close()
        await server.wait_closed()
    helpers.run(loop, main())
