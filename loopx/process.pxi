# Child processes: exit detection without a watcher thread.  Included into
# _loop.pyx.
#
# The subprocess transport itself is the standard library's Popen-based one
# (asyncio.unix_events._UnixSubprocessTransport): it talks to the child over
# our native pipe transports.  What the standard loop delegates to a child
# watcher (a thread per child in 3.12+, or a SIGCHLD handler) loopx does in the
# loop itself: kqueue reports a child's exit (EVFILT_PROC), and on Linux a
# pidfd (5.3+) becomes readable when the child exits and is watched like any
# fd; the loop then reaps the child with waitpid().  Where neither is there
# (old kernels, seccomp), a thread per child waits instead, as asyncio's
# ThreadedChildWatcher does.

import subprocess
from asyncio import unix_events as _unix_events


async def _make_subprocess_transport(Loop loop, protocol, args, shell, stdin, stdout,
                                     stderr, bufsize, extra, kwargs):
    waiter = loop.create_future()
    transp = _unix_events._UnixSubprocessTransport(
        loop, protocol, args, shell, stdin, stdout, stderr, bufsize,
        waiter=waiter, extra=extra, **kwargs)
    _watch_child(loop, transp.get_pid(), transp)
    try:
        await waiter
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException:
        transp.close()
        await transp._wait()
        raise
    return transp


cdef _watch_child(Loop loop, int pid, transp):
    if LX_POLLER_WATCHES_PROC:
        if lx_poller_watch_exit(&loop._poller, pid) == 0:
            loop._exit_watchers[pid] = transp   # see Loop._child_exit_seen
            return
        if errno == ESRCH:
            # Already exited, and this kernel won't watch a zombie.
            loop.call_soon(_child_exited_reap, loop, pid, transp)
            return
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        # No pidfd here: fall back to a waiting thread.
        thread = threading.Thread(target=_wait_child_in_thread, args=(loop, pid, transp),
                                  name=f"loopx-waitpid-{pid}", daemon=True)
        thread.start()
        return
    loop._add_watch(pidfd, False, _child_exited, (loop, pidfd, pid, transp))


def _child_exited(Loop loop, int pidfd, int pid, transp):
    loop._remove_watch(pidfd, False)
    os.close(pidfd)
    _child_exited_reap(loop, pid, transp)


def _child_exited_reap(Loop loop, int pid, transp):
    _report_exit(loop, pid, transp, _reap(pid, os.WNOHANG))


cdef object _reap(int pid, int options):
    """The child's return code as asyncio reports it, reaping it."""
    try:
        reaped, status = os.waitpid(pid, options)
    except ChildProcessError:
        # Someone else reaped it (e.g. SIGCHLD set to SIG_IGN): the status
        # is lost.  asyncio's watchers report 255 the same way.
        logger.warning("child process pid %d exit status already read: "
                       "will report returncode 255", pid)
        return 255
    if reaped == 0:
        # The poller said exited but waitpid disagrees: only possible if the
        # pid was reaped and reused; wait for real.
        return _reap(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _wait_child_in_thread(Loop loop, int pid, transp):
    returncode = _reap(pid, 0)
    if not loop._closed:
        loop.call_soon_threadsafe(_report_exit, loop, pid, transp, returncode)


def _report_exit(Loop loop, int pid, transp, returncode):
    if loop._debug:
        logger.debug("process %s exited with returncode %s", pid, returncode)
    transp._process_exited(returncode)
