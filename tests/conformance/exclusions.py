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

Entries apply to ``--loop loopx`` only unless ``loops`` says otherwise, and to
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
        if loop not in self.loops:
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
    E("test_base_events.BaseEventLoopWithTargetTests.test_log_slow_callbacks",
      "patches asyncio.base_events.logger; loopx logs the same warning via asyncio.log.logger"),
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
      "counts loop._run_once calls and reads loop._selector / _clock_resolution"),

    # --- test_tasks / test_futures: bare TestLoop tests rebound to the loop under test
    # These assert on calls to a mock that replaced asyncio.base_events.logger;
    # loopx logs through asyncio.log.logger (the same logger object, another
    # module global), so the mock never sees the call.
    E("test_tasks.*.test_error_in_call_soon",
      "asserts on a mock patched over asyncio.base_events.logger"),
    E("test_futures.*.test_future_exception_never_retrieved*",
      "asserts on a mock patched over asyncio.base_events.logger"),
    E("test_futures.*.test_tb_logger_exception_unretrieved",
      "asserts on a mock patched over asyncio.base_events.logger"),
    E("test_tasks.*.test_log_destroyed_pending_task",
      "steps the loop with loop._run_once() and reads loop._ready"),

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

KNOWN_FAILURES = [
    # Real loopx bugs found by this suite go here until fixed (none open).
]
