"""Accepting connections on a server: what each accepted socket and
transport look like, bursts, a listener loopx must not accept for natively,
and running out of fds.

loopx accepts TCP connections with its own accept4() (stream.pxi,
_StreamServing._accept_native); these tests hold it to what socket.accept()
gives asyncio's loop.  Every test runs on both loops, with real sockets.
"""
import asyncio
import errno
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
