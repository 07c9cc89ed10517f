"""What a datagram protocol does per datagram, in any mix, on both loops.

asyncio reads one datagram per loop iteration, so whatever a protocol's
datagram_received() schedules runs before the next datagram is delivered.
loopx reads a queue of datagrams with one recvmmsg() and hands them over in
batches only while that cannot be told apart (datagram.pxi, _read_batch).
Here hypothesis sends bursts of datagrams, each telling the protocol what to
do when it arrives: schedule callbacks, a timer or a task, pause reading
until a callback resumes it, raise, answer, close the transport.  Each burst
is queued at the receiver before its loop looks, and both loops must then
show exactly the same sequence of calls: datagrams, callbacks, timers, task
steps, exceptions, connection_lost -- and the peer the same answers.
"""
import asyncio
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import helpers

# pause_reading() on datagram transports: 3.12, and late 3.11 patch releases.
_CAN_PAUSE = "pause_reading" in asyncio.selector_events._SelectorTransport.__dict__

_ACTIONS = ["nothing", "soon", "soon_then_soon", "later0", "task", "raise", "reply",
            "close"] + (["pause_until_soon"] if _CAN_PAUSE else [])
_BURSTS = st.lists(st.lists(st.lists(st.sampled_from(_ACTIONS), max_size=2), min_size=1, max_size=8),
                   min_size=1, max_size=4)


class _Scripted(asyncio.DatagramProtocol):
    """Datagram b"<n>" runs actions[n]; every call lands in log."""

    def __init__(self, loop, actions):
        self.loop = loop
        self.actions = actions
        self.log = []
        self.transport = None
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        n = int(data)
        self.log.append(("datagram", n))
        for action in self.actions[n]:
            self._act(action, n, addr)

    def _act(self, action, n, addr):
        log, loop = self.log.append, self.loop
        if action == "soon":
            loop.call_soon(log, ("soon", n))
        elif action == "soon_then_soon":
            loop.call_soon(lambda: (log(("soon", n)), loop.call_soon(log, ("soon again", n))))
        elif action == "later0":
            loop.call_later(0, log, ("timer", n))
        elif action == "task":
            async def steps():
                log(("task", n))
                await asyncio.sleep(0)
                log(("task again", n))
            loop.create_task(steps())
        elif action == "raise":
            raise RuntimeError(n)
        elif action == "reply":
            self.transport.sendto(b"answer %d" % n, addr)
        elif action == "close":
            self.transport.close()
        elif action == "pause_until_soon":
            self.transport.pause_reading()
            loop.call_soon(lambda: (log(("resume", n)), self.transport.resume_reading()))

    def error_received(self, exc):
        self.log.append(("error_received", type(exc).__name__))

    def connection_lost(self, exc):
        self.log.append(("lost", exc))
        self.lost.set_result(None)


async def _play(loop, bursts, before=None):
    """Send the bursts (waiting for each to be taken in); the protocol's log
    and the answers.  before(proto), if given, runs before the first burst."""
    actions = [a for burst in bursts for a in burst]
    proto = _Scripted(loop, actions)
    loop.set_exception_handler(
        lambda _, context: proto.log.append(("handler", type(context.get("exception")).__name__)))
    transport, _ = await loop.create_datagram_endpoint(lambda: proto, local_addr=("127.0.0.1", 0))
    address = transport.get_extra_info("sockname")
    if before is not None:
        before(proto)
    answers = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
        first = 0
        for burst in bursts:
            # Blocking sends: on loopback each is queued at the receiver when
            # sendto() returns, so the loop finds the whole burst at once.
            for n in range(first, first + len(burst)):
                peer.sendto(b"%d" % n, address)
            first += len(burst)
            await helpers.async_wait_until(
                lambda: proto.lost.done() or ("datagram", first - 1) in proto.log)
            for _ in range(5):   # what the last datagram scheduled
                await asyncio.sleep(0)
            if proto.lost.done():
                break
        if not proto.lost.done():
            transport.close()
            await proto.lost
        while True:
            try:
                answers.append(peer.recv(100))
            except BlockingIOError:
                break
    return proto.log, answers


@settings(max_examples=helpers.examples(60), deadline=None)
@given(bursts=_BURSTS)
def test_property_datagram_callbacks_keep_asyncios_order(bursts):
    results = {}
    for impl in helpers.IMPLS:
        loop = helpers.loop_factory(impl)()
        try:
            results[impl] = helpers.run(loop, _play(loop, bursts))
        finally:
            loop.close()
    assert results["loopx"] == results["asyncio"]


# The cases that found loopx's two ordering bugs, on each loop by itself.

def test_a_timer_a_datagram_starts_runs_after_the_next_datagram(loop):
    """call_later(0) in datagram_received: asyncio's next iteration reads the
    next datagram, then runs the timer, so it lands between datagrams 1 and 2."""
    log, _ = helpers.run(loop, _play(loop, [[["later0"], [], []]]))
    assert log == [("datagram", 0), ("datagram", 1), ("timer", 0), ("datagram", 2), ("lost", None)]


def test_callbacks_scheduled_after_a_burst_stopped_come_before_the_rest(loop):
    """A timer due in the same iteration as the burst runs after the first
    datagram and schedules a callback; that callback, like the datagram's own,
    runs before the second datagram (asyncio reads it from the next poll)."""
    def before(proto):
        def timer():
            proto.log.append("timer")
            proto.loop.call_soon(proto.log.append, "timer's callback")
        proto.loop.call_later(0, timer)

    log, _ = helpers.run(loop, _play(loop, [[["soon"], []]], before))
    assert log == [("datagram", 0), "timer", ("soon", 0), "timer's callback", ("datagram", 1),
                   ("lost", None)]


def test_datagrams_held_while_paused_come_after_the_callbacks_of_resuming(loop):
    """Paused in datagram_received and resumed by a callback, which another
    callback follows with a callback of its own: the next datagram comes after
    that one, from the next poll, as on asyncio (where it stayed in the socket)."""
    if not _CAN_PAUSE:
        pytest.skip("this Python's datagram transports cannot pause reading")
    log, _ = helpers.run(loop, _play(loop, [[["pause_until_soon", "soon_then_soon"], []]]))
    assert log == [("datagram", 0), ("resume", 0), ("soon", 0), ("soon again", 0), ("datagram", 1),
                   ("lost", None)]
