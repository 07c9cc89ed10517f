"""Child processes and fork() through the public API, on both loops.

Tests that need subprocess pipes (stdout=PIPE, communicate) live with the pipe
transports; these cover spawning, exit codes, signals to children, errors and
what a forked child may do with its parent's loop.
"""
import asyncio
import os
import signal
import sys

import pytest

import helpers

helpers.skip_module_on_windows(
    'fork() and POSIX signals to children')


def _children():
    """Pids of this process's direct children that still exist (zombies too)."""
    me = str(os.getpid())
    kids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me:
                kids.add(int(entry))
    return kids


def test_exit_codes_and_no_zombies(loop):
    before = _children()

    async def main():
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "raise SystemExit(3)")
        assert await proc.wait() == 3
        assert proc.returncode == 3
        proc = await asyncio.create_subprocess_shell("exit 7")
        assert await proc.wait() == 7
        procs = [await asyncio.create_subprocess_exec("true") for _ in range(20)]
        assert [await p.wait() for p in procs] == [0] * 20
    helpers.run(loop, main())
    assert _children() - before == set()


def test_terminate_kill_and_signals(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec("sleep", "30")
        proc.terminate()
        assert await proc.wait() == -signal.SIGTERM
        with pytest.raises(ProcessLookupError):
            proc.kill()
        proc = await asyncio.create_subprocess_exec("sleep", "30")
        proc.send_signal(signal.SIGUSR1)
        assert await proc.wait() == -signal.SIGUSR1
    helpers.run(loop, main())


def test_program_that_does_not_exist_leaks_nothing(loop):
    fds = helpers.open_fds()

    async def main():
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec("/nonexistent/program")
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec("true", cwd="/nonexistent/dir")
    helpers.run(loop, main())
    assert helpers.open_fds().keys() == fds.keys()


def test_spawn_from_a_loop_in_another_thread(impl):
    factory = helpers.loop_factory(impl)
    result = {}

    def in_thread():
        loop = factory()
        try:
            async def main():
                proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "raise SystemExit(4)")
                return await proc.wait()
            result["rc"] = loop.run_until_complete(asyncio.wait_for(main(), helpers.SAFETY))
        finally:
            loop.close()

    helpers.call_in_thread(in_thread)
    assert result == {"rc": 4}


FORK_PROBE = """
import asyncio, os, loopx
loop = loopx.new_event_loop()
loop.run_until_complete(asyncio.sleep(0))
read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:  # the child reports through the pipe, then exits
    try:
        coro = asyncio.sleep(0)
        try:
            loop.run_until_complete(coro)
            verdict = "ran"
        except RuntimeError as exc:
            coro.close()
            verdict = "refused" if "fork" in str(exc) else "other"
        try:
            loop.add_reader(read_end, lambda: None)
            verdict += " watched"
        except RuntimeError:
            verdict += " unwatched"
        loop.close()
        fresh = loopx.new_event_loop()
        verdict += " fresh=" + fresh.run_until_complete(asyncio.sleep(0, "ok"))
        fresh.close()
        os.write(write_end, verdict.encode())
    finally:
        os._exit(0)
os.close(write_end)
_, status = os.waitpid(pid, 0)
with os.fdopen(read_end, "rb") as f:
    print(f.read().decode(), os.waitstatus_to_exitcode(status))
# The parent's loop is untouched by the child.
print(loop.run_until_complete(asyncio.sleep(0.01, "parent")))
loop.close()
"""


@helpers.only("loopx")
def test_forked_child_cannot_run_the_parents_loop(impl):
    # In a fresh single-threaded interpreter: forking the test process
    # itself (which has executor threads) could deadlock the child.
    helpers.import_loopx()
    out = helpers.python_subprocess(FORK_PROBE).split("\n")
    assert out[0] == "refused unwatched fresh=ok 0"
    assert out[1] == "parent"


FORK_WHILE_RUNNING_PROBE = """
import asyncio, os, sys, loopx
factory = loopx.new_event_loop if os.environ["PROBE_IMPL"] == "loopx" else asyncio.SelectorEventLoop

async def main():
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            try:
                asyncio.get_running_loop()
                verdict = "running loop kept"
            except RuntimeError:
                verdict = "running loop reset"
            # A fresh loop in the child works wherever asyncio lets one run.
            try:
                fresh = factory()
                verdict += " fresh=" + fresh.run_until_complete(asyncio.sleep(0, "ok"))
                fresh.close()
            except RuntimeError as exc:
                verdict += " fresh refused: " + str(exc)
            os.write(write_end, verdict.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    await asyncio.sleep(0.01)   # the parent's loop goes on regardless
    with os.fdopen(read_end, "rb") as f:
        print(f.read().decode())
    os.waitpid(pid, 0)

loop = factory()
loop.run_until_complete(main())
loop.close()
"""


def test_fork_while_running_follows_asyncio(impl):
    """asyncio forgets the running loop in a forked child (3.11 by checking
    the pid, 3.12+ with an at-fork hook), so the child can start a new loop
    while the parent's keeps running: loopx too."""
    helpers.import_loopx()
    out = helpers.python_subprocess(FORK_WHILE_RUNNING_PROBE, env={"PROBE_IMPL": impl}).strip()
    assert out == "running loop reset fresh=ok"


def test_pipes_communicate_and_huge_output(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            "cat", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        payload = helpers.pattern_bytes(20_000_000, seed=2)
        out, err = await proc.communicate(payload)
        assert out == payload and err == b""
        assert proc.returncode == 0

        proc = await asyncio.create_subprocess_shell(
            "echo out; echo err >&2; exit 3",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        assert sorted(out.split()) == [b"err", b"out"]
        assert proc.returncode == 3
    helpers.run(loop, main())


def test_child_closing_stdin_early_is_not_an_error(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import os; os.close(0)",
            stdin=asyncio.subprocess.PIPE)
        # As asyncio: the broken pipe is swallowed by communicate().
        await proc.communicate(b"x" * 5_000_000)
        assert proc.returncode == 0
    helpers.run(loop, main())


def test_subprocess_protocol_callback_order(loop):
    events = []

    class Proto(asyncio.SubprocessProtocol):
        def __init__(self):
            self.done = loop.create_future()

        def connection_made(self, transport):
            events.append("made")

        def pipe_data_received(self, fd, data):
            events.append(("data", fd, bytes(data)))

        def pipe_connection_lost(self, fd, exc):
            events.append(("pipe_lost", fd))

        def process_exited(self):
            events.append("exited")

        def connection_lost(self, exc):
            events.append("lost")
            self.done.set_result(None)

    async def main():
        transport, proto = await loop.subprocess_exec(
            Proto, sys.executable, "-c", "print('hi', flush=True)",
            stdin=None, stderr=None)
        await proto.done
        assert transport.get_returncode() == 0
        assert transport.get_pid() > 0
        transport.close()
    helpers.run(loop, main())
    assert events[0] == "made"
    # Output may arrive in several chunks, all before its pipe is lost.
    lost_at = events.index(("pipe_lost", 1))
    chunks = [e[2] for e in events[:lost_at] if isinstance(e, tuple) and e[:2] == ("data", 1)]
    assert b"".join(chunks) == b"hi\n"
    assert "exited" in events
    assert events[-1] == "lost"
