"""Every way an fd's watch can change hands, in any order, on both loops.

loopx gives a waiting sock_recv or sock_recv_into a one-shot epoll watch and
keeps the fired, inert entry between calls instead of deleting it
(csrc/poller.h).  That adds states to each fd (armed one-shot, fired,
parked) beside the plain read and write interest.  Here hypothesis drives
one socket through random sequences of what programs do to it -- receive,
cancel a receive, add and remove a reader or a writer, receive while a
writer waits, two receivers woken by one message, close it and hand its fd
number to a new socket while a duplicate keeps the old file open -- and
after every step requires the same as asyncio: the awaited thing happens,
nothing else is called, and no watch is left behind.
"""
import asyncio
import os
import socket

from hypothesis import given, settings
from hypothesis import strategies as st

import helpers

helpers.skip_module_on_windows("add_reader and fd numbers")

_STEPS = st.lists(st.sampled_from([
    "recv", "recv_after_wait", "recv_into_after_wait", "cancel_recv",
    "cancel_recv_into", "reader", "writer",
    "recv_with_writer", "two_receivers", "reuse_fd", "reuse_fd_keeping_dup",
]), min_size=1, max_size=10)


@settings(max_examples=40, deadline=None)
@given(steps=_STEPS)
def test_property_fd_watches_in_any_order(steps):
    for impl in helpers.IMPLS:
        loop = helpers.loop_factory(impl)()
        try:
            helpers.run(loop, _drive(loop, steps))
        finally:
            loop.close()


class _Socket:
    """The socket under test (b) and its peer (a); reuse_fd swaps in a new
    pair, giving the new b the old b's fd number."""

    def __init__(self):
        self.a, self.b = helpers.socketpair()
        self.spares = []   # fds keeping closed sockets' files open
        self.count = 0

    def message(self):
        self.count += 1
        return b"message %d" % self.count

    def reuse_fd(self, keep_dup):
        fd = self.b.fileno()
        if keep_dup:
            self.spares.append(os.dup(fd))
        a, c = helpers.socketpair()   # before the close: they must not get fd
        self.b.close()
        self.b = socket.socket(fileno=os.dup2(c.fileno(), fd))
        self.b.setblocking(False)
        c.close()
        if keep_dup:
            # The old file turns readable: nothing may hear of it.
            self.a.send(b"to the old file")
        self.a.close()
        self.a = a

    def close(self):
        self.a.close()
        self.b.close()
        for fd in self.spares:
            os.close(fd)


async def _drive(loop, steps):
    s = _Socket()
    stray = []
    try:
        for step in steps:
            await _step(loop, s, step, stray)
            # Nothing left watching, nothing called that was not asked for.
            assert loop.remove_reader(s.b) is False, step
            assert loop.remove_writer(s.b) is False, step
            await asyncio.sleep(0.005)
            assert stray == [], step
    finally:
        s.close()


async def _received(loop, sock, timeout=helpers.PROMPT):
    return await asyncio.wait_for(loop.sock_recv(sock, 100), timeout)


async def _step(loop, s, step, stray):
    b = s.b
    if step == "recv":
        msg = s.message()
        s.a.send(msg)
        assert await _received(loop, b) == msg
    elif step == "recv_after_wait":
        msg = s.message()
        loop.call_later(0.005, s.a.send, msg)
        assert await _received(loop, b) == msg
    elif step == "recv_into_after_wait":
        msg = s.message()
        loop.call_later(0.005, s.a.send, msg)
        buf = bytearray(100)
        n = await asyncio.wait_for(loop.sock_recv_into(b, buf), helpers.PROMPT)
        assert buf[:n] == msg
    elif step in ("cancel_recv", "cancel_recv_into"):
        if step == "cancel_recv":
            pending = asyncio.ensure_future(loop.sock_recv(b, 100))
        else:
            pending = asyncio.ensure_future(loop.sock_recv_into(b, bytearray(100)))
        await asyncio.sleep(0.002)
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        assert pending.cancelled()
    elif step == "reader":
        msg = s.message()
        seen = loop.create_future()
        loop.add_reader(b, lambda: seen.done() or seen.set_result(b.recv(100)))
        s.a.send(msg)
        assert await asyncio.wait_for(seen, helpers.PROMPT) == msg
        assert loop.remove_reader(b) is True
    elif step == "writer":
        seen = loop.create_future()
        loop.add_writer(b, lambda: seen.done() or seen.set_result(True))
        await asyncio.wait_for(seen, helpers.PROMPT)
        assert loop.remove_writer(b) is True
    elif step == "recv_with_writer":
        msg = s.message()
        pending = asyncio.ensure_future(loop.sock_recv(b, 100))
        await asyncio.sleep(0.002)
        writable = loop.create_future()
        loop.add_writer(b, lambda: writable.done() or writable.set_result(True))
        await asyncio.wait_for(writable, helpers.PROMPT)
        assert not pending.done()
        s.a.send(msg)
        assert await asyncio.wait_for(pending, helpers.PROMPT) == msg
        assert loop.remove_writer(b) is True
    elif step == "two_receivers":
        b2 = socket.socket(fileno=os.dup(b.fileno()))
        b2.setblocking(False)
        with b2:
            first = asyncio.ensure_future(loop.sock_recv(b, 100))
            second = asyncio.ensure_future(loop.sock_recv(b2, 100))
            await asyncio.sleep(0.002)
            msgs = [s.message(), s.message()]
            s.a.send(msgs[0])
            await asyncio.wait([first, second], timeout=helpers.PROMPT,
                               return_when=asyncio.FIRST_COMPLETED)
            await asyncio.sleep(0.005)
            s.a.send(msgs[1])
            got = await asyncio.wait_for(asyncio.gather(first, second), helpers.PROMPT)
            assert sorted(got) == sorted(msgs)
            assert loop.remove_reader(b2) is False
    elif step in ("reuse_fd", "reuse_fd_keeping_dup"):
        s.reuse_fd(step == "reuse_fd_keeping_dup")
        # A reader on the new socket hears only the new socket.
        loop.add_reader(s.b, stray.append, "reader on the new socket")
        await asyncio.sleep(0.01)
        assert loop.remove_reader(s.b) is True
    else:
        raise AssertionError(step)
