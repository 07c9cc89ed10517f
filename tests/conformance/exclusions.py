"""Which CPython test_asyncio tests loopx does not run, or may fail.

Test ids are ``<module>.<Class>.<test>`` as CPython names them, except for the
classes the harness rebinds to the loop under test, where "Select"/"Selector"
becomes "Target" (``test_events.TargetEventLoopTests.test_sock_accept``).
Patterns are ``fnmatch`` globs.

EXCLUDED: tests that can only fail because they inspect the standard loop's
  private internals (``loop._selector``, ``loop._ready``, mocks of private
  methods) or the standard library's own machinery that loopx replaces (child
  watchers).  They are not run.  Each entry says why in one line.

KNOWN_FAILURES: real loopx bugs or gaps not fixed yet.  They run (unless
  ``run=False``: they hang or crash, which costs time); a failure is expected,
  a pass is reported so the entry can be deleted.

Everything else that fails is a bug and fails the conformance run.

Entries apply to ``--loop loopx`` only unless ``loops`` says otherwise (on
Windows, entries for ``proactor`` apply to ``loopx`` as well), and to
every Python version unless ``py`` narrows it (``py=(3, 12)``: 3.12 and later;
``py=((3, 11), (3, 12))``: 3.11 only, upper bound exclusive).  A pattern that
matches no test of the running version is fine.
"""
import sys
from fnmatch import fnmatchcase
from typing import NamedTuple, Optional, Tuple


class Entry(NamedTuple):
    pattern: str
    reason: str
    loops: Tuple[str, ...] = ("loopx",)
    py: Optional[tuple] = None
    run: bool = True

    def applies(self, test_id, loop, version=None):
        # On Windows loopx's loop *is* asyncio's proactor loop (over loopx's
        # proactor), so what the proactor loop lacks applies to it too.
        proactor_too = loop == "loopx" and sys.platform == "win32" and "proactor" in self.loops
        if loop not in self.loops and not proactor_too:
            return False
        version = tuple(version or sys.version_info[:2])
        if self.py is not None:
            if isinstance(self.py[0], tuple):
                lo, hi = self.py
                if not (lo <= version < hi):
                    return False
            elif version < tuple(self.py):
                return False
        return fnmatchcase(test_id, self.pattern)


def match(entries, test_id, loop, version=None):
    for entry in entries:
        if entry.applies(test_id, loop, version):
            return entry
    return None


E = Entry


EXCLUDED = [
    # --- test_base_events: BaseEventLoopWithSelectorTests rebound to the loop under test
    E("test_base_events.BaseEventLoopWithTargetTests.test_accept_connection_*",
      "calls loop._accept_connection, the selector loop's private accept path"),
    # @patch_socket replaces the module global asyncio.base_events.socket with
    # a mock and scripts fake sockets; these reach loopx's native sock_* / fd
    # code, which uses the real socket module.  (The patch_socket tests that go
    # only through asyncio's create_connection logic, which loopx reuses, pass
    # and are not listed.)
    E("test_base_events.BaseEventLoopWithTargetTests.test_create_connection_bluetooth",
      "patches asyncio.base_events.socket; loopx's sock_connect resolves with the real module"),
    E("test_base_events.BaseEventLoopWithTargetTests.test_create_datagram_endpoint_no_addrinfo",
      "patches asyncio.base_events.socket.getaddrinfo; loopx resolves with the real module"),
    E("test_base_events.BaseEventLoopWithTargetTests.test_create_server_soreuseport_only_defined",
      "patches asyncio.base_events.socket; its mock socket's fileno() reaches loopx's fd table"),

    # --- test_events: EventLoopTestsMixin bound to the loop under test
    E("test_events.TargetEventLoopTests.test_timeout_rounding",
      "counts calls of a loop._run_once it sets on the instance (loopx's run "
      "loop iterates natively) and reads loop._selector / _clock_resolution"),

    # --- test_unix_events
    # These drive the standard loop's signal code through a mocked
    # asyncio.unix_events.signal module and its private _signal_handlers /
    # _handle_signal / _check_signal; loopx's own signal handling is covered by
    # test_events (test_add_signal_handler, test_signal_handling_*) and
    # test_unix_events.TestFork.
    *(E("test_unix_events.TargetEventLoopSignalTests." + name,
        "mocks asyncio.unix_events.signal / reads the standard loop's _signal_handlers")
      for name in (
          "test_add_signal_handler",
          "test_add_signal_handler_install_error",
          "test_add_signal_handler_install_error2",
          "test_add_signal_handler_install_error3",
          "test_add_signal_handler_setup_error",
          "test_check_signal",
          "test_close",
          "test_close_on_finalizing",
          "test_handle_signal_cancelled_handler",
          "test_handle_signal_no_handler",
          "test_remove_signal_handler",
          "test_remove_signal_handler_2",
          "test_remove_signal_handler_error",
          "test_remove_signal_handler_error2",
      )),
    E("test_unix_events.TargetEventLoopUnixSockSendfileTests.*",
      "drive loop._sock_sendfile_native(_impl) and loop._selector directly"),

    # --- test_subprocess
    E("test_subprocess.GenericWatcherTests.*",
      "checks that the standard loop consults the policy's child watcher; "
      "loopx reaps its own children"),
]


# --loop proactor: asyncio's proactor loop over loopx._proactor on the IOCP
# emulation (scripts/test_proactor_emu.sh).  Only PROACTOR_MODULES run.  These
# are what the proactor loop does not have (asyncio's Windows loop neither),
# or what CPython itself skips for its ProactorEventLoop.
P = ("proactor",)
_NO_ADD_READER = "the proactor loop has no add_reader/add_writer (CPython skips these for ProactorEventLoop too)"
_NO_SIGNALS = "the proactor loop has no add_signal_handler (as on Windows)"
_NO_UNIX = "AF_UNIX servers/connections are not part of the proactor loop (create_unix_* raise NotImplementedError)"
_NO_SUBPROCESS = ("subprocesses on the proactor loop are windows_events' "
                  "(_WindowsSubprocessTransport), which cannot import on Linux")
_NO_PTY = "ptys are not pipes the proactor loop handles (CPython skips these on Windows)"
PROACTOR_EXCLUDED = [
    *(E("test_events.TargetEventLoopTests." + name, _NO_ADD_READER, P) for name in (
        "test_reader_callback", "test_reader_callback_cancel", "test_writer_callback",
        "test_writer_callback_cancel", "test_remove_fds_after_closing")),
    *(E("test_events.TargetEventLoopTests." + name, _NO_SIGNALS, P) for name in (
        "test_add_signal_handler", "test_signal_handling_args",
        "test_signal_handling_while_selecting")),
    E("test_events.Test*GetEventLoop.*", "setUp attaches a SafeChildWatcher, "
      "which calls add_signal_handler: " + _NO_SIGNALS, P),
    E("test_streams.StreamTests.test_read_all_from_pipe_reader", "attaches a "
      "SafeChildWatcher, which calls add_signal_handler: " + _NO_SIGNALS, P),
    E("test_events.TargetEventLoopTests.test_create_*unix_*", _NO_UNIX, P),
    E("test_streams.StreamTests.test_*unix_*", _NO_UNIX, P),
    E("test_server.*.test_start_unix_server*", _NO_UNIX, P),
    E("test_server.UnixServerCleanupTests.*", _NO_UNIX, P),
    E("test_sock_lowlevel.TargetEventLoopTests.test_unix_sock_client_ops",
      "AF_UNIX addresses: like IocpProactor, the proactor takes IP address tuples only", P),
    E("test_events.TargetEventLoopTests.test_subprocess_*", _NO_SUBPROCESS, P),
    *(E("test_events.TargetEventLoopTests." + name, _NO_PTY, P) for name in (
        "test_bidirectional_pty", "test_read_pty_output", "test_write_pty")),
    E("test_events.TargetEventLoopTests.test_write_pipe", "reads the pipe with a "
      "blocking os.read between loop runs, which the proactor's queued write "
      "can deadlock (CPython skips it on Windows: \"Don't support pipes\")", P),
    E("test_events.TargetEventLoopTests.test_unclosed_pipe_transport",
      "expects the Unix pipe transport's repr ('open'); CPython skips it on Windows", P),
    E("test_sock_lowlevel.TargetEventLoopTests.test_sendto_blocking",
      "CPython skips it for ProactorEventLoop ('Not relevant to ProactorEventLoop')", P),
    E("test_sendfile.TargetEventLoopTests.test_sendfile_prevents_bare_write",
      "needs native sendfile; the IOCP core has no TransmitFile, so sendfile "
      "takes asyncio's fallback, which allows writes meanwhile", P),
]
EXCLUDED += PROACTOR_EXCLUDED

KNOWN_FAILURES = [
    # Real loopx bugs found by this suite go here until fixed (none open).
]
