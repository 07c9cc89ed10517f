"""Datagram endpoints (loop.create_datagram_endpoint) and their transports.

Every test runs on asyncio's selector loop and on loopx (see
conftest.py's loop).  UDP on the loopback interface never makes a sender
wait (the kernel hands each datagram straight to the receiver), so the tests
that need a full send buffer use Unix datagram sockets, which block the sender
while the receiver's queue is full; the transport code under test is the same.
"""
import asyncio
import gc
import os
import random
import shutil
import socket
import sys
import tempfile
import warnings

import pytest

import helpers
from helpers import Recorder, collect_errors, is_loopx, pattern_bytes, run

PY313 = sys.version_info >= (3, 13)
# pause_reading() on datagram transports: 3.12, and late 3.11 patch releases.
CAN_PAUSE = "pause_reading" in asyncio.selector_events._SelectorTransport.__dict__


def _have_ipv6():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


requires_ipv6 = pytest.mark.skipif(not _have_ipv6(), reason="no IPv6: cannot bind a UDP socket to ::1")
HOSTS = ["127.0.0.1", pytest.param("::1", marks=requires_ipv6)]
# The biggest UDP payload: 65535 minus the IP and UDP headers (IPv6's header
# does not count against its payload length).
MAX_PAYLOAD = {"127.0.0.1": 65507, "::1": 65527}


class Echo(Recorder):
    """Sends every datagram back where it came from."""

    def datagram_received(self, data, addr):
        super().datagram_received(data, addr)
        self.transport.sendto(data, addr)


async def endpoint(loop, protocol=Recorder, **kwargs):
    return await loop.create_datagram_endpoint(lambda: protocol(loop), **kwargs)


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def closed_port(host):
    """A UDP port on host that nothing listens on (bound, then released)."""
    with socket.socket(family_of(host), socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@pytest.fixture
def unix_dir():
    if helpers.WINDOWS:
        pytest.skip("not on Windows: AF_UNIX datagram sockets")
    # Short: a Unix socket path must fit in 108 bytes.
    path = tempfile.mkdtemp(prefix="lx-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def close_all(*pairs):
    for transport, protocol in pairs:
        transport.close()
    for transport, protocol in pairs:
        assert await protocol.lost is None


# -- round trips --------------------------------------------------------------


@pytest.mark.parametrize("host", HOSTS)
def test_round_trip_between_unconnected_endpoints(loop, host):
    async def main():
        server = await endpoint(loop, Echo, local_addr=(host, 0))
        client = await endpoint(loop, local_addr=(host, 0))
        server_addr = server[0].get_extra_info("sockname")
        client_addr = client[0].get_extra_info("sockname")
        sizes = [1, 2, 100, 1400, 9000, 65000, MAX_PAYLOAD[host]]
        payloads = [pattern_bytes(size, i) for i, size in enumerate(sizes)]
        for count, payload in enumerate(payloads, 1):
            client[0].sendto(payload, server_addr)
            await client[1].wait_for(lambda p: len(p.datagrams()) == count)
        assert [data for data, _ in client[1].datagrams()] == payloads
        assert all(addr == server_addr for _, addr in client[1].datagrams())
        assert [data for data, _ in server[1].datagrams()] == payloads
        assert all(addr == client_addr for _, addr in server[1].datagrams())
        assert all(type(data) is bytes for data, _ in server[1].datagrams())
        await close_all(server, client)
        assert client[1].names()[0] == "connection_made"
        assert client[1].names()[-1] == "connection_lost"

    run(loop, main())


@pytest.mark.parametrize("host", HOSTS)
def test_many_round_trips_keep_every_byte(loop, host):
    async def main():
        server = await endpoint(loop, Echo, local_addr=(host, 0))
        client = await endpoint(loop, remote_addr=server[0].get_extra_info("sockname")[:2])
        for i in range(500):
            payload = pattern_bytes(1 + i * 7 % 1500, i)
            client[0].sendto(payload)
            await client[1].wait_for(lambda p: len(p.datagrams()) == i + 1)
            assert client[1].datagrams()[-1][0] == payload
        await close_all(server, client)

    run(loop, main())


@pytest.mark.parametrize("host", HOSTS)
def test_one_endpoint_talks_to_several_peers(loop, host):
    # Addresses are remembered per peer: replies must go to the right one,
    # and each datagram must report its own sender.
    async def main():
        hub = await endpoint(loop, Echo, local_addr=(host, 0))
        hub_addr = hub[0].get_extra_info("sockname")
        # More peers than loopx caches addresses for (256): slots get
        # shared, and peers sharing one evict each other.
        peers = [await endpoint(loop, local_addr=(host, 0)) for _ in range(300)]
        for round_ in range(3):
            # In waves small enough for the hub's receive buffer (UDP drops
            # what does not fit), in a new order each round.
            order = random.Random(round_).sample(range(len(peers)), len(peers))
            for start in range(0, len(order), 25):
                wave = order[start:start + 25]
                for i in wave:
                    peers[i][0].sendto(b"%d:%d" % (i, round_), hub_addr)
                for i in wave:
                    protocol = peers[i][1]
                    await protocol.wait_for(lambda p: len(p.datagrams()) == round_ + 1)
                    assert protocol.datagrams()[-1] == (b"%d:%d" % (i, round_), hub_addr)
        senders = {addr for _, addr in hub[1].datagrams()}
        assert senders == {t.get_extra_info("sockname") for t, _ in peers}
        for data, addr in hub[1].datagrams():
            index = int(data.split(b":")[0])
            assert addr == peers[index][0].get_extra_info("sockname")
        await close_all(hub, *peers)

    run(loop, main())


def test_address_given_as_4_tuple_and_as_host_name(loop):
    async def main():
        server = await endpoint(loop, Echo, local_addr=("127.0.0.1", 0))
        port = server[0].get_extra_info("sockname")[1]
        client = await endpoint(loop, local_addr=("127.0.0.1", 0))
        # A name goes through the socket module's own resolution.
        client[0].sendto(b"by name", ("localhost", port))
        await server[1].wait_for(lambda p: len(p.datagrams()) == 1)
        client[0].sendto(b"by number", ("127.0.0.1", port))
        await server[1].wait_for(lambda p: len(p.datagrams()) == 2)
        assert [d for d, _ in server[1].datagrams()] == [b"by name", b"by number"]
        await close_all(server, client)

    run(loop, main())


@requires_ipv6
def test_numeric_address_after_a_host_name_is_still_converted(loop):
    # A host name is not converted natively; trying must not spoil the
    # conversion loopx remembers for the numeric address sent before it.
    async def main():
        server = await endpoint(loop, local_addr=("127.0.0.1", 0))
        port = server[0].get_extra_info("sockname")[1]
        client = await endpoint(loop, local_addr=("127.0.0.1", 0))
        for i, host in enumerate(["127.0.0.1", "localhost", "127.0.0.1", "localhost", "127.0.0.1"]):
            client[0].sendto(b"%d" % i, (host, port))
        await server[1].wait_for(lambda p: len(p.datagrams()) == 5)
        assert sorted(d for d, _ in server[1].datagrams()) == [b"0", b"1", b"2", b"3", b"4"]
        assert "error_received" not in client[1].names()
        await close_all(server, client)

    run(loop, main())


def test_ipv6_address_with_flowinfo_and_scope_id(loop):
    async def main():
        server = await endpoint(loop, Echo, local_addr=("::1", 0))
        port = server[0].get_extra_info("sockname")[1]
        client = await endpoint(loop, local_addr=("::1", 0))
        for i, addr in enumerate([("::1", port), ("::1", port, 0), ("::1", port, 0, 0)]):
            client[0].sendto(b"%d" % i, addr)
            await client[1].wait_for(lambda p: len(p.datagrams()) == i + 1)
        assert [d for d, _ in client[1].datagrams()] == [b"0", b"1", b"2"]
        assert client[1].datagrams()[0][1] == ("::1", port, 0, 0)
        await close_all(server, client)

    run(loop, main())


def test_bytearray_and_memoryview_data_are_copied_when_queued_or_sent(loop):
    async def main():
        server = await endpoint(loop, local_addr=("127.0.0.1", 0))
        addr = server[0].get_extra_info("sockname")
        client = await endpoint(loop, local_addr=("127.0.0.1", 0))
        buf = bytearray(b"abcdef")
        client[0].sendto(buf, addr)
        buf[:] = b"XXXXXX"
        client[0].sendto(memoryview(b"0123456789")[2:5], addr)
        await server[1].wait_for(lambda p: len(p.datagrams()) == 2)
        assert [d for d, _ in server[1].datagrams()] == [b"abcdef", b"234"]
        await close_all(server, client)

    run(loop, main())


def test_empty_datagram_follows_the_running_python(loop):
    # 3.13 sends empty datagrams (gh-113812); earlier versions drop them.
    async def main():
        server = await endpoint(loop, local_addr=("127.0.0.1", 0))
        client = await endpoint(loop, remote_addr=server[0].get_extra_info("sockname"))
        client[0].sendto(b"")
        client[0].sendto(b"end")
        await server[1].wait_for(lambda p: any(d == b"end" for d, _ in p.datagrams()))
        expected = [b"", b"end"] if PY313 else [b"end"]
        assert [d for d, _ in server[1].datagrams()] == expected
        await close_all(server, client)

    run(loop, main())


# -- Unix datagram sockets ----------------------------------------------------


def test_unix_datagram_round_trip(loop, unix_dir):
    server_path = os.path.join(unix_dir, "s")
    client_path = os.path.join(unix_dir, "c")

    async def main():
        server = await endpoint(loop, Echo, family=socket.AF_UNIX, local_addr=server_path)
        client = await endpoint(loop, family=socket.AF_UNIX, local_addr=client_path,
                                remote_addr=server_path)
        assert client[0].get_extra_info("peername") == server_path
        assert client[0].get_extra_info("sockname") == client_path
        payloads = [pattern_bytes(n, n) for n in (1, 1000, 100000)]
        for count, payload in enumerate(payloads, 1):
            client[0].sendto(payload)
            await client[1].wait_for(lambda p: len(p.datagrams()) == count)
        assert client[1].datagrams() == [(p, server_path) for p in payloads]
        assert server[1].datagrams() == [(p, client_path) for p in payloads]
        await close_all(server, client)

    run(loop, main())


def test_unix_datagram_stale_socket_file_is_replaced(loop, unix_dir):
    path = os.path.join(unix_dir, "stale")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as old:
        old.bind(path)
    assert os.path.exists(path)

    async def main():
        server = await endpoint(loop, family=socket.AF_UNIX, local_addr=path)
        assert server[0].get_extra_info("sockname") == path
        await close_all(server)

    run(loop, main())


# -- connected endpoints (remote_addr) ----------------------------------------


@pytest.mark.parametrize("host", HOSTS)
def test_connected_endpoint_checks_the_address(loop, host):
    async def main():
        server = await endpoint(loop, Echo, local_addr=(host, 0))
        server_addr = server[0].get_extra_info("sockname")
        client = await endpoint(loop, remote_addr=server_addr[:2])
        peer = client[0].get_extra_info("peername")
        assert peer == server_addr
        client[0].sendto(b"one")
        client[0].sendto(b"two", peer)
        with pytest.raises(ValueError, match="Invalid address"):
            client[0].sendto(b"three", (host, server_addr[1] + 1))
        await client[1].wait_for(lambda p: len(p.datagrams()) == 2)
        assert client[1].datagrams() == [(b"one", server_addr), (b"two", server_addr)]
        await close_all(server, client)

    run(loop, main())


@pytest.mark.parametrize("host", HOSTS)
def test_icmp_port_unreachable_goes_to_error_received(loop, host):
    async def main():
        client = await endpoint(loop, remote_addr=(host, closed_port(host)))
        client[0].sendto(b"anyone?")
        await client[1].wait_for(lambda p: "error_received" in p.names())
        (exc,) = [args[0] for name, args in client[1].events if name == "error_received"]
        assert isinstance(exc, ConnectionRefusedError)
        # One datagram failed; the endpoint itself stays usable.
        assert not client[0].is_closing()
        assert not client[1].lost.done()
        await close_all(client)

    run(loop, main())


def test_sendto_after_close_is_dropped_silently(loop):
    async def main():
        server = await endpoint(loop, local_addr=("127.0.0.1", 0))
        client = await endpoint(loop, remote_addr=server[0].get_extra_info("sockname"))
        client[0].close()
        client[0].sendto(b"late")  # no exception, nothing sent
        assert await client[1].lost is None
        client[0].sendto(b"later")
        await asyncio.sleep(0.05)
        assert server[1].datagrams() == []
        await close_all(server)

    run(loop, main())


# -- options: sock=, reuse_port, allow_broadcast -------------------------------


def test_sock_argument_is_used_and_closed_with_the_transport(loop):
    async def main():
        server = await endpoint(loop, local_addr=("127.0.0.1", 0))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        transport, protocol = await endpoint(loop, sock=sock)
        assert sock.gettimeout() == 0  # made non-blocking
        assert transport.get_extra_info("socket").fileno() == sock.fileno()
        assert transport.get_extra_info("sockname") == sock.getsockname()
        assert transport.get_extra_info("peername") is None
        transport.sendto(b"via sock", server[0].get_extra_info("sockname"))
        await server[1].wait_for(lambda p: len(p.datagrams()) == 1)
        assert server[1].datagrams() == [(b"via sock", sock.getsockname())]
        await close_all(server, (transport, protocol))
        assert sock.fileno() == -1

    run(loop, main())


def test_sock_argument_errors(loop):
    async def main():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as stream:
            # 3.13 says "datagram socket" where 3.11 said "UDP Socket".
            with pytest.raises(ValueError, match="(?i)socket was expected"):
                await endpoint(loop, sock=stream)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dgram:
            with pytest.raises(ValueError, match="socket modifier keyword arguments"):
                await endpoint(loop, sock=dgram, local_addr=("127.0.0.1", 0))

    run(loop, main())


def test_argument_errors(loop):
    async def main():
        with pytest.raises(ValueError, match="unexpected address family"):
            await endpoint(loop)
        with pytest.raises(TypeError, match="2-tuple is expected"):
            await endpoint(loop, local_addr="127.0.0.1")
        if hasattr(socket, "AF_UNIX"):
            with pytest.raises(TypeError, match="string is expected"):
                await endpoint(loop, family=socket.AF_UNIX, local_addr=("x", 1))

    run(loop, main())


def test_endpoint_without_addresses_by_family(loop):
    async def main():
        transport, protocol = await endpoint(loop, family=socket.AF_INET)
        assert transport.get_extra_info("socket").family == socket.AF_INET
        await close_all((transport, protocol))

    run(loop, main())


def test_reuse_port(loop):
    async def main():
        first = await endpoint(loop, local_addr=("127.0.0.1", 0), reuse_port=True)
        addr = first[0].get_extra_info("sockname")
        second = await endpoint(loop, local_addr=addr, reuse_port=True)
        assert second[0].get_extra_info("sockname") == addr
        for transport, _ in (first, second):
            sock = transport.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0
        await close_all(first, second)
        # Without reuse_port the address is taken.
        third = await endpoint(loop, local_addr=("127.0.0.1", 0))
        with pytest.raises(OSError):
            await endpoint(loop, local_addr=third[0].get_extra_info("sockname"))
        await close_all(third)

    run(loop, main())


def test_allow_broadcast(loop):
    async def main():
        server = await endpoint(loop, local_addr=("127.0.0.1", 0))
        server_addr = server[0].get_extra_info("sockname")
        client = await endpoint(loop, remote_addr=server_addr, allow_broadcast=True)
        sock = client[0].get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) != 0
        # With allow_broadcast the socket is not connected; sendto() without
        # an address still goes to remote_addr.
        assert client[0].get_extra_info("peername") is None
        client[0].sendto(b"hello")
        await server[1].wait_for(lambda p: len(p.datagrams()) == 1)
        assert server[1].datagrams()[0][0] == b"hello"
        with pytest.raises(ValueError):
            client[0].sendto(b"elsewhere", ("127.0.0.1", server_addr[1] + 1))
        await close_all(server, client)

    run(loop, main())


# -- flow control and closing with queued datagrams ----------------------------


async def blocked_unix_pair(loop, unix_dir, protocol=Recorder):
    """A sender endpoint connected to a Unix datagram socket nobody reads
    yet, with the smallest send buffer: the sender queues almost at once."""
    path = os.path.join(unix_dir, "sink")
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(path)
    sink.setblocking(False)
    transport, proto = await endpoint(loop, protocol, family=socket.AF_UNIX, remote_addr=path)
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
    return sink, transport, proto


async def fill(transport, size=1000, limit=10000):
    """sendto() until something is queued; returns what was sent."""
    sent = []
    while transport.get_write_buffer_size() == 0:
        assert len(sent) < limit, "the send buffer never filled"
        sent.append(pattern_bytes(size, len(sent)))
        transport.sendto(sent[-1])
    return sent


async def drain(loop, sink, count):
    return [await loop.sock_recv(sink, 65536) for _ in range(count)]


def test_flow_control_pauses_and_resumes_writing(loop, unix_dir):
    async def main():
        sink, transport, protocol = await blocked_unix_pair(loop, unix_dir)
        with sink:
            transport.set_write_buffer_limits(high=8000, low=2000)
            assert transport.get_write_buffer_limits() == (2000, 8000)
            sent = await fill(transport)
            while "pause_writing" not in protocol.names():
                sent.append(pattern_bytes(1000, len(sent)))
                transport.sendto(sent[-1])
            (paused_at,) = [a[0] for n, a in protocol.events if n == "pause_writing"]
            assert paused_at > 8000
            assert transport.get_write_buffer_size() > 8000
            # Sending more while paused is still accepted (and queued).
            sent.append(b"while paused")
            transport.sendto(sent[-1])
            received = await drain(loop, sink, len(sent))
            assert received == sent
            await protocol.wait_for(lambda p: "resume_writing" in p.names())
            (resumed_at,) = [a[0] for n, a in protocol.events if n == "resume_writing"]
            assert resumed_at <= 2000
            if is_loopx(loop) or not PY313:
                # asyncio 3.13.0 .. 3.13.5 never takes the 8-byte header of a
                # queued datagram off again (gh-135444).
                assert transport.get_write_buffer_size() == 0
            await close_all((transport, protocol))

    run(loop, main())


def test_buffer_size_counts_the_datagram_header_from_3_13(loop, unix_dir):
    async def main():
        sink, transport, protocol = await blocked_unix_pair(loop, unix_dir)
        with sink:
            await fill(transport)
            before = transport.get_write_buffer_size()
            transport.sendto(b"x" * 100)
            assert transport.get_write_buffer_size() - before == (108 if PY313 else 100)
            transport.abort()
            await protocol.lost

    run(loop, main())


def test_set_write_buffer_limits(loop):
    async def main():
        transport, protocol = await endpoint(loop, local_addr=("127.0.0.1", 0))
        assert transport.get_write_buffer_limits() == (16384, 65536)
        transport.set_write_buffer_limits(high=1000)
        assert transport.get_write_buffer_limits() == (250, 1000)
        transport.set_write_buffer_limits(low=100)
        assert transport.get_write_buffer_limits() == (100, 400)
        with pytest.raises(ValueError, match="must be >="):
            transport.set_write_buffer_limits(high=1, low=2)
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(high=-1, low=-2)
        await close_all((transport, protocol))

    run(loop, main())


def test_pause_writing_failure_goes_to_the_exception_handler(loop, unix_dir):
    class BadPause(Recorder):
        def pause_writing(self):
            raise RuntimeError("pause failed")

    async def main():
        errors = collect_errors(loop)
        sink, transport, protocol = await blocked_unix_pair(loop, unix_dir, BadPause)
        with sink:
            transport.set_write_buffer_limits(high=0)
            await fill(transport)
            assert [e["message"] for e in errors] == ["protocol.pause_writing() failed"]
            assert isinstance(errors[0]["exception"], RuntimeError)
            assert errors[0]["transport"] is transport
            transport.abort()
            await protocol.lost

    run(loop, main())


def test_close_sends_queued_datagrams_first(loop, unix_dir):
    async def main():
        sink, transport, protocol = await blocked_unix_pair(loop, unix_dir)
        with sink:
            sent = await fill(transport)
            sent += [b"a", b"b", b"c"]
            for data in sent[-3:]:
                transport.sendto(data)
            transport.close()
            assert transport.is_closing()
            transport.close()  # idempotent
            await asyncio.sleep(0.02)
            assert not protocol.lost.done()  # still flushing
            received = await drain(loop, sink, len(sent))
            assert received == sent
            assert await protocol.lost is None
            assert protocol.names().count("connection_lost") == 1

    run(loop, main())


def test_abort_drops_queued_datagrams(loop, unix_dir):
    async def main():
        sink, transport, protocol = await blocked_unix_pair(loop, unix_dir)
        with sink:
            sent = await fill(transport)
            queued = transport.get_write_buffer_size()
            assert queued > 0
            transport.sendto(b"never sent")
            transport.abort()
            assert transport.is_closing()
            assert await protocol.lost is None
            received = []
            while True:
                try:
                    received.append(sink.recv(65536))
                except BlockingIOError:
                    break
            # Whatever the kernel took before the abort arrives; the queue
            # does not.
            assert received == sent[: len(received)]
            assert b"never sent" not in received
            transport.abort()
            transport.close()
            await asyncio.sleep(0.01)
            assert protocol.names().count("connection_lost") == 1

    run(loop, main())


def test_abort_after_close_with_queued_data_calls_connection_lost_once(loop, unix_dir):
    async def main():
        sink, transport, protocol = await blocked_unix_pair(loop, unix_dir)
        with sink:
            await fill(transport)
            transport.close()
            transport.abort()
            assert await protocol.lost is None
            await asyncio.sleep(0.01)
            assert protocol.names().count("connection_lost") == 1

    run(loop, main())


# -- reading ------------------------------------------------------------------


@pytest.mark.skipif(not CAN_PAUSE, reason="this Python's datagram transports cannot pause reading")
def test_pause_and_resume_reading(loop):
    async def main():
        server = await endpoint(loop, local_addr=("127.0.0.1", 0))
        client = await endpoint(loop, remote_addr=server[0].get_extra_info("sockname"))
        assert server[0].is_reading()
        server[0].pause_reading()
        assert not server[0].is_reading()
        client[0].sendto(b"held")
        await asyncio.sleep(0.05)
        assert server[1].datagrams() == []
        server[0].resume_reading()
        await server[1].wait_for(lambda p: len(p.datagrams()) == 1)
        assert server[1].datagrams()[0][0] == b"held"
        server[0].close()
        assert not server[0].is_reading()
        await close_all(client)
        await server[1].lost

    run(loop, main())


@pytest.mark.skipif(CAN_PAUSE, reason="this Python's datagram transports can pause reading")
def test_pause_reading_is_not_implemented_on_early_3_11(loop):
    async def main():
        transport, protocol = await endpoint(loop, local_addr=("127.0.0.1", 0))
        with pytest.raises(NotImplementedError):
            transport.pause_reading()
        await close_all((transport, protocol))

    run(loop, main())


def test_connection_made_runs_before_datagram_received(loop):
    async def main():
        server = await endpoint(loop, local_addr=("127.0.0.1", 0))
        client = await endpoint(loop, remote_addr=server[0].get_extra_info("sockname"))
        client[0].sendto(b"x")
        await server[1].wait_for(lambda p: len(p.datagrams()) == 1)
        assert server[1].names() == ["connection_made", "datagram_received"]
        await close_all(server, client)

    run(loop, main())


def send_from_plain_socket(addr, datagrams):
    """Send with a blocking socket: all are queued at the receiver before
    its loop looks again."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for data in datagrams:
            sock.sendto(data, addr)


class Scheduling(Recorder):
    """Schedules a callback per datagram, which asyncio runs before it reads
    the next one."""

    def datagram_received(self, data, addr):
        super().datagram_received(data, addr)
        self.loop.call_soon(self._note, "callback", data)


def test_callbacks_scheduled_by_the_protocol_run_before_the_next_datagram(loop):
    # asyncio delivers one datagram per loop iteration, so what the protocol
    # schedules runs before the next datagram arrives; loopx reads queued
    # datagrams in batches, but must keep this order.
    async def main():
        server = await endpoint(loop, Scheduling, local_addr=("127.0.0.1", 0))
        send_from_plain_socket(server[0].get_extra_info("sockname"), [b"%d" % i for i in range(6)])
        await server[1].wait_for(lambda p: p.names().count("callback") == 6)
        assert server[1].names()[1:] == ["datagram_received", "callback"] * 6
        assert [a[0] for n, a in server[1].events if n == "callback"] == [b"%d" % i for i in range(6)]
        await close_all(server)

    run(loop, main())


def test_stop_in_datagram_received_stops_after_that_datagram(loop):
    class Stopping(Recorder):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            self.loop.stop()

    transport, protocol = run(loop, endpoint(loop, Stopping, local_addr=("127.0.0.1", 0)))
    send_from_plain_socket(transport.get_extra_info("sockname"), [b"a", b"b", b"c"])
    for count in (1, 2, 3):
        safety = loop.call_later(10, loop.stop)
        loop.run_forever()
        safety.cancel()
        assert [d for d, _ in protocol.datagrams()] == [b"a", b"b", b"c"][:count]
    transport.close()
    run(loop, protocol.lost)


def test_pause_reading_in_datagram_received_holds_the_rest(loop):
    if not CAN_PAUSE:
        pytest.skip("this Python's datagram transports cannot pause reading")

    class PausesAfterTwo(Recorder):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            if len(self.datagrams()) == 2:
                self.transport.pause_reading()

    async def main():
        server = await endpoint(loop, PausesAfterTwo, local_addr=("127.0.0.1", 0))
        send_from_plain_socket(server[0].get_extra_info("sockname"), [b"%d" % i for i in range(5)])
        await server[1].wait_for(lambda p: len(p.datagrams()) == 2)
        await asyncio.sleep(0.05)
        assert len(server[1].datagrams()) == 2
        server[0].resume_reading()
        await server[1].wait_for(lambda p: len(p.datagrams()) == 5)
        assert [d for d, _ in server[1].datagrams()] == [b"%d" % i for i in range(5)]
        await close_all(server)

    run(loop, main())


@pytest.mark.parametrize("ending", ["close", "abort"])
def test_close_in_datagram_received_delivers_nothing_more(loop, ending):
    class ClosesAtOnce(Recorder):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            getattr(self.transport, ending)()

    async def main():
        server = await endpoint(loop, ClosesAtOnce, local_addr=("127.0.0.1", 0))
        send_from_plain_socket(server[0].get_extra_info("sockname"), [b"1", b"2", b"3"])
        assert await server[1].lost is None
        assert server[1].names() == ["connection_made", "datagram_received", "connection_lost"]

    run(loop, main())


# -- a burst read at once, delivered in asyncio's order ---------------------------
#
# loopx takes every datagram queued at the socket in one recvmmsg() and holds
# those it cannot deliver yet (datagram.pxi, _read_batch).  asyncio reads one
# per loop iteration.  These tests hold both loops to the same outcome.


def test_a_datagram_arriving_while_held_ones_wait_comes_after_them(loop):
    """Three datagrams queued together; a fourth sent by the first one's
    callback, while the other two wait their turn: every datagram's callback
    runs before the next datagram, and the fourth comes last."""
    class SendsMore(Scheduling):
        def _note(self, name, *args):
            super()._note(name, *args)
            if name == "callback" and args[0] == b"0":
                send_from_plain_socket(self.transport.get_extra_info("sockname"), [b"3"])

    async def main():
        server = await endpoint(loop, SendsMore, local_addr=("127.0.0.1", 0))
        send_from_plain_socket(server[0].get_extra_info("sockname"), [b"0", b"1", b"2"])
        await server[1].wait_for(lambda p: p.names().count("callback") == 4)
        assert server[1].names()[1:] == ["datagram_received", "callback"] * 4
        assert [d for d, _ in server[1].datagrams()] == [b"0", b"1", b"2", b"3"]
        await close_all(server)

    run(loop, main())


def test_a_burst_from_several_senders_reports_each_sender(loop):
    """Datagrams from three senders queued together, each answered where it
    came from: every sender gets its own answers, in order."""
    async def main():
        server = await endpoint(loop, Echo, local_addr=("127.0.0.1", 0))
        address = server[0].get_extra_info("sockname")
        senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
        try:
            for sender in senders:
                sender.bind(("127.0.0.1", 0))
            sent = [(i % 3, b"%d" % i) for i in range(12)]
            for who, data in sent:
                senders[who].sendto(data, address)
            for sender in senders:
                sender.setblocking(False)
            for who, sender in enumerate(senders):
                want = [data for w, data in sent if w == who]
                got = [await asyncio.wait_for(loop.sock_recv(sender, 100), helpers.SAFETY)
                       for _ in want]
                assert got == want
            assert server[1].datagrams() == [(data, senders[who].getsockname()) for who, data in sent]
        finally:
            for sender in senders:
                sender.close()
        await close_all(server)

    run(loop, main())


def test_exceptions_in_datagram_received_lose_no_datagram_of_a_burst(loop):
    class Raises(Recorder):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            raise ZeroDivisionError(data)

    async def main():
        errors = collect_errors(loop)
        server = await endpoint(loop, Raises, local_addr=("127.0.0.1", 0))
        sent = [b"%d" % i for i in range(5)]
        send_from_plain_socket(server[0].get_extra_info("sockname"), sent)
        await server[1].wait_for(lambda p: len(p.datagrams()) == 5)
        assert [d for d, _ in server[1].datagrams()] == sent
        await asyncio.sleep(0)
        assert [e["exception"].args[0] for e in errors] == sent
        assert not server[0].is_closing()
        await close_all(server)

    run(loop, main())


def test_close_while_paused_with_a_burst_pending_delivers_nothing_more(loop):
    if not CAN_PAUSE:
        pytest.skip("this Python's datagram transports cannot pause reading")

    class PausesAtOnce(Recorder):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            self.transport.pause_reading()

    async def main():
        server = await endpoint(loop, PausesAtOnce, local_addr=("127.0.0.1", 0))
        send_from_plain_socket(server[0].get_extra_info("sockname"), [b"1", b"2", b"3"])
        await server[1].wait_for(lambda p: len(p.datagrams()) == 1)
        server[0].close()
        server[0].resume_reading()   # does nothing once closing
        assert await server[1].lost is None
        await asyncio.sleep(0.05)
        assert server[1].names() == ["connection_made", "datagram_received", "connection_lost"]

    run(loop, main())


@pytest.mark.parametrize("max_size", [5, 300 * 1024])
def test_max_size_cuts_datagrams_of_a_burst_like_recvfrom(loop, max_size):
    """A datagram longer than max_size is cut to it (asyncio reads with
    recvfrom(max_size)); one beyond loopx's scratch buffer takes the socket
    object's own recvfrom()."""
    async def main():
        server = await endpoint(loop, local_addr=("127.0.0.1", 0))
        server[0].max_size = max_size
        sent = [b"", b"abc", b"abcdefgh", pattern_bytes(MAX_PAYLOAD["127.0.0.1"], 1), b"z"]
        send_from_plain_socket(server[0].get_extra_info("sockname"), sent)
        await server[1].wait_for(lambda p: len(p.datagrams()) == len(sent))
        assert [d for d, _ in server[1].datagrams()] == [d[:max_size] for d in sent]
        await close_all(server)

    run(loop, main())


def test_exception_in_datagram_received_goes_to_the_handler(loop):
    class Raises(Recorder):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            raise ZeroDivisionError

    async def main():
        errors = collect_errors(loop)
        server = await endpoint(loop, Raises, local_addr=("127.0.0.1", 0))
        client = await endpoint(loop, remote_addr=server[0].get_extra_info("sockname"))
        client[0].sendto(b"1")
        client[0].sendto(b"2")
        await server[1].wait_for(lambda p: len(p.datagrams()) == 2)
        assert len(errors) == 2
        assert all(isinstance(e["exception"], ZeroDivisionError) for e in errors)
        assert not server[0].is_closing()  # the transport carries on
        await close_all(server, client)

    run(loop, main())


# -- errors on sending ----------------------------------------------------------


def test_sendto_rejects_non_bytes(loop):
    async def main():
        transport, protocol = await endpoint(loop, local_addr=("127.0.0.1", 0))
        with pytest.raises(TypeError, match="bytes-like object"):
            transport.sendto("text", ("127.0.0.1", 9))
        await close_all((transport, protocol))

    run(loop, main())


@pytest.mark.parametrize(
    "make_address, error",
    [
        (lambda port: ("127.0.0.1", 70000), OverflowError),  # port out of range
        (lambda port: ("127.0.0.1", float(port)), TypeError),  # equal, but not an int
        (lambda port: None, TypeError),  # no address on an unconnected endpoint
        (lambda port: "127.0.0.1", TypeError),  # not a tuple
    ],
    ids=["port-range", "float-port", "none", "str"],
)
def test_invalid_address_is_a_fatal_error(loop, make_address, error):
    # The socket module raises a non-OSError: asyncio reports it to the
    # exception handler and closes the transport.
    async def main():
        errors = collect_errors(loop)
        server = await endpoint(loop, local_addr=("127.0.0.1", 0))
        port = server[0].get_extra_info("sockname")[1]
        transport, protocol = await endpoint(loop, local_addr=("127.0.0.1", 0))
        # First a valid numeric address (loopx remembers its conversion),
        # then the bad one, which must not be mistaken for it.
        transport.sendto(b"good", ("127.0.0.1", port))
        transport.sendto(b"bad", make_address(port))
        exc = await protocol.lost
        assert isinstance(exc, error)
        assert [e["message"] for e in errors] == ["Fatal write error on datagram transport"]
        assert transport.is_closing()
        await server[1].wait_for(lambda p: len(p.datagrams()) == 1)
        await asyncio.sleep(0.02)
        assert [d for d, _ in server[1].datagrams()] == [b"good"]
        await close_all(server)

    run(loop, main())


def test_unsendable_address_goes_to_error_received(loop):
    # Port 0 is not a destination: an OSError for this datagram only.
    async def main():
        transport, protocol = await endpoint(loop, local_addr=("127.0.0.1", 0))
        transport.sendto(b"x", ("127.0.0.1", 0))
        assert protocol.names() == ["connection_made", "error_received"]
        assert isinstance(protocol.events[-1][1][0], OSError)
        assert not transport.is_closing()
        await close_all((transport, protocol))

    run(loop, main())


# -- extra info, repr, lifetime --------------------------------------------------


def test_extra_info(loop):
    async def main():
        transport, protocol = await endpoint(loop, local_addr=("127.0.0.1", 0))
        sock = transport.get_extra_info("socket")
        assert sock.family == socket.AF_INET
        assert sock.type == socket.SOCK_DGRAM
        assert transport.get_extra_info("sockname") == sock.getsockname()
        assert transport.get_extra_info("peername") is None
        assert transport.get_extra_info("nonexistent", "dflt") == "dflt"
        assert transport.get_protocol() is protocol
        other = Recorder(loop)
        transport.set_protocol(other)
        assert transport.get_protocol() is other
        transport.set_protocol(protocol)
        assert "fd=" in repr(transport)
        await close_all((transport, protocol))
        assert "closed" in repr(transport)

    run(loop, main())


def test_unclosed_transport_warns(loop):
    async def main():
        return await endpoint(loop, local_addr=("127.0.0.1", 0))

    held = list(run(loop, main()))  # transport, protocol
    loop.close()
    messages = helpers.resource_warnings_when_collected(held)
    # The file object may warn about itself too: the collector finalizes the
    # cycle's members in no particular order.
    assert any(m.startswith("unclosed transport") for m in messages), messages


def test_closing_the_loop_first_is_safe(loop):
    async def main():
        return await endpoint(loop, local_addr=("127.0.0.1", 0))

    transport, protocol = run(loop, main())
    loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        transport.close()  # scheduling connection_lost needs the loop
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del transport, protocol
        gc.collect()


def test_debug_mode_round_trip(loop):
    loop.set_debug(True)

    async def main():
        server = await endpoint(loop, Echo, local_addr=("127.0.0.1", 0))
        client = await endpoint(loop, remote_addr=server[0].get_extra_info("sockname"))
        client[0].sendto(b"debug")
        await client[1].wait_for(lambda p: len(p.datagrams()) == 1)
        await close_all(server, client)

    run(loop, main())


# -- answers sent from datagram_received ------------------------------------------
#
# loopx delivers a read batch of datagrams in one go (datagram.pxi,
# _read_batch), but what datagram_received() sends leaves at once, as in
# asyncio.  These tests hold both loops to the same outcome: every answer
# arrives, in order, when sendto() is called, and errors, close(), abort()
# and exceptions behave alike.


class Answering(asyncio.DatagramProtocol):
    """Runs script(transport, data, addr) for every datagram; records the
    errors it is told about."""

    def __init__(self, loop, script):
        self.script = script
        self.errors = []
        self.seen = 0
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.seen += 1
        self.script(self.transport, data, addr)

    def error_received(self, exc):
        self.errors.append(exc)

    def connection_lost(self, exc):
        self.lost.set_result(exc)


async def answer_burst(loop, script, datagrams, expect):
    """Queue `datagrams` at a server running `script` (so that they are read
    in one batch), then return (the first `expect` answers, the protocol)."""
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: Answering(loop, script), local_addr=("127.0.0.1", 0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.bind(("127.0.0.1", 0))
        for data in datagrams:
            client.sendto(data, transport.get_extra_info("sockname"))
        client.setblocking(False)
        answers = []
        for _ in range(expect):
            answers.append(await asyncio.wait_for(loop.sock_recv(client, 65536), helpers.SAFETY))
    return answers, transport, protocol


def test_answers_to_a_burst_arrive_in_order_with_errors_in_between(loop):
    """Three answers per datagram (more than one batch holds), a datagram to
    port 0 among them failing on its own: error_received() once per failing
    datagram, every other answer delivered, in order; with every kind of
    address, including a host name that takes the socket module's path."""
    def script(transport, data, addr):
        transport.sendto(data + b"-a", addr)
        transport.sendto(bytearray(data + b"-b"), ("localhost", addr[1]))
        if data == b"3":
            transport.sendto(b"lost", ("127.0.0.1", 0))
        transport.sendto(memoryview(data + b"-c"), (addr[0], addr[1]))

    async def main():
        sent = [b"%d" % i for i in range(10)]
        answers, transport, protocol = await answer_burst(loop, script, sent, 30)
        assert answers == [d + tag for d in sent for tag in (b"-a", b"-b", b"-c")]
        assert len(protocol.errors) == 1 and isinstance(protocol.errors[0], OSError)
        assert not transport.is_closing()
        transport.close()
        await protocol.lost

    run(loop, main())


@pytest.mark.parametrize("ending", ["close", "abort", "raise"])
def test_answer_then_end_still_sends_the_answer(loop, ending):
    """sendto() then close(), abort() or an exception in the same callback:
    the answer was sent (asyncio sent it at once), then the transport closes
    (or, after an exception, carries on with the handler told)."""
    errors = collect_errors(loop)

    def script(transport, data, addr):
        transport.sendto(b"answer to " + data, addr)
        if ending == "raise":
            raise ZeroDivisionError("protocol bug")
        getattr(transport, ending)()

    async def main():
        answers, transport, protocol = await answer_burst(loop, script, [b"q"], 1)
        assert answers == [b"answer to q"]
        if ending == "raise":
            assert not transport.is_closing()
            transport.close()
        assert await protocol.lost is None

    run(loop, main())
    assert [type(e.get("exception")) for e in errors] == ([ZeroDivisionError] if ending == "raise" else [])


def test_write_buffer_size_in_datagram_received_is_zero_once_sent(loop):
    sizes = []

    def script(transport, data, addr):
        transport.sendto(data, addr)
        sizes.append(transport.get_write_buffer_size())

    async def main():
        answers, transport, protocol = await answer_burst(loop, script, [b"1", b"2", b"3"], 3)
        assert answers == [b"1", b"2", b"3"]
        assert sizes == [0, 0, 0]
        transport.close()
        await protocol.lost

    run(loop, main())


def test_each_answer_leaves_when_sendto_is_called(loop):
    """Within a batch too: by the time sendto() returns in
    datagram_received(), the peer can read the answer."""
    seen_during = []
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def script(transport, data, addr):
        transport.sendto(data, addr)
        try:
            seen_during.append(client.recv(100))
        except BlockingIOError:
            seen_during.append(None)

    async def main():
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: Answering(loop, script), local_addr=("127.0.0.1", 0))
        with client:
            client.bind(("127.0.0.1", 0))
            for i in range(5):
                client.sendto(b"%d" % i, transport.get_extra_info("sockname"))
            client.setblocking(False)
            deadline = loop.time() + helpers.SAFETY
            while protocol.seen < 5 and loop.time() < deadline:
                await asyncio.sleep(0.001)
        assert seen_during == [b"%d" % i for i in range(5)]
        transport.close()
        await protocol.lost

    run(loop, main())
