"""add_reader / remove_reader / add_writer / remove_writer."""
import asyncio
import os
import socket
import tempfile
import weakref

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import helpers

helpers.skip_module_on_windows(
    "add_reader/add_writer: asyncio's Windows (proactor) loop has none, and neither has loopx's")


class FileLike:
    """An object that is not a socket but has fileno()."""

    def __init__(self, fd):
        self._fd = fd

    def fileno(self):
        return self._fd


def _wait_for(loop, event_list, count=1):
    """Run the loop until event_list has ``count`` items (bounded)."""
    def check():
        if len(event_list) >= count:
            loop.stop()
        else:
            loop.call_later(0.001, check)

    loop.call_soon(check)
    assert helpers.run_forever(loop, timeout=helpers.PROMPT), f"only {len(event_list)} events"


def test_reader_on_a_pipe(loop):
    r, w = os.pipe()
    try:
        os.set_blocking(r, False)
        got = []

        def on_readable(tag):
            got.append((tag, os.read(r, 100)))

        loop.add_reader(r, on_readable, "tag")
        loop.call_later(0.01, os.write, w, b"hello")
        _wait_for(loop, got)
        assert got == [("tag", b"hello")]
        assert loop.remove_reader(r) is True
        assert loop.remove_reader(r) is False
    finally:
        os.close(r)
        os.close(w)


def test_writer_on_a_pipe(loop):
    r, w = os.pipe()
    try:
        got = []

        def on_writable():
            got.append(os.write(w, b"x"))
            loop.remove_writer(w)

        loop.add_writer(w, on_writable)
        _wait_for(loop, got)
        assert got == [1]
        assert os.read(r, 10) == b"x"
        assert loop.remove_writer(w) is False
    finally:
        os.close(r)
        os.close(w)


def test_reader_and_writer_with_socket_objects(loop):
    a, b = helpers.socketpair()
    with a, b:
        events = []
        loop.add_writer(a, lambda: (events.append("a-writable"), loop.remove_writer(a)))
        loop.add_reader(b, lambda: events.append(("b-read", b.recv(100))))
        _wait_for(loop, events)
        a.send(b"ping")
        _wait_for(loop, events, 2)
        assert events == ["a-writable", ("b-read", b"ping")]
        assert loop.remove_reader(b) is True
        assert loop.remove_writer(a) is False


def test_file_like_object_with_fileno(loop):
    a, b = helpers.socketpair()
    with a, b:
        got = []
        obj = FileLike(b.fileno())
        loop.add_reader(obj, lambda: got.append(b.recv(10)))
        a.send(b"abc")
        _wait_for(loop, got)
        assert got == [b"abc"]
        # Registration is by fd: the int and the object name the same watcher.
        assert loop.remove_reader(b.fileno()) is True
        assert loop.remove_reader(obj) is False


def test_reader_and_writer_on_the_same_fd(loop):
    a, b = helpers.socketpair()
    with a, b:
        events = []
        loop.add_reader(a, lambda: events.append(("read", a.recv(10))))
        loop.add_writer(a, lambda: (events.append("write"), loop.remove_writer(a)))
        _wait_for(loop, events)
        assert events == ["write"]
        b.send(b"z")
        _wait_for(loop, events, 2)
        assert events == ["write", ("read", b"z")]
        assert loop.remove_writer(a) is False
        assert loop.remove_reader(a) is True


def test_removing_the_writer_keeps_the_reader(loop):
    a, b = helpers.socketpair()
    with a, b:
        got = []
        loop.add_reader(a, lambda: got.append(a.recv(10)))
        loop.add_writer(a, lambda: None)
        assert loop.remove_writer(a) is True
        b.send(b"still")
        _wait_for(loop, got)
        assert got == [b"still"]
        assert loop.remove_reader(a) is True


def test_replacing_a_reader(loop):
    a, b = helpers.socketpair()
    with a, b:
        got = []
        loop.add_reader(a, lambda: got.append(("old", a.recv(10))))
        loop.add_reader(a, lambda: got.append(("new", a.recv(10))))
        b.send(b"data")
        _wait_for(loop, got)
        assert got == [("new", b"data")]
        assert loop.remove_reader(a) is True
        assert loop.remove_reader(a) is False


def test_replacing_a_writer(loop):
    a, b = helpers.socketpair()
    with a, b:
        got = []
        loop.add_writer(a, lambda: got.append("old"))
        loop.add_writer(a, lambda: (got.append("new"), loop.remove_writer(a)))
        _wait_for(loop, got)
        assert got == ["new"]


def test_reader_is_level_triggered(loop):
    """A reader that does not drain the fd is called again."""
    a, b = helpers.socketpair()
    with a, b:
        got = []

        def read_one_byte():
            got.append(a.recv(1))

        loop.add_reader(a, read_one_byte)
        b.send(b"abc")
        _wait_for(loop, got, 3)
        assert got == [b"a", b"b", b"c"]
        loop.remove_reader(a)


def test_removing_a_reader_inside_its_callback(loop):
    a, b = helpers.socketpair()
    with a, b:
        got = []

        def once():
            got.append(a.recv(1))
            assert loop.remove_reader(a) is True

        loop.add_reader(a, once)
        b.send(b"xyz")
        _wait_for(loop, got)
        helpers.run_once(loop)
        loop.call_later(0.02, loop.stop)
        helpers.run_forever(loop)
        assert got == [b"x"]


def test_remove_of_never_added_fd(loop):
    a, b = helpers.socketpair()
    with a, b:
        assert loop.remove_reader(a) is False
        assert loop.remove_writer(a) is False
        assert loop.remove_reader(a.fileno()) is False


def test_peer_close_makes_the_reader_fire(loop):
    a, b = helpers.socketpair()
    with a:
        got = []
        loop.add_reader(a, lambda: (got.append(a.recv(10)), loop.remove_reader(a)))
        b.close()
        _wait_for(loop, got)
        assert got == [b""]


def test_fd_reused_after_close_without_remove(loop):
    """Closing a watched fd and removing its reader afterwards must leave no
    stale registration: a new fd that gets the same number works."""
    a, b = helpers.socketpair()
    number = a.fileno()
    loop.add_reader(number, lambda: None)
    a.close()
    b.close()
    loop.remove_reader(number)
    _assert_a_new_fd_can_be_watched(loop)


def _assert_a_new_fd_can_be_watched(loop):
    # It gets the number just freed: no stale state of the old fd may remain.
    c, d = helpers.socketpair()
    with c, d:
        got = []
        loop.add_reader(c, lambda: got.append(c.recv(10)))
        d.send(b"reused")
        _wait_for(loop, got)
        assert got == [b"reused"]
        loop.remove_reader(c)


@pytest.mark.parametrize("method", ["reader", "writer"])
def test_removing_the_watch_of_a_socket_closed_meanwhile(loop, method):
    """anyio's pattern: add_reader(sock), another task closes sock, then
    remove_reader(sock) when the wait ends.  The watch is found by the
    object (its fileno() is -1 now), as selectors find their key, and the
    fd number's next owner can be watched."""
    add = getattr(loop, "add_" + method)
    remove = getattr(loop, "remove_" + method)
    a, b = helpers.socketpair()
    add(a, lambda: None)
    a.close()
    b.close()
    assert remove(a) is True
    with pytest.raises(ValueError):   # gone: neither the fd nor the object is known
        remove(a)
    _assert_a_new_fd_can_be_watched(loop)


@helpers.only("loopx")
def test_closed_socket_with_both_watches_keeps_the_other_until_removed(loop):
    """asyncio's selector raises EBADF here: taking one direction off a
    closed socket's key makes it epoll_ctl(MOD) the dead fd.  loopx takes
    that as done, as it does for the last direction."""
    a, b = helpers.socketpair()
    loop.add_reader(a, lambda: None)
    loop.add_writer(a, lambda: None)
    a.close()
    b.close()
    assert loop.remove_reader(a) is True
    assert loop.remove_writer(a) is True
    with pytest.raises(ValueError):
        loop.remove_writer(a)


def test_closing_the_loop_lets_go_of_watched_sockets(new_loop):
    # The watch's callback and the object it was watched by both go.
    loop = new_loop()
    a, b = helpers.socketpair()
    loop.add_reader(a, lambda: None)
    loop.close()
    ref = weakref.ref(a)
    a.close()
    b.close()
    del a
    assert ref() is None


@pytest.mark.parametrize("method", ["remove_reader", "remove_writer"])
def test_removing_a_closed_socket_that_was_never_watched(loop, method):
    # selectors find no key for it, and say so with the fd's ValueError.
    a, b = helpers.socketpair()
    a.close()
    b.close()
    with pytest.raises(ValueError):
        getattr(loop, method)(a)


def test_many_fds_watched_at_once(loop):
    pairs = [helpers.socketpair() for _ in range(200)]
    try:
        got = []
        for i, (a, _) in enumerate(pairs):
            loop.add_reader(a, lambda a=a, i=i: (got.append((i, a.recv(10))), loop.remove_reader(a)))
        for i, (_, b) in enumerate(pairs):
            b.send(str(i).encode())
        _wait_for(loop, got, len(pairs))
        assert sorted(got) == sorted((i, str(i).encode()) for i in range(len(pairs)))
    finally:
        for a, b in pairs:
            a.close()
            b.close()


# -- bad input: the same exception types as asyncio's selector loop ---------

@pytest.mark.parametrize("method", ["add_reader", "add_writer"])
def test_negative_fd(loop, method):
    with pytest.raises(ValueError):
        getattr(loop, method)(-1, lambda: None)


@pytest.mark.parametrize("method", ["remove_reader", "remove_writer"])
def test_remove_negative_fd(loop, method):
    with pytest.raises(ValueError):
        getattr(loop, method)(-1)


@pytest.mark.parametrize("method", ["add_reader", "add_writer"])
def test_closed_fd(loop, method):
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError) as info:
        getattr(loop, method)(r, lambda: None)
    assert info.value.errno == 9  # EBADF
    assert getattr(loop, method.replace("add", "remove"))(r) is False


@pytest.mark.parametrize("method", ["add_reader", "add_writer", "remove_reader", "remove_writer"])
@pytest.mark.parametrize("bad", [object(), "not a file", 1.5], ids=["object", "str", "float"])
def test_object_without_fileno(loop, method, bad):
    args = (bad, lambda: None) if method.startswith("add") else (bad,)
    with pytest.raises(ValueError):
        getattr(loop, method)(*args)


@pytest.mark.parametrize("method", ["add_reader", "add_writer"])
def test_regular_file(loop, method):
    """epoll refuses regular files (EPERM); asyncio's selector loop raises
    PermissionError and keeps no registration."""
    with tempfile.TemporaryFile() as f:
        with pytest.raises(PermissionError):
            getattr(loop, method)(f.fileno(), lambda: None)
        assert getattr(loop, method.replace("add", "remove"))(f.fileno()) is False


def test_callback_exception_in_a_reader_goes_to_the_handler(loop):
    a, b = helpers.socketpair()
    with a, b:
        contexts = []
        loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

        def bad_reader():
            a.recv(10)
            raise KeyError("reader")

        loop.add_reader(a, bad_reader)
        b.send(b"x")
        _wait_for(loop, contexts)
        assert isinstance(contexts[0]["exception"], KeyError)
        loop.remove_reader(a)


def test_udp_reader(loop):
    with helpers.udp_socket() as rx, helpers.udp_socket() as tx:
        got = []
        loop.add_reader(rx, lambda: got.append(rx.recvfrom(100)))
        tx.sendto(b"dgram", rx.getsockname())
        _wait_for(loop, got)
        assert got == [(b"dgram", tx.getsockname())]
        loop.remove_reader(rx)


def test_tcp_listener_reader_on_incoming_connection(loop):
    with helpers.tcp_listener() as listener:
        got = []

        def on_accept():
            conn, _ = listener.accept()
            got.append(conn)

        loop.add_reader(listener, on_accept)
        client = socket.create_connection(listener.getsockname())
        with client:
            _wait_for(loop, got)
            loop.remove_reader(listener)
            got[0].close()


def test_high_numbered_fd(loop):
    """The fd table grows to whatever fd number the process can have."""
    a, b = helpers.socketpair()
    with a, b:
        high = os.dup2(a.fileno(), 5000)
        try:
            got = []
            loop.add_reader(high, lambda: got.append(os.read(high, 10)))
            b.send(b"high")
            _wait_for(loop, got)
            assert got == [b"high"]
            assert loop.remove_reader(high) is True
        finally:
            os.close(high)


def test_readers_removing_each_other_in_one_iteration(loop):
    """Both fds are ready in the same iteration; whichever callback runs
    first removes the other's reader, so exactly one runs."""
    (a1, b1), (a2, b2) = helpers.socketpair(), helpers.socketpair()
    with a1, b1, a2, b2:
        ran = []

        def first():
            ran.append("first")
            loop.remove_reader(a2)

        def second():
            ran.append("second")
            loop.remove_reader(a1)

        loop.add_reader(a1, first)
        loop.add_reader(a2, second)
        b1.send(b"x")
        b2.send(b"y")
        loop.call_later(0.05, loop.stop)
        assert helpers.run_forever(loop)
        assert len(ran) >= 1 and len(set(ran)) == 1
        loop.remove_reader(a1)
        loop.remove_reader(a2)


def test_busy_ready_queue_does_not_starve_io(loop):
    """A callback that reschedules itself forever must not keep a ready fd
    from being served."""
    a, b = helpers.socketpair()
    with a, b:
        got = []

        def spin():
            if not got:
                loop.call_soon(spin)

        loop.add_reader(a, lambda: (got.append(a.recv(10)), loop.stop()))
        loop.call_soon(spin)
        loop.call_soon(b.send, b"io")
        helpers.run_forever(loop, helpers.PROMPT)
        assert got == [b"io"]
        loop.remove_reader(a)


# -- property: the watcher table behaves like a dict of (fd, direction) -------

ops = st.lists(
    st.tuples(st.sampled_from(["add_reader", "add_writer", "remove_reader", "remove_writer"]),
              st.integers(0, 3)),
    max_size=40,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=ops)
def test_property_watchers_match_a_model(new_loop, sequence):
    loop = new_loop()
    pairs = [helpers.socketpair() for _ in range(4)]
    try:
        model = {}  # (index, direction) -> tag of the registered callback
        fired = set()
        for step, (op, index) in enumerate(sequence):
            sock = pairs[index][0]
            direction = op.split("_")[1]
            if op.startswith("add"):
                tag = (index, direction, step)
                getattr(loop, op)(sock, fired.add, tag)
                model[(index, direction)] = tag
            else:
                assert getattr(loop, op)(sock) is ((index, direction) in model)
                model.pop((index, direction), None)
        for _, peer in pairs:
            peer.send(b"!")  # every socket is now readable (and writable)
        for _ in range(3):
            helpers.run_once(loop)
        assert fired == set(model.values())
        for (index, direction) in model:
            assert getattr(loop, f"remove_{direction}")(pairs[index][0]) is True
    finally:
        for a, b in pairs:
            a.close()
            b.close()
        loop.close()


def test_removed_watcher_releases_its_callback_arguments(loop):
    a, b = helpers.socketpair()
    with a, b:
        payload = helpers.Payload()
        ref = weakref.ref(payload)
        loop.add_reader(a, lambda p: None, payload)
        loop.add_writer(a, lambda p: None, payload)
        del payload
        assert loop.remove_reader(a) is True
        assert loop.remove_writer(a) is True
        assert helpers.released(ref)


def test_ready_io_runs_before_callbacks_scheduled_in_the_same_iteration(loop):
    """asyncio polls at the start of every iteration, so an fd that is ready
    then has its callback queued ahead of anything the iteration's callbacks
    schedule.  Programs depend on that order (asyncssh's stdin redirection:
    a new pipe's waiting data before the old pipe's connection_lost)."""
    log = []
    r, w = helpers.socketpair()
    w.send(b"x")

    async def main():
        await asyncio.sleep(0.01)      # a fresh iteration, polled
        woken = loop.create_future()
        loop.call_soon(loop.add_reader, r, lambda: (log.append("reader"), loop.remove_reader(r)))
        loop.call_soon(woken.set_result, None)
        await woken                     # the task runs an iteration later
        loop.call_soon(log.append, "call_soon")
        await asyncio.sleep(0.01)

    with r, w:
        helpers.run(loop, main())
    assert log == ["reader", "call_soon"]
