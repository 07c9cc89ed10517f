"""The loop's low-level socket methods (sock_*) over real sockets."""
import asyncio
import hashlib
import io
import os
import select
import socket
import tempfile

import pytest

import helpers

BIG = 10 * 1024 * 1024


def test_sock_recv_and_sendall_over_a_socketpair(loop):
    a, b = helpers.socketpair()
    with a, b:

        async def main():
            await loop.sock_sendall(a, b"hello")
            return await loop.sock_recv(b, 100)

        assert helpers.run(loop, main()) == b"hello"


def test_sock_recv_waits_for_data(loop):
    a, b = helpers.socketpair()
    with a, b:

        async def main():
            loop.call_later(0.05, a.send, b"late")
            return await loop.sock_recv(b, 100)

        assert helpers.run(loop, main()) == b"late"


@pytest.mark.parametrize("transport", [
    pytest.param("unix", marks=helpers.windows_skip("AF_UNIX socketpair")), "tcp"])
def test_large_transfer_with_sha256(loop, transport):
    payload = helpers.pattern_bytes(BIG)

    async def main():
        if transport == "unix":
            a, b = helpers.socketpair()
        else:
            a, b = await helpers.tcp_pair(loop)
        with a, b:

            async def sender():
                await loop.sock_sendall(a, payload)
                a.shutdown(socket.SHUT_WR)

            async def receiver():
                digest = hashlib.sha256()
                total = 0
                while True:
                    chunk = await loop.sock_recv(b, 256 * 1024)
                    if not chunk:
                        return total, digest.hexdigest()
                    total += len(chunk)
                    digest.update(chunk)

            _, received = await asyncio.gather(sender(), receiver())
            return received

    total, digest = helpers.run(loop, main())
    assert total == BIG
    assert digest == hashlib.sha256(payload).hexdigest()


@pytest.mark.parametrize("waiting", [False, True], ids=["ready", "waiting"])
def test_sock_recv_of_a_large_n_gets_messages_of_changing_sizes_exactly(loop, waiting):
    # loopx reads a large n through its scratch buffer or straight into a
    # bytes object of n bytes, by the size of the reads before: each switch
    # between the two must give the bytes sent, no more, no fewer.
    sizes = [1, 1024, 60000, 65536, 5, 40000, 100, 65536, 65536, 3]

    async def main():
        a, b = await helpers.tcp_pair(loop)
        with a, b:
            got = []
            for i, size in enumerate(sizes):
                message = helpers.pattern_bytes(size, seed=i)
                if waiting:
                    loop.call_later(0.01, a.sendall, message)
                else:
                    a.sendall(message)
                    await asyncio.sleep(0.01)  # all of it there before the recv
                data = b""
                while len(data) < size:
                    chunk = await loop.sock_recv(b, 65536)
                    assert chunk
                    data += chunk
                got.append(data == message)
            return got

    assert helpers.run(loop, main()) == [True] * len(sizes)


def test_large_transfer_with_sock_recv_into(loop):
    payload = helpers.pattern_bytes(BIG, seed=1)

    async def main():
        a, b = await helpers.tcp_pair(loop)
        with a, b:
            buf = bytearray(BIG)
            view = memoryview(buf)

            async def receiver():
                pos = 0
                while pos < BIG:
                    n = await loop.sock_recv_into(b, view[pos:])
                    if n == 0:
                        break
                    pos += n
                return pos

            _, got = await asyncio.gather(loop.sock_sendall(a, payload), receiver())
            return got, bytes(buf)

    got, data = helpers.run(loop, main())
    assert got == BIG
    assert hashlib.sha256(data).digest() == hashlib.sha256(payload).digest()


def test_sock_recv_into_a_bytearray(loop):
    a, b = helpers.socketpair()
    with a, b:

        async def main():
            buf = bytearray(10)
            a.send(b"abc")
            n = await loop.sock_recv_into(b, buf)
            return n, bytes(buf[:n])

        assert helpers.run(loop, main()) == (3, b"abc")


def test_peer_close_gives_empty_bytes(loop):
    a, b = helpers.socketpair()
    with b:

        async def main():
            loop.call_later(0.02, a.close)
            first = await loop.sock_recv(b, 10)
            buf = bytearray(4)
            second = await loop.sock_recv_into(b, buf)
            return first, second

        assert helpers.run(loop, main()) == (b"", 0)
    a.close()


def test_sock_sendall_to_a_closed_peer(loop):
    a, b = helpers.socketpair()
    with a:
        b.close()

        async def main():
            with pytest.raises(OSError):
                await loop.sock_sendall(a, b"x" * BIG)

        helpers.run(loop, main())


def test_sock_sendall_empty(loop):
    a, b = helpers.socketpair()
    with a, b:
        assert helpers.run(loop, loop.sock_sendall(a, b"")) is None


def test_sock_sendall_accepts_buffers(loop):
    a, b = helpers.socketpair()
    with a, b:

        async def main():
            await loop.sock_sendall(a, bytearray(b"ab"))
            await loop.sock_sendall(a, memoryview(b"cdef")[1:3])
            return await helpers.read_exactly(loop, b, 4)

        assert helpers.run(loop, main()) == b"abde"


@helpers.only("loopx")
def test_sock_sendall_counts_bytes_not_items(loop):
    """A buffer of 4-byte items: all of its bytes go out, whether the first
    send takes them all (a socketpair) or not (a big one).  asyncio's
    sock_sendall mixes up item and byte counts here and never finishes."""
    import array

    a, b = helpers.socketpair()
    with a, b:
        for count in (10, 1_000_000):
            items = array.array("i", range(count))

            async def main():
                sending = asyncio.ensure_future(loop.sock_sendall(a, items))
                got = await helpers.read_exactly(loop, b, len(items) * items.itemsize)
                await sending
                return got

            assert helpers.run(loop, main()) == items.tobytes()


def test_sock_recv_waiting_gets_a_reset_as_an_error(loop):
    with helpers.tcp_listener() as listener:
        a = socket.create_connection(listener.getsockname())
        b, _ = listener.accept()
    b.setblocking(False)
    with b:

        async def main():
            # An RST: SO_LINGER with a zero timeout, then close.
            loop.call_later(0.02, lambda: (
                a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0"),
                a.close()))
            with pytest.raises(ConnectionResetError):
                await loop.sock_recv(b, 10)
            await asyncio.sleep(0)
            assert loop.remove_reader(b) is False

        helpers.run(loop, main())


def test_sock_recv_on_a_socket_closed_while_waiting_reads_no_other_file(loop):
    """The socket closed under a waiting sock_recv, its file kept alive by a
    dup (as a child process's copy would) and its fd number reused by a new
    socket with data waiting: the old file's readiness must not make the
    recv read the new socket's data."""
    import os

    a, b = helpers.socketpair()
    old_fd = b.fileno()
    spare = os.dup(old_fd)
    try:

        async def main():
            pending = asyncio.ensure_future(loop.sock_recv(b, 100))
            await asyncio.sleep(0.01)
            b.close()
            c, d = helpers.socketpair()
            with c, d:
                assert old_fd in (c.fileno(), d.fileno())
                reused = c if c.fileno() == old_fd else d
                other = d if reused is c else c
                other.send(b"not yours")
                a.send(b"wakes the old file")
                with pytest.raises(OSError):
                    await asyncio.wait_for(pending, helpers.PROMPT)
                return reused.recv(100)

        assert helpers.run(loop, main()) == b"not yours"
    finally:
        os.close(spare)
        a.close()


@helpers.windows_skip("add_reader: asyncio's Windows (proactor) loop has none")
def test_add_reader_replacing_a_waiting_sock_recv_keeps_its_watch(loop):
    """As asyncio: the newer add_reader wins the fd, the recv waits on (until
    cancelled), and finishing the recv does not remove the newer reader."""
    a, b = helpers.socketpair()
    with a, b:

        async def main():
            pending = asyncio.ensure_future(loop.sock_recv(b, 100))
            await asyncio.sleep(0.01)
            seen = loop.create_future()
            loop.add_reader(b, lambda: seen.done() or seen.set_result(b.recv(100)))
            a.send(b"to the reader")
            assert await seen == b"to the reader"
            assert not pending.done()
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            assert loop.remove_reader(b) is True

        helpers.run(loop, main())


def test_sock_connect_and_accept(loop):
    async def main():
        with helpers.tcp_listener() as listener, helpers.nonblocking_tcp() as client:
            connect = asyncio.ensure_future(loop.sock_connect(client, listener.getsockname()))
            conn, addr = await loop.sock_accept(listener)
            with conn:
                assert await connect is None
                assert addr == client.getsockname()
                assert conn.gettimeout() == 0  # accepted sockets are non-blocking
                await loop.sock_sendall(conn, b"from server")
                return await loop.sock_recv(client, 100)

    assert helpers.run(loop, main()) == b"from server"


def test_sock_accept_waits_for_a_client(loop):
    async def main():
        with helpers.tcp_listener() as listener:
            addr = listener.getsockname()
            client = socket.socket()
            loop.call_later(0.05, client.connect, addr)
            try:
                conn, _ = await loop.sock_accept(listener)
                conn.close()
            finally:
                client.close()
            return True

    assert helpers.run(loop, main())


def test_sock_connect_to_localhost_resolves(loop):
    async def main():
        with helpers.tcp_listener("127.0.0.1") as listener, helpers.nonblocking_tcp() as client:
            port = listener.getsockname()[1]
            accept = asyncio.ensure_future(loop.sock_accept(listener))
            await loop.sock_connect(client, ("localhost", port))
            conn, _ = await accept
            conn.close()
            return client.getpeername(), port

    peer, port = helpers.run(loop, main())
    assert peer == ("127.0.0.1", port)


def test_sock_connect_refused(loop):
    # A bound but not listening socket: connecting to its port is refused,
    # and nothing else can take the port while we hold it.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        addr = holder.getsockname()

        async def main():
            with helpers.nonblocking_tcp() as client:
                with pytest.raises(ConnectionRefusedError):
                    await loop.sock_connect(client, addr)

        helpers.run(loop, main())


@helpers.windows_skip("AF_UNIX sockets")
def test_sock_connect_unix(loop, tmp_path):
    path = str(tmp_path / "sock")

    async def main():
        with socket.socket(socket.AF_UNIX) as listener, socket.socket(socket.AF_UNIX) as client:
            listener.bind(path)
            listener.listen()
            listener.setblocking(False)
            client.setblocking(False)
            accept = asyncio.ensure_future(loop.sock_accept(listener))
            await loop.sock_connect(client, path)
            conn, _ = await accept
            with conn:
                await loop.sock_sendall(client, b"unix")
                return await loop.sock_recv(conn, 10)

    assert helpers.run(loop, main()) == b"unix"


@pytest.mark.parametrize(
    "method, args",
    [
        ("sock_recv", (1,)),
        ("sock_recv_into", (bytearray(1),)),
        ("sock_sendall", (b"x",)),
        ("sock_accept", ()),
        ("sock_connect", (("127.0.0.1", 1),)),
    ],
)
def test_blocking_socket_is_rejected_in_debug_mode(loop, method, args):
    """asyncio checks the socket is non-blocking in debug mode."""
    loop.set_debug(True)
    with socket.socket() as blocking:
        assert blocking.gettimeout() is None

        async def main():
            with pytest.raises(ValueError):
                await getattr(loop, method)(blocking, *args)

        helpers.run(loop, main())


def test_blocking_sockets_work_outside_debug_mode_as_in_asyncio(loop):
    """Outside debug mode asyncio lets a blocking socket's own methods run
    (and block the loop): asyncssh's tests connect a plain socket.socket()
    with sock_connect.  Data is always there here, so nothing waits long."""
    async def main():
        with helpers.tcp_listener() as listener:
            blocking = socket.socket()
            with blocking:
                assert blocking.gettimeout() is None
                await loop.sock_connect(blocking, listener.getsockname())
                conn, _ = await loop.sock_accept(listener)
                with conn:
                    await loop.sock_sendall(blocking, b"ping" * 1000)
                    got = b""
                    while len(got) < 4000:
                        got += await loop.sock_recv(conn, 4000 - len(got))
                    assert got == b"ping" * 1000
                    await loop.sock_sendall(conn, b"pong")
                    assert await loop.sock_recv(blocking, 4) == b"pong"
                    await loop.sock_sendall(conn, b"into")
                    buf = bytearray(4)
                    assert await loop.sock_recv_into(blocking, buf) == 4 and buf == b"into"
                    # A socket with a timeout: its own TimeoutError, as asyncio.
                    blocking.settimeout(0.05)
                    with pytest.raises(TimeoutError):
                        await loop.sock_recv(blocking, 1)
                    with pytest.raises(TimeoutError):
                        await loop.sock_recv_into(blocking, buf)
    loop.set_debug(False)   # -X dev turns it on
    helpers.run(loop, main())


@pytest.mark.parametrize("method", ["sock_recv", "sock_recv_into", "sock_sendall"])
def test_sock_methods_on_a_closed_socket_raise_ebadf(loop, method):
    """A closed socket's fd reads as -1: the call fails with EBADF, as the
    socket's own method makes asyncio's fail, and reads no other file."""
    import errno
    a, b = helpers.socketpair()
    with a:
        b.close()
        arg = {"sock_recv": 100, "sock_recv_into": bytearray(100), "sock_sendall": b"x"}[method]

        async def main():
            with pytest.raises(OSError) as info:
                await getattr(loop, method)(b, arg)
            return info.value.errno

        assert helpers.run(loop, main()) == errno.EBADF


@helpers.windows_skip("the Windows loop does not read sockets directly")
def test_plain_sockets_are_read_directly():
    """loopx reads a socket.socket's fd and timeout from the object
    (csrc/pysocket.h) only if that agrees with the socket's methods; on the
    CPythons loopx supports it does, or sock_* pays two method calls per
    operation again."""
    from loopx import _loop
    assert _loop._socket_mirror_agrees()


def test_cancelled_sock_recv_removes_its_reader(loop):
    a, b = helpers.socketpair()
    with a, b:

        async def main():
            pending = asyncio.ensure_future(loop.sock_recv(b, 100))
            await asyncio.sleep(0.01)
            assert not pending.done()
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            await asyncio.sleep(0)
            # Nothing is left watching the fd.
            assert loop.remove_reader(b) is False
            # And the socket works for the next receive.
            a.send(b"after cancel")
            return await loop.sock_recv(b, 100)

        assert helpers.run(loop, main()) == b"after cancel"


async def _receive(loop, sock, method):
    """Up to 100 bytes from sock through loop.sock_recv or sock_recv_into."""
    if method == "sock_recv":
        return await loop.sock_recv(sock, 100)
    buf = bytearray(100)
    return bytes(buf[:await loop.sock_recv_into(sock, buf)])


_RECEIVE_METHODS = pytest.mark.parametrize("method", ["sock_recv", "sock_recv_into"])


@_RECEIVE_METHODS
def test_two_waiters_woken_by_one_message_both_finish(loop, method):
    """Two receives wait on one socket through two fds (a dup): one message
    wakes both, the first takes it, and the other -- woken for nothing --
    must go back to waiting (loopx: re-arm its one-shot watch) and get the
    next message."""
    import os

    a, b = helpers.socketpair()
    b2 = socket.socket(fileno=os.dup(b.fileno()))
    b2.setblocking(False)
    with a, b, b2:

        async def main():
            first = asyncio.ensure_future(_receive(loop, b, method))
            second = asyncio.ensure_future(_receive(loop, b2, method))
            await asyncio.sleep(0.01)
            a.send(b"one")
            done, _ = await asyncio.wait([first, second], timeout=helpers.PROMPT,
                                         return_when=asyncio.FIRST_COMPLETED)
            assert len(done) == 1, "one message finished both waits"
            await asyncio.sleep(0.02)   # both fds were reported ready by now
            a.send(b"two")
            got = await asyncio.wait_for(asyncio.gather(first, second), helpers.PROMPT)
            return sorted(got)

        assert helpers.run(loop, main()) == [b"one", b"two"]


@helpers.windows_skip("add_reader: asyncio's Windows (proactor) loop has none")
def test_fd_of_a_finished_sock_recv_serves_other_watchers(loop):
    """After a sock_recv finished (loopx keeps its kernel watch, inert), the
    fd is free: no reader is left, add_reader works and is the only one
    called, and the next sock_recv waits and finishes as usual."""
    a, b = helpers.socketpair()
    with a, b:

        async def main():
            for i in range(3):
                loop.call_soon(a.send, b"msg %d" % i)
                assert await loop.sock_recv(b, 100) == b"msg %d" % i
            assert loop.remove_reader(b) is False
            seen = loop.create_future()
            loop.add_reader(b, lambda: seen.done() or seen.set_result(b.recv(100)))
            a.send(b"to the reader")
            assert await asyncio.wait_for(seen, helpers.PROMPT) == b"to the reader"
            assert loop.remove_reader(b) is True
            loop.call_later(0.01, a.send, b"late")
            return await asyncio.wait_for(loop.sock_recv(b, 100), helpers.PROMPT)

        assert helpers.run(loop, main()) == b"late"


@helpers.windows_skip("add_reader and fd numbers: asyncio's Windows loop has none")
def test_finished_sock_recv_on_a_closed_socket_leaves_nothing_that_fires(loop):
    """The socket of a finished sock_recv is closed while a dup keeps its file
    open (as a child process's copy would), and its fd number is reused by a
    new socket.  The old file turning readable must wake nobody (a watch
    left armed on it would fire forever under the new fd's number), and the
    new socket must be watchable through both add_reader and sock_recv."""
    import os

    a, b = helpers.socketpair()
    c, d = helpers.socketpair()
    old_fd = b.fileno()
    spare = os.dup(old_fd)
    try:

        async def main():
            loop.call_soon(a.send, b"first")
            assert await loop.sock_recv(b, 100) == b"first"
            b.close()
            reused = socket.socket(fileno=os.dup2(c.fileno(), old_fd))
            reused.setblocking(False)
            with reused:
                calls = []
                loop.add_reader(reused, calls.append, None)
                a.send(b"readable old file")
                await asyncio.sleep(0.1)
                assert calls == [], "the old file's readiness reached the new fd"
                d.send(b"new")
                await helpers.async_wait_until(lambda: calls, helpers.PROMPT)
                assert loop.remove_reader(reused) is True
                assert reused.recv(100) == b"new"
                loop.call_later(0.01, d.send, b"newer")
                return await asyncio.wait_for(loop.sock_recv(reused, 100), helpers.PROMPT)

        assert helpers.run(loop, main()) == b"newer"
    finally:
        os.close(spare)
        for s in (a, c, d):
            s.close()


def test_sock_recv_and_sock_sendall_waiting_on_one_socket(loop):
    """A receive and a send both waiting on one socket (loopx: the one-shot
    read watch becomes a plain read+write watch, then one-shot again)."""
    a, b = helpers.socketpair()
    payload = helpers.pattern_bytes(BIG)
    with a, b:

        async def main():
            recv = asyncio.ensure_future(loop.sock_recv(b, 100))
            await asyncio.sleep(0.01)
            send = asyncio.ensure_future(loop.sock_sendall(b, payload))
            await asyncio.sleep(0.01)
            assert not send.done(), "the peer reads nothing yet: the send must wait"
            a.send(b"ping")
            assert await asyncio.wait_for(recv, helpers.PROMPT) == b"ping"
            received = await helpers.read_exactly(loop, a, len(payload))
            await asyncio.wait_for(send, helpers.PROMPT)
            loop.call_later(0.01, a.send, b"again")
            return received, await asyncio.wait_for(loop.sock_recv(b, 100), helpers.PROMPT)

        received, again = helpers.run(loop, main())
        assert received == payload
        assert again == b"again"


def test_sock_recv_into_a_buffer_released_while_waiting_raises(loop):
    """The buffer a waiting sock_recv_into was given goes bad (its
    memoryview released) before data comes: the caller gets the error
    instead of waiting forever."""
    a, b = helpers.socketpair()
    with a, b:

        async def main():
            view = memoryview(bytearray(100))
            pending = asyncio.ensure_future(loop.sock_recv_into(b, view))
            await asyncio.sleep(0.01)
            view.release()
            a.send(b"data")
            with pytest.raises(TypeError):   # the socket's own error for it
                await asyncio.wait_for(pending, helpers.PROMPT)
            return b.recv(100)

        assert helpers.run(loop, main()) == b"data"


@helpers.only("loopx")
@_RECEIVE_METHODS
def test_receive_keeps_one_inert_epoll_entry_between_calls(loop, method):
    """The point of loopx's one-shot read watch: between receives the socket
    keeps its epoll entry, inert (no events), so the next wait costs one
    re-arm instead of an add and a delete."""
    import os

    from loopx import _loop
    if _loop.POLLER != "epoll":
        pytest.skip(f"reads epoll's entries in /proc; this build polls with {_loop.POLLER}")

    def entries(fd):
        found = []
        for name in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{name}") != "anon_inode:[eventpoll]":
                    continue
                with open(f"/proc/self/fdinfo/{name}") as info:
                    for line in info:
                        fields = line.split()
                        if fields[:2] == ["tfd:", str(fd)]:
                            found.append(int(fields[3], 16))
            except OSError:
                pass
        return found

    a, b = helpers.socketpair()
    with a, b:

        async def main():
            assert entries(b.fileno()) == []
            pending = asyncio.ensure_future(_receive(loop, b, method))
            await asyncio.sleep(0.01)
            [armed] = entries(b.fileno())
            assert armed & select.EPOLLIN and armed & select.EPOLLONESHOT
            a.send(b"x")
            assert await pending == b"x"
            [parked] = entries(b.fileno())
            assert parked & (select.EPOLLIN | select.EPOLLOUT) == 0
            # A cancelled wait (its watch still armed) deletes the entry.
            pending = asyncio.ensure_future(_receive(loop, b, method))
            await asyncio.sleep(0.01)
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
            assert entries(b.fileno()) == []

        helpers.run(loop, main())


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_sock_recv_after_a_short_read_gets_what_came_meanwhile(loop, kind):
    """Data that arrives between a short read and the next sock_recv is
    that call's, in order (loopx's next call then waits for the poller
    instead of trying a recv first)."""
    async def main():
        a, b = helpers.socketpair() if kind == "unix" else await helpers.tcp_pair(loop)
        with a, b:
            sent = got = b""
            for size in (5, 1, 700, 3, 60000, 2):
                for message in (helpers.pattern_bytes(size), b"next"):
                    a.sendall(message)   # "next" is there before the call
                    sent += message
                    while len(got) < len(sent):
                        got += await asyncio.wait_for(loop.sock_recv(b, 100000), helpers.PROMPT)
            return sent, got

    sent, got = helpers.run(loop, main())
    assert got == sent


def test_sock_recv_on_a_reused_fd_number_gets_what_is_queued(loop):
    """A socket whose last read was short is closed and its fd number taken
    by another socket, with data already queued: the next sock_recv of the
    new socket gets it."""
    a, b = helpers.socketpair()
    with a:

        async def first():
            pending = asyncio.ensure_future(loop.sock_recv(b, 100))
            await asyncio.sleep(0.01)
            a.send(b"x")
            return await asyncio.wait_for(pending, helpers.PROMPT)

        assert helpers.run(loop, first()) == b"x"
        c, d = helpers.socketpair()   # made first: their numbers are not b's
        fd = b.fileno()
        b.close()
    with c, d:
        os.dup2(d.fileno(), fd)
        with socket.socket(fileno=fd) as e:
            e.setblocking(False)
            c.send(b"queued")
            assert helpers.run(loop, asyncio.wait_for(loop.sock_recv(e, 100), helpers.PROMPT)) == b"queued"


@helpers.only("loopx")
@pytest.mark.parametrize("kind, last_read, waits", [
    (socket.SOCK_STREAM, "short", True),
    (socket.SOCK_STREAM, "full", False),
    (socket.SOCK_DGRAM, "short", False),
], ids=["stream-short", "stream-full", "datagram-short"])
def test_sock_recv_after_draining_a_stream_waits_for_the_poller(loop, kind, last_read, waits):
    """After a read that drained a byte stream (less came than was asked
    for), loopx's next sock_recv waits for readiness instead of trying a
    recv that would most often fail with EAGAIN: even with data there, it
    finishes after a poll, not within the call.  A full read may leave more
    behind, and one datagram says nothing of the next: then the call tries
    the recv first, as asyncio's does."""
    a, b = helpers.socketpair(type=kind)
    with a, b:

        async def main():
            # The first read waits, so the loop knows the fd (its hint
            # lives in the fd table).
            first = asyncio.ensure_future(loop.sock_recv(b, 5 if last_read == "full" else 100))
            await asyncio.sleep(0.01)
            a.send(b"12345")
            assert await asyncio.wait_for(first, helpers.PROMPT) == b"12345"
            a.send(b"more")
            pending = asyncio.ensure_future(loop.sock_recv(b, 100))
            await asyncio.sleep(0)   # pending's first step runs before this returns
            finished_within_the_call = pending.done()
            assert await asyncio.wait_for(pending, helpers.PROMPT) == b"more"
            return finished_within_the_call

        assert helpers.run(loop, main()) is not waits


def test_cancelled_sock_accept_removes_its_reader(loop):
    async def main():
        with helpers.tcp_listener() as listener:
            pending = asyncio.ensure_future(loop.sock_accept(listener))
            await asyncio.sleep(0.01)
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            await asyncio.sleep(0)
            return loop.remove_reader(listener)

    assert helpers.run(loop, main()) is False


def test_cancelled_sock_sendall_removes_its_writer(loop):
    a, b = helpers.socketpair()
    with a, b:

        async def main():
            pending = asyncio.ensure_future(loop.sock_sendall(a, b"x" * BIG))
            await asyncio.sleep(0.02)
            assert not pending.done()  # nobody reads: the buffer is full
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            await asyncio.sleep(0)
            return loop.remove_writer(a)

        assert helpers.run(loop, main()) is False


def test_sock_recv_timeout_via_wait_for(loop):
    a, b = helpers.socketpair()
    with a, b:

        async def main():
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(loop.sock_recv(b, 10), 0.05)
            a.send(b"ok")
            return await loop.sock_recv(b, 10)

        assert helpers.run(loop, main()) == b"ok"


# -- UDP ----------------------------------------------------------------------

def test_sock_sendto_and_recvfrom(loop):
    async def main():
        with helpers.udp_socket() as rx, helpers.udp_socket() as tx:
            sent = await loop.sock_sendto(tx, b"datagram", rx.getsockname())
            data, addr = await loop.sock_recvfrom(rx, 100)
            return sent, data, addr, tx.getsockname()

    sent, data, addr, tx_addr = helpers.run(loop, main())
    assert sent == 8
    assert data == b"datagram"
    assert addr == tx_addr


def test_sock_recvfrom_into(loop):
    async def main():
        with helpers.udp_socket() as rx, helpers.udp_socket() as tx:
            loop.call_later(0.02, tx.sendto, b"0123456789", rx.getsockname())
            buf = bytearray(32)
            nbytes, addr = await loop.sock_recvfrom_into(rx, buf)
            loop.call_later(0.0, tx.sendto, b"abcdef", rx.getsockname())
            small = bytearray(32)
            n2, _ = await loop.sock_recvfrom_into(rx, small, 3)
            return nbytes, bytes(buf[:nbytes]), addr == tx.getsockname(), n2, bytes(small[:n2])

    assert helpers.run(loop, main()) == (10, b"0123456789", True, 3, b"abc")


def test_udp_many_datagrams_keep_boundaries(loop):
    async def main():
        with helpers.udp_socket() as rx, helpers.udp_socket() as tx:
            for i in range(100):
                await loop.sock_sendto(tx, str(i).encode(), rx.getsockname())
            got = []
            for _ in range(100):
                data, _ = await loop.sock_recvfrom(rx, 100)
                got.append(data)
            return got

    assert helpers.run(loop, main()) == [str(i).encode() for i in range(100)]


def test_cancelled_sock_recvfrom_removes_its_reader(loop):
    async def main():
        with helpers.udp_socket() as rx:
            pending = asyncio.ensure_future(loop.sock_recvfrom(rx, 10))
            await asyncio.sleep(0.01)
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            await asyncio.sleep(0)
            return loop.remove_reader(rx)

    assert helpers.run(loop, main()) is False


# -- sendfile -----------------------------------------------------------------

def _temp_file_with(data):
    f = tempfile.TemporaryFile()
    f.write(data)
    f.seek(0)
    return f


@pytest.mark.parametrize(
    "offset, count", [(0, None), (1000, None), (12345, 100_000), (0, 1), (5000, 64 * 1024 * 1024)]
)
def test_sock_sendfile_of_a_real_file(loop, offset, count):
    payload = helpers.pattern_bytes(3 * 1024 * 1024 + 17, seed=2)
    expected = payload[offset:] if count is None else payload[offset:offset + count]

    async def main():
        a, b = await helpers.tcp_pair(loop)
        with a, b, _temp_file_with(payload) as f:

            async def send():
                sent = await loop.sock_sendfile(a, f, offset, count)
                a.shutdown(socket.SHUT_WR)
                return sent

            sent, received = await asyncio.gather(send(), helpers.read_exactly(loop, b, len(payload) + 1))
            return sent, received, f.tell()

    sent, received, position = helpers.run(loop, main())
    assert sent == len(expected)
    assert hashlib.sha256(received).digest() == hashlib.sha256(expected).digest()
    assert position == offset + len(expected)


def test_sock_sendfile_falls_back_for_non_files(loop):
    payload = b"in-memory file " * 1000

    async def main():
        a, b = await helpers.tcp_pair(loop)
        with a, b:

            async def send():
                sent = await loop.sock_sendfile(a, io.BytesIO(payload))
                a.shutdown(socket.SHUT_WR)
                return sent

            return await asyncio.gather(send(), helpers.read_exactly(loop, b, len(payload) + 1))

    sent, received = helpers.run(loop, main())
    assert sent == len(payload)
    assert received == payload


def test_sock_sendfile_without_fallback_for_non_files(loop):
    async def main():
        a, b = await helpers.tcp_pair(loop)
        with a, b:
            with pytest.raises(asyncio.SendfileNotAvailableError):
                await loop.sock_sendfile(a, io.BytesIO(b"x"), fallback=False)

    helpers.run(loop, main())


def test_sock_sendfile_rejects_datagram_sockets(loop):
    async def main():
        with helpers.udp_socket() as udp, _temp_file_with(b"data") as f:
            with pytest.raises(ValueError):
                await loop.sock_sendfile(udp, f)

    helpers.run(loop, main())


@pytest.mark.parametrize("content, offset", [(b"", 0), (b"short", 100)], ids=["empty-file", "offset-past-end"])
def test_sock_sendfile_with_nothing_to_send(loop, content, offset):
    async def main():
        a, b = await helpers.tcp_pair(loop)
        with a, b, _temp_file_with(content) as f:
            sent = await loop.sock_sendfile(a, f, offset)
            return sent, f.tell()

    assert helpers.run(loop, main()) == (0, 0)
