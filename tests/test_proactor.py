"""loopx._proactor, the IOCP proactor, driven by asyncio's proactor loop.

On Windows the loop is loopx.Loop (asyncio's ProactorEventLoop over our
Proactor and the real completion core, csrc/iocp.c).  On Linux it is
tests/proactor_loop.ProactorLoop (the same asyncio code, less the
windows_events class that cannot import there) over a Proactor built with
LOOPX_PROACTOR_EMU=1 against the IOCP emulation in tests/iocp_emu:
scripts/test_proactor_emu.sh makes that build and runs this module.  Without
loopx._proactor the module is skipped, saying why.

Every test checks at teardown that the loop closed with no operation left in
the kernel and (on Linux) that no file descriptor leaked.
"""
import asyncio
import gc
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import helpers

try:
    from loopx._proactor import Proactor
except ImportError as exc:
    _reason = (f"loopx._proactor is not built ({exc}); on Linux, "
               "scripts/test_proactor_emu.sh builds it over tests/iocp_emu and runs this module")
    print(f"\ntests/test_proactor.py: skipped: {_reason}", file=sys.stderr)
    pytest.skip(_reason, allow_module_level=True)

WINDOWS = sys.platform == "win32"
LINUX = sys.platform.startswith("linux")
only_linux = pytest.mark.skipif(not LINUX, reason="uses os.pipe()/pidfd/signals: Linux-only APIs here")

if WINDOWS:
    import loopx

    def _new_loop():
        return loopx.new_event_loop()
else:
    from proactor_loop import ProactorLoop as _new_loop


SIZES = [1, 7, 4096, 65535, 65536, 65537, 1 << 20, (3 << 20) + 17, 8 << 20]


@pytest.fixture
def loop():
    before = helpers.open_fds() if LINUX else None
    lp = _new_loop()
    proactor = lp._proactor
    assert isinstance(proactor, Proactor)
    errors = helpers.collect_errors(lp)
    yield lp
    if not lp.is_closed():
        lp.close()
    assert proactor.in_flight == 0, "ops left in the kernel after close()"
    unexpected = [e for e in errors if not getattr(lp, "_expected_errors", None)]
    assert not unexpected, f"exception handler called: {unexpected}"
    if before is not None:
        leaked = helpers.open_fds().keys() - before.keys()
        if leaked:
            gc.collect()
            leaked = helpers.open_fds().keys() - before.keys()
        assert not leaked, f"fds leaked: {sorted(leaked)}"


def run(loop, coro, timeout=helpers.SAFETY):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


def ops(loop):
    """Operations in flight besides the loop's own self-pipe read (which
    starts in the loop's first iteration, before or after a test's first
    step depending on the Python version)."""
    reading = loop._self_reading_future
    return loop._proactor.in_flight - (reading is not None and not reading.done())


def tcp_pair():
    """A connected non-blocking (client, server) pair made without any loop
    (helpers.tcp_pair uses the loop's own sock_* methods; some tests here
    must not, or have no loop running)."""
    with helpers.tcp_listener() as listener:
        listener.setblocking(True)
        c = socket.create_connection(listener.getsockname())
        s, _ = listener.accept()
    c.setblocking(False)
    s.setblocking(False)
    return c, s


# -- TCP ----------------------------------------------------------------------

class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        return False  # close: the transport flushes what is queued first


class Collect(asyncio.Protocol):
    def __init__(self, loop):
        self.chunks = []
        self.done = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.chunks.append(data)

    def eof_received(self):
        if not self.done.done():
            self.done.set_result(b"".join(self.chunks))

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError("lost before EOF"))


def test_tcp_echo_many_sizes(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        for i, size in enumerate(SIZES):
            data = helpers.pattern_bytes(size, i)
            tr, proto = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port)
            # Several writes, so the transport queues while a send is in flight.
            for off in range(0, size, 1 << 20):
                tr.write(data[off:off + (1 << 20)])
            tr.write_eof()
            got = await proto.done
            assert len(got) == size and got == data, f"size {size}"
            tr.close()
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_streams(loop):
    async def handle(reader, writer):
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def client(port, n):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in range(50):
            writer.write(b"client %d line %d\n" % (n, i))
        big = helpers.pattern_bytes(2 << 20, n).replace(b"\n", b"x") + b"\n"
        writer.write(big)
        await writer.drain()
        for i in range(50):
            assert await reader.readline() == b"CLIENT %d LINE %d\n" % (n, i)
        assert await reader.readexactly(len(big)) == big.upper()
        writer.write_eof()
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0, limit=4 << 20)
        port = server.sockets[0].getsockname()[1]
        await asyncio.gather(*(client(port, n) for n in range(4)))
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_sock_methods(loop):
    async def main():
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        lsock.setblocking(False)
        csock = socket.socket()
        csock.setblocking(False)
        accepted = loop.create_task(loop.sock_accept(lsock))
        await loop.sock_connect(csock, lsock.getsockname())
        ssock, addr = await accepted
        assert addr == csock.getsockname()
        assert ssock.getsockname() == lsock.getsockname()
        assert ssock.gettimeout() == 0.0
        data = helpers.pattern_bytes(5 << 20, 3)
        sender = loop.create_task(loop.sock_sendall(csock, data))
        got = bytearray()
        buf = bytearray(100000)
        while len(got) < len(data):
            if len(got) % 2:
                chunk = await loop.sock_recv(ssock, 65536)
            else:
                n = await loop.sock_recv_into(ssock, buf)
                chunk = buf[:n]
            assert chunk
            got += chunk
        await sender
        assert got == data
        csock.shutdown(socket.SHUT_WR)
        assert await loop.sock_recv(ssock, 10) == b""
        assert await loop.sock_recv_into(ssock, buf) == 0
        for s in (lsock, csock, ssock):
            s.close()

    run(loop, main())


def test_sendfile_falls_back(loop, tmp_path):
    path = tmp_path / "data.bin"
    data = helpers.pattern_bytes(3 << 20, 9)
    path.write_bytes(data)

    async def main():
        c, s = tcp_pair()
        with open(path, "rb") as f:
            reader = loop.create_task(helpers.read_exactly(loop, s, len(data) - 100))
            assert await loop.sock_sendfile(c, f, 100) == len(data) - 100
            assert await reader == data[100:]
            assert f.tell() == len(data)
            with pytest.raises(asyncio.SendfileNotAvailableError):
                await loop.sock_sendfile(c, f, 0, fallback=False)
        c.close()
        s.close()

    run(loop, main())


def test_connection_refused(loop):
    async def main():
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            address = probe.getsockname()
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(asyncio.Protocol, *address)
        sock = socket.socket()
        sock.setblocking(False)
        with pytest.raises(ConnectionRefusedError):
            await loop.sock_connect(sock, address)
        sock.close()

    run(loop, main())


def test_peer_reset(loop):
    async def main():
        c, s = tcp_pair()
        pending = loop.create_task(loop.sock_recv(s, 100))
        await asyncio.sleep(0.05)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
        with pytest.raises(ConnectionResetError):
            await pending
        s.close()

        # Through a transport: connection_lost gets the reset.
        lost = loop.create_future()

        class P(asyncio.Protocol):
            def connection_lost(self, exc):
                lost.set_result(exc)

        c, s = tcp_pair()
        tr, _ = await loop.connect_accepted_socket(P, s)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
        assert isinstance(await lost, ConnectionResetError)

    run(loop, main())


# -- UDP ----------------------------------------------------------------------

class Datagrams(asyncio.DatagramProtocol):
    def __init__(self, loop):
        self.queue = asyncio.Queue()
        self.errors = asyncio.Queue()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.queue.put_nowait((data, addr))

    def error_received(self, exc):
        self.errors.put_nowait(exc)


def test_udp_endpoints(loop):
    async def main():
        a_tr, a = await loop.create_datagram_endpoint(lambda: Datagrams(loop), local_addr=("127.0.0.1", 0))
        b_tr, b = await loop.create_datagram_endpoint(lambda: Datagrams(loop), local_addr=("127.0.0.1", 0))
        a_addr = a_tr.get_extra_info("sockname")
        b_addr = b_tr.get_extra_info("sockname")
        for i in range(20):
            b_tr.sendto(b"ping %d" % i, a_addr)
        for i in range(20):
            data, addr = await a.queue.get()
            assert data == b"ping %d" % i and addr == b_addr
        big = helpers.pattern_bytes(60000, 1)
        a_tr.sendto(big, b_addr)
        assert await b.queue.get() == (big, a_addr)
        a_tr.close()
        b_tr.close()

        # Connected to a port nobody listens on: the ICMP error reaches
        # error_received (ConnectionRefusedError here, ConnectionResetError
        # on Windows, where WSARecv reports it).
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            dead = probe.getsockname()
        tr, p = await loop.create_datagram_endpoint(lambda: Datagrams(loop), remote_addr=dead)
        tr.sendto(b"anyone?")
        exc = await p.errors.get()
        assert isinstance(exc, (ConnectionRefusedError, ConnectionResetError))
        tr.close()
        await asyncio.sleep(0)

    run(loop, main())


def test_udp_sock_methods(loop):
    async def main():
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for s in (a, b):
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
        await loop.sock_sendto(b, b"one", a.getsockname())
        assert await loop.sock_recvfrom(a, 100) == (b"one", b.getsockname())
        await loop.sock_sendto(b, b"two!", a.getsockname())
        buf = bytearray(10)
        assert await loop.sock_recvfrom_into(a, buf) == (4, b.getsockname())
        assert buf[:4] == b"two!"
        await loop.sock_sendto(b, b"three", a.getsockname())
        assert await loop.sock_recvfrom_into(a, buf, 2) == (2, b.getsockname())
        a.close()
        b.close()

    run(loop, main())


# -- pipes, threads, signals, processes -----------------------------------------

@only_linux
def test_read_and_write_pipes(loop):
    class Reader(asyncio.Protocol):
        def __init__(self):
            self.chunks = []
            self.lost = loop.create_future()

        def data_received(self, data):
            self.chunks.append(data)

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    async def main():
        r1, w1 = os.pipe()
        data = helpers.pattern_bytes(3 << 20, 5)
        rtr, rp = await loop.connect_read_pipe(Reader, os.fdopen(r1, "rb", 0))
        wtr, wp = await loop.connect_write_pipe(asyncio.BaseProtocol, os.fdopen(w1, "wb", 0))
        wtr.write(data[:1000])
        wtr.write(data[1000:])
        wtr.close()
        assert await rp.lost is None  # EOF: the writer went away
        assert b"".join(rp.chunks) == data
        rtr.close()

    run(loop, main())


def test_call_soon_threadsafe_wakes_the_loop(loop):
    async def main():
        done = loop.create_future()
        count = [0]

        def bump():
            count[0] += 1
            if count[0] == 400 and not done.done():
                done.set_result(time.monotonic())

        def worker():
            for _ in range(100):
                loop.call_soon_threadsafe(bump)

        await asyncio.sleep(0.05)  # the loop is blocked in select() now
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        await asyncio.wait_for(done, helpers.PROMPT)

        # From a blocked select: woken well before the long timer.
        woke = loop.create_future()
        threading.Timer(0.1, loop.call_soon_threadsafe, (woke.set_result, time.monotonic())).start()
        start = time.monotonic()
        guard = loop.call_later(60, lambda: None)
        await asyncio.wait_for(woke, helpers.PROMPT)
        assert time.monotonic() - start < helpers.PROMPT
        guard.cancel()

    run(loop, main())


@only_linux
def test_signal_wakes_the_loop_through_the_self_pipe(loop):
    """How Ctrl-C reaches a proactor loop: signal.set_wakeup_fd writes to the
    self-pipe socket, whose pending recv completes and ends select()."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals need the main thread")
    woke = loop.create_future()

    def handler(signum, frame):
        # Python runs this once select() has returned: the wakeup fd's byte
        # completed the self-pipe read.
        if not woke.done():
            woke.set_result(time.monotonic())

    old = signal.signal(signal.SIGUSR1, handler)
    try:
        async def main():
            await asyncio.sleep(0.05)  # blocked in select() from here on
            threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGUSR1)).start()
            start = time.monotonic()
            guard = loop.call_later(60, lambda: None)
            await asyncio.wait_for(woke, 2 * helpers.PROMPT)
            assert woke.result() - start < helpers.PROMPT
            guard.cancel()

        run(loop, main())
    finally:
        signal.signal(signal.SIGUSR1, old)


def _child(code):
    return subprocess.Popen([sys.executable, "-c", code])


def _handle(proc):
    """A waitable handle for wait_for_handle: the process handle on Windows,
    a pidfd over the emulation."""
    return int(proc._handle) if WINDOWS else os.pidfd_open(proc.pid)


def _close_handle(proc, h):
    if not WINDOWS:
        os.close(h)


@pytest.mark.skipif(LINUX and not hasattr(os, "pidfd_open"), reason="no os.pidfd_open")
def test_wait_for_handle(loop):
    async def main():
        proactor = loop._proactor
        proc = _child("import time; time.sleep(0.2); raise SystemExit(3)")
        h = _handle(proc)
        try:
            assert await proactor.wait_for_handle(h) is True
            assert proc.wait(helpers.PROMPT) == 3
        finally:
            _close_handle(proc, h)

        proc = _child("import time; time.sleep(60)")
        h = _handle(proc)
        try:
            start = time.monotonic()
            assert await proactor.wait_for_handle(h, 0.1) is False
            assert time.monotonic() - start >= 0.09
            fut = proactor.wait_for_handle(h)
            await asyncio.sleep(0.05)
            fut.cancel()
            await asyncio.sleep(0.05)
            assert fut.cancelled() and ops(loop) == 0
            proc.kill()
            assert await proactor.wait_for_handle(h, helpers.PROMPT) is True
            proc.wait()
        finally:
            _close_handle(proc, h)

    run(loop, main())


# -- cancellation and close ------------------------------------------------------

def test_cancel_pending_recv_and_accept(loop):
    async def main():
        proactor = loop._proactor
        c, s = tcp_pair()
        fut = proactor.recv(s, 100)
        await asyncio.sleep(0.02)
        assert ops(loop) == 1
        assert fut.cancel()
        await asyncio.sleep(0.05)
        assert fut.cancelled() and ops(loop) == 0
        # The cancelled read took nothing: the next one gets the bytes.
        c.send(b"after")
        assert await loop.sock_recv(s, 100) == b"after"

        lsock = socket.create_server(("127.0.0.1", 0))
        lsock.setblocking(False)
        fut = proactor.accept(lsock)
        await asyncio.sleep(0.02)
        fut.cancel()
        await asyncio.sleep(0.05)
        assert fut.cancelled() and ops(loop) == 0
        # A client that arrives afterwards is accepted by the next accept.
        client = socket.create_connection(lsock.getsockname())
        conn, _ = await loop.sock_accept(lsock)
        conn.close()
        client.close()

        # Cancel through a task awaiting sock_recv.
        task = loop.create_task(loop.sock_recv(s, 100))
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.05)
        assert ops(loop) == 0
        for sock in (c, s, lsock):
            sock.close()

    run(loop, main())


def test_close_with_ops_in_flight(loop):
    proactor = loop._proactor
    socks = []

    async def start():
        futs = []
        for _ in range(5):
            c, s = tcp_pair()
            socks.extend((c, s))
            futs.append(proactor.recv(s, 1000))
            futs.append(proactor.recv_into(c, bytearray(10)))
        lsock = socket.create_server(("127.0.0.1", 0))
        lsock.setblocking(False)
        socks.append(lsock)
        futs.append(proactor.accept(lsock))
        # A send that cannot finish: nobody reads and the buffers fill up.
        c, s = tcp_pair()
        socks.extend((c, s))
        futs.append(proactor.send(c, b"x" * (64 << 20)))
        await asyncio.sleep(0.1)
        return futs

    futs = loop.run_until_complete(start())
    assert proactor.in_flight >= len(futs)
    start_time = time.monotonic()
    loop.close()
    assert time.monotonic() - start_time < helpers.PROMPT
    assert proactor.in_flight == 0
    assert all(f.cancelled() for f in futs)
    for s in socks:
        s.close()
    with pytest.raises(RuntimeError):
        proactor.recv(socks[0], 10)


def test_closing_the_socket_completes_its_ops(loop):
    """What a transport's close does: the pending recv comes back (aborted)
    once its socket is closed, and the proactor lets go of it."""
    async def main():
        proactor = loop._proactor
        c, s = tcp_pair()
        fut = proactor.recv(s, 100)
        await asyncio.sleep(0.02)
        s.close()
        # ConnectionResetError from ERROR_OPERATION_ABORTED, as IocpProactor
        # maps it; Windows may also say WSAECONNABORTED (see csrc/iocp.h).
        with pytest.raises((ConnectionResetError, ConnectionAbortedError)):
            await asyncio.wait_for(fut, helpers.PROMPT)
        assert ops(loop) == 0
        c.close()

    run(loop, main())


# -- errors ------------------------------------------------------------------------

def test_bad_arguments(loop):
    """The exception types asyncio's IocpProactor (_overlapped) raises."""
    async def main():
        proactor = loop._proactor
        c, s = tcp_pair()
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.setblocking(False)
        fresh = socket.socket()
        fresh.setblocking(False)
        with pytest.raises(TypeError):
            await loop.sock_connect(fresh, "127.0.0.1:80")       # not a tuple
        with pytest.raises(ValueError):
            await loop.sock_connect(fresh, ("127.0.0.1", 80, 0))  # wrong length
        with pytest.raises(TypeError):
            await loop.sock_connect(fresh, (b"127.0.0.1", 80))    # host not str
        with pytest.raises(OSError):
            await loop.sock_connect(fresh, ("not-an-address", 80))  # never resolved
        with pytest.raises(OverflowError):
            await loop.sock_connect(fresh, ("127.0.0.1", 70000))
        with pytest.raises(TypeError):
            await loop.sock_sendall(c, "text")                    # not a buffer
        with pytest.raises(TypeError):
            await loop.sock_recv_into(s, b"read-only")
        with pytest.raises(TypeError):
            await loop.sock_sendto(udp, b"x", "nowhere")
        with pytest.raises(ValueError):
            proactor.select(-1)
        with pytest.raises(ValueError):
            proactor.recv(s, 10, 1)                               # flags
        closed = socket.socket()
        closed.close()
        with pytest.raises(OSError):
            await loop.sock_recv(closed, 10)
        with pytest.raises(OSError):
            await loop.sock_sendall(closed, b"x")
        # Nothing was left in flight by the failed submits.
        assert ops(loop) == 0
        for sock in (c, s, udp, fresh):
            sock.close()

    run(loop, main())


def test_repr_and_future_repr(loop):
    async def main():
        c, s = tcp_pair()
        fut = loop._proactor.recv(s, 10)
        assert "overlapped=<pending" in repr(fut)
        assert "overlapped#=" in repr(loop._proactor)
        c.send(b"x")
        assert await fut == b"x"
        c.close()
        s.close()

    run(loop, main())


def test_close_gives_up_after_close_timeout(caplog):
    """Ops the kernel does not return within close_timeout are logged and
    leaked (never freed: the kernel may still write to them); close() does
    not hang.  close_timeout 0 makes a pending recv such an op."""
    lp = asyncio.SelectorEventLoop()  # only for the futures
    proactor = Proactor()
    proactor.set_loop(lp)
    c, s = tcp_pair()
    try:
        fut = proactor.recv(s, 10)
        proactor.close_timeout = 0.0
        with caplog.at_level("ERROR", logger="asyncio"):
            proactor.close()
        assert "still not returned by the kernel" in caplog.text
        assert proactor.in_flight == 0 and fut.cancelled()
        assert "closed" in repr(proactor)
        proactor.close()  # again: nothing to do
    finally:
        c.close()
        s.close()
        lp.close()
