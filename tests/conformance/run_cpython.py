#!/usr/bin/env python3
"""Run CPython's own ``test.test_asyncio`` modules with loopx as the event loop.

    python tests/conformance/run_cpython.py --module test_tasks
    python tests/conformance/run_cpython.py --module test_events --test '*sock_accept*' -v
    python tests/conformance/run_cpython.py --all --loop asyncio --json out.json

Each module runs in a fresh worker subprocess of the running interpreter,
against that interpreter's own ``test`` package.  Before the test module is
imported the worker replaces asyncio's default policy with one whose loops are
loopx loops (``--loop loopx``) or standard loops (``--loop asyncio``, which
validates the harness itself), and rebinds the test classes CPython binds to
its selector loop (``create_event_loop`` / ``new_loop`` / ``SelectorEventLoop()``
in ``setUp``) to the loop under test; see ``_adapt_module``.

The worker streams one JSON line per test into a file.  The driver reads it
after the worker exits, so a segfault or a hang in native code costs one test,
not the module: the test that was running is recorded as ``crash`` or
``timeout`` and a new worker resumes after it.

Outcomes are then matched against ``exclusions.py``: EXCLUDED tests are not
run, KNOWN_FAILURES may fail; every other failure is ``unexpected`` and makes
the run fail.
"""
import argparse
import concurrent.futures
import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import exclusions  # noqa: E402  (lives next to this file)

# The modules run by default.  The value is a rough relative cost, used to
# start the slow ones first when running in parallel.
CORE_MODULES = {
    "test_tasks": 20,
    "test_subprocess": 15,
    "test_events": 12,
    "test_ssl": 10,
    "test_taskgroups": 8,
    "test_sslproto": 5,
    "test_futures": 3,
    "test_base_events": 3,
    "test_sock_lowlevel": 3,
    "test_streams": 2,
    "test_sendfile": 2,
    "test_eager_task_factory": 2,   # 3.12+
    "test_waitfor": 2,
    "test_locks": 2,
    "test_unix_events": 1,
    "test_queues": 1,
    "test_timeouts": 1,
    "test_runners": 1,
    "test_context": 1,
    "test_pep492": 1,
    "test_threads": 1,
    "test_futures2": 1,
    "test_staggered": 1,            # 3.13+
    "test_server": 1,
    "test_buffered_proto": 1,
    "test_protocols": 1,
    "test_transports": 1,
}

# The modules run against --loop proactor by default: the ones about sockets,
# streams and transports, which the proactor loop implements over our
# Proactor (the rest test the loop core, the same BaseEventLoop code there).
PROACTOR_MODULES = ["test_sock_lowlevel", "test_streams", "test_sendfile",
                    "test_events", "test_server", "test_buffered_proto"]

# Modules about features loopx does not have yet: every test would be a known
# failure, so they are left out of the default run (LOOPX_CONFORMANCE_ALL=1 or
# --all includes them).  Move a module to CORE_MODULES when its issue lands.
# (module name -> (reason, cost)), e.g. "test_foo": ("issue 9 (foo)", 2)
PENDING_MODULES = {}

DEFAULT_TEST_TIMEOUT = float(os.environ.get("LOOPX_CONFORMANCE_TIMEOUT", "30"))
KNOWN_FAILURE_TIMEOUT = float(os.environ.get("LOOPX_CONFORMANCE_KNOWN_TIMEOUT", "10"))
MAX_WORKER_RESTARTS = 40
# After this many hung tests a module is abandoned (its remaining tests fail
# as "aborted"), so that a loop that hangs everywhere cannot blow the time
# budget: each hang costs a full --timeout.
MAX_TIMEOUTS_PER_MODULE = int(os.environ.get("LOOPX_CONFORMANCE_MAX_HANGS", "6"))
# Outcomes that count as "the test failed".
FAILING = {"fail", "error", "crash", "timeout", "unexpected-success", "aborted"}

# Exit codes the worker uses to tell the driver why a module could not run.
EXIT_NO_TEST_PACKAGE = 4
EXIT_NO_LOOPX = 5
EXIT_MODULE_SKIPPED = 6


def module_cost(name):
    if name in CORE_MODULES:
        return CORE_MODULES[name]
    return PENDING_MODULES.get(name, ("", 1))[1]


def python_tag():
    return "%d.%d.%d" % sys.version_info[:3]


# ---------------------------------------------------------------------------
# Worker side: runs inside the fresh subprocess.
# ---------------------------------------------------------------------------

class _Counter:
    """How many loops of the kind under test were created so far.

    Lets the report tell tests that really ran on the loop under test from
    tests that only used ``test_utils.TestLoop`` (a fake-clock BaseEventLoop)
    or a mock, which pass regardless of the loop we supply.
    """
    created = 0


def _install_loop(kind):
    """Make ``kind`` the loop asyncio creates by default; return its factory."""
    import asyncio
    import asyncio.events

    if kind == "loopx":
        import loopx
        base_policy = loopx.EventLoopPolicy
        make_loop = loopx.new_event_loop
    elif kind == "proactor":
        # asyncio's proactor loop over loopx._proactor, built over the IOCP
        # emulation (scripts/test_proactor_emu.sh; tests/proactor_loop.py).
        sys.path.insert(0, os.path.join(REPO, "tests"))
        from proactor_loop import ProactorLoop
        base_policy = asyncio.DefaultEventLoopPolicy
        make_loop = ProactorLoop
    else:
        base_policy = asyncio.DefaultEventLoopPolicy
        make_loop = asyncio.SelectorEventLoop

    def factory():
        _Counter.created += 1
        return make_loop()

    class ConformancePolicy(base_policy):
        # BaseDefaultEventLoopPolicy.new_event_loop() calls self._loop_factory()
        def _loop_factory(self):
            return factory()

    ConformancePolicy.__name__ = ConformancePolicy.__qualname__ = base_policy.__name__

    # set_event_loop_policy(None) (every module's tearDownModule) re-creates the
    # policy through ``from . import DefaultEventLoopPolicy`` in asyncio.events,
    # so the name must be replaced where that import finds it, not only in
    # events' own namespace.
    modules = [asyncio, asyncio.events]
    if hasattr(asyncio, "unix_events"):
        modules.append(asyncio.unix_events)
    for mod in modules:
        for name in ("DefaultEventLoopPolicy", "_DefaultEventLoopPolicy"):
            if name in vars(mod):
                setattr(mod, name, ConformancePolicy)
    asyncio.set_event_loop_policy(None)
    return factory


# Test classes replaced by a rebound copy.  They stay in the module's
# namespace (test bodies refer to them by name, e.g. isinstance(self,
# SubprocessFastWatcherTests)), but their tests are not run.
_DROPPED = set()


def _drop(cls):
    _DROPPED.add(cls)


def _rebind_create_event_loop(mod, factory, template, mixins):
    """Replace the selector-bound classes of ``mod`` by one bound to ``factory``.

    CPython binds ``EventLoopTestsMixin``-style bodies to each selector with
    classes that only define ``create_event_loop``; they test the standard
    loop, so they are dropped and one class using the loop under test takes
    their place.  ``template`` names the class whose name is reused (with
    "Select" replaced by "Target"); ``mixins`` are the test-body classes.
    """
    import unittest
    from test.test_asyncio import utils as test_utils

    if not hasattr(mod, template):
        return
    for name, obj in list(vars(mod).items()):
        if (isinstance(obj, type) and issubclass(obj, unittest.TestCase)
                and "create_event_loop" in vars(obj)):
            _drop(obj)
    bases = tuple(getattr(mod, m) for m in mixins) + (test_utils.TestCase,)
    new_name = template.replace("Select", "Target")
    cls = type(new_name, bases, {
        "create_event_loop": lambda self: factory(),
        "__module__": mod.__name__,
        "__qualname__": new_name,
    })
    setattr(mod, new_name, cls)


def _rebind_new_loop(mod, factory):
    """FunctionalTestCaseMixin classes: ``new_loop()`` builds the loop."""
    import unittest

    for name, obj in list(vars(mod).items()):
        if not (isinstance(obj, type) and issubclass(obj, unittest.TestCase)
                and "new_loop" in vars(obj)):
            continue
        if "Proactor" in name:
            continue  # skipped on non-Windows anyway
        _drop(obj)
        new_name = name.replace("Selector", "Target")
        setattr(mod, new_name, type(new_name, (obj,), {
            "new_loop": lambda self: factory(),
            "__module__": mod.__name__,
            "__qualname__": new_name,
        }))


def _rebind_selector_setup(mod, factory, class_names):
    """Classes whose ``setUp`` does ``self.loop = asyncio.SelectorEventLoop()``.

    ``asyncio.SelectorEventLoop`` is replaced by the loop under test only while
    the original ``setUp`` runs, so the test body is CPython's, unchanged.
    """
    import asyncio
    from unittest import mock

    for name in class_names:
        orig = getattr(mod, name, None)
        if orig is None:
            continue

        def setUp(self, _orig=orig):
            with mock.patch.object(asyncio, "SelectorEventLoop",
                                   lambda *a, **k: factory()):
                _orig.setUp(self)

        _drop(orig)
        new_name = name.replace("Selector", "Target")
        setattr(mod, new_name, type(new_name, (orig,), {
            "setUp": setUp,
            "__module__": mod.__name__,
            "__qualname__": new_name,
        }))


def _adapt_runners(mod, factory):
    """test_runners builds its loops from a BaseEventLoop full of mocks.

    Give it the loop under test instead, keeping the one thing its tearDown
    checks (that the runner called ``shutdown_asyncgens``), and still running
    the real ``shutdown_asyncgens``.
    """
    def new_loop(self):
        loop = factory()
        loop.shutdown_ag_run = False
        real = loop.shutdown_asyncgens

        async def shutdown_asyncgens():
            loop.shutdown_ag_run = True
            await real()

        loop.shutdown_asyncgens = shutdown_asyncgens
        return loop

    mod.BaseTest.new_loop = new_loop


# Classes that need TestLoop itself, so they stay on it (and pass without
# exercising the loop under test):
_KEEP_TEST_LOOP = {
    # fixtures step the loop by hand: ``while loop._ready: run_briefly(loop)``
    "FutureGatherTests", "CoroutineGatherTests",
    # unit tests of asyncio's own pipe/subprocess transport classes, which
    # they drive through TestLoop's private _add_reader / assert_reader API
    "UnixReadPipeTransportTests", "UnixWritePipeTransportTests",
    "SubprocessTransportTests",
}


def _real_loop_for_test_loop(factory):
    """``TestCase.new_test_loop()`` without a time generator -> the loop under test.

    ``test_utils.TestLoop`` is a BaseEventLoop with a fake clock.  Tests that
    pass it a generator script that clock and stay on it; tests that call
    ``new_test_loop()`` bare only want "a loop", so they get the real one
    (with the standard loop, every one of them passes that way too).
    """
    from test.test_asyncio import utils as test_utils

    orig = test_utils.TestCase.new_test_loop

    def new_test_loop(self, gen=None):
        if gen is not None or type(self).__name__ in _KEEP_TEST_LOOP:
            return orig(self, gen)
        loop = factory()
        self.set_event_loop(loop)
        return loop

    test_utils.TestCase.new_test_loop = new_test_loop


def _adapt_pep492(mod, factory):
    """test_pep492's BaseTest builds a BaseEventLoop with a mocked selector."""
    from test.test_asyncio import utils as test_utils

    def setUp(self):
        test_utils.TestCase.setUp(self)
        self.loop = factory()
        self.set_event_loop(self.loop)

    mod.BaseTest.setUp = setUp


def _rebind_subprocess(mod, factory):
    """test_subprocess: one class on the loop under test replaces the watcher ones.

    CPython runs SubprocessMixin once per child watcher (threaded, safe, fast,
    pidfd), each attached to a standard loop.  Watchers are the standard
    loop's machinery; the loop under test reaps its own children (asyncio's
    default policy picks a watcher by itself), so the bodies run once.
    """
    import asyncio
    import warnings
    from test.test_asyncio import utils as test_utils

    watcher_mixin = getattr(mod, "SubprocessWatcherMixin", None)
    if watcher_mixin is None:
        return
    for name, obj in list(vars(mod).items()):
        if isinstance(obj, type) and obj is not watcher_mixin and issubclass(obj, watcher_mixin):
            _drop(obj)

    def setUp(self):
        test_utils.TestCase.setUp(self)
        self.loop = factory()
        self.set_event_loop(self.loop)
        # A test before may have left a (mock) child watcher installed; the
        # watcher classes replaced their own in setUp.  None makes the
        # standard policy pick its default again.
        policy = asyncio.get_event_loop_policy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                policy.set_child_watcher(None)
            except (AttributeError, NotImplementedError):
                pass

    setattr(mod, "TargetSubprocessTests", type(
        "TargetSubprocessTests", (mod.SubprocessMixin, test_utils.TestCase), {
            "setUp": setUp,
            "__module__": mod.__name__,
            "__qualname__": "TargetSubprocessTests",
        }))


def _adapt_module(mod, factory):
    short = mod.__name__.rsplit(".", 1)[-1]
    _real_loop_for_test_loop(factory)
    if short == "test_pep492":
        _adapt_pep492(mod, factory)
    elif short == "test_events":
        _rebind_create_event_loop(
            mod, factory, "SelectEventLoopTests",
            # Not UnixEventLoopTestsMixin: it attaches a SafeChildWatcher, the
            # standard loop's way of reaping children; loopx reaps its own.
            ("EventLoopTestsMixin", "SubprocessTestsMixin"))
    elif short == "test_sock_lowlevel":
        _rebind_create_event_loop(mod, factory, "SelectEventLoopTests",
                                  ("BaseSockTestsMixin",))
    elif short == "test_sendfile":
        _rebind_create_event_loop(mod, factory, "SelectEventLoopTests",
                                  ("SendfileTestsBase",))
    elif short in ("test_buffered_proto", "test_server", "test_sslproto"):
        _rebind_new_loop(mod, factory)
    elif short == "test_base_events":
        _rebind_selector_setup(mod, factory, ["BaseEventLoopWithSelectorTests"])
    elif short == "test_unix_events":
        _rebind_selector_setup(mod, factory, [
            "SelectorEventLoopSignalTests",
            "SelectorEventLoopUnixSocketTests",
            "SelectorEventLoopUnixSockSendfileTests",
        ])
    elif short == "test_runners":
        _adapt_runners(mod, factory)
    elif short == "test_subprocess":
        _rebind_subprocess(mod, factory)


def _patch_test_utils():
    """Make ``test_utils.TestCase.close_loop`` work for loops without ``_default_executor``.

    It reads the standard loop's private ``_default_executor`` to decide
    whether to shut the executor down; for any other loop we call the public
    ``shutdown_default_executor()``, which is what that code means.
    """
    from test.test_asyncio import utils as test_utils

    orig = test_utils.TestCase.close_loop

    def close_loop(loop):
        if not hasattr(loop, "_default_executor"):
            if not loop.is_closed():
                try:
                    loop.run_until_complete(loop.shutdown_default_executor())
                except Exception:
                    # The original skips this step when no executor was ever
                    # made; we cannot tell, and a test may have left the loop
                    # unusable on purpose (e.g. a call_soon that raises).
                    pass
            loop.close()
            loop = _ClosedLoopShim()
        orig(loop)

    test_utils.TestCase.close_loop = staticmethod(close_loop)


class _ClosedLoopShim:
    """Passed to the original close_loop after we closed a loop ourselves, so
    its policy/child-watcher bookkeeping still runs."""
    _default_executor = None

    def close(self):
        pass


def short_id(test_id):
    prefix = "test.test_asyncio."
    return test_id[len(prefix):] if test_id.startswith(prefix) else test_id


def _holder_id(description):
    """'setUpClass (test.test_asyncio.test_x.Cls)' -> 'test_x.Cls.setUpClass'."""
    if " (" in description and description.endswith(")"):
        what, where = description[:-1].split(" (", 1)
        return "%s.%s" % (short_id(where), what)
    return short_id(description)


def _selftest_fault(tid):
    """Harness self-test hook: LOOPX_CONFORMANCE_SELFTEST="crash=GLOB;hang=GLOB".

    Makes the worker segfault or hang (holding the GIL) when a matching test
    starts, so test_conformance.py can check that the driver survives both.
    """
    spec = os.environ.get("LOOPX_CONFORMANCE_SELFTEST")
    if not spec:
        return
    for part in spec.split(";"):
        what, _, pattern = part.partition("=")
        if not fnmatch.fnmatchcase(tid, pattern):
            continue
        if what == "crash":
            import ctypes
            ctypes.string_at(0)          # SIGSEGV
        elif what == "hang":
            while True:                  # pure bytecode: never waits on anything
                pass


def _make_result_class(unittest, emit, timeout_for):
    import faulthandler

    class StreamingResult(unittest.TestResult):
        def __init__(self):
            super().__init__()
            self._cur = None

        def _begin(self, test):
            tid = short_id(test.id())
            self._cur = {"id": tid, "outcome": "pass", "errors": [],
                         "t0": time.monotonic(), "loops0": _Counter.created}
            emit({"ev": "start", "id": tid})
            limit = timeout_for(tid)
            if limit:
                # A C thread: fires even if native code holds the GIL.
                faulthandler.dump_traceback_later(limit, exit=True)
            _selftest_fault(tid)

        def _note(self, outcome, text=None):
            rank = ["pass", "xfail", "skip", "unexpected-success", "fail", "error"]
            cur = self._cur
            if rank.index(outcome) > rank.index(cur["outcome"]):
                cur["outcome"] = outcome
            if text:
                cur["errors"].append(text[-6000:])

        def startTest(self, test):
            super().startTest(test)
            self._begin(test)

        def stopTest(self, test):
            faulthandler.cancel_dump_traceback_later()
            cur = self._cur
            self._cur = None
            if cur is None:
                return super().stopTest(test)
            emit({"ev": "stop", "id": cur["id"], "outcome": cur["outcome"],
                  "errors": cur["errors"],
                  "secs": round(time.monotonic() - cur["t0"], 3),
                  "on_target": _Counter.created > cur["loops0"]})
            super().stopTest(test)

        def _fixture_event(self, test, outcome, text):
            # Class/module fixtures report through an _ErrorHolder, outside
            # startTest/stopTest.
            emit({"ev": "stop", "id": _holder_id(test.id()), "outcome": outcome,
                  "errors": [text[-6000:]] if text else [], "secs": 0,
                  "on_target": False})

        def _is_holder(self, test):
            return not isinstance(test, unittest.TestCase)

        def addError(self, test, err):
            text = self._exc_info_to_string(err, test)
            if self._is_holder(test) or self._cur is None:
                self._fixture_event(test, "error", text)
            else:
                self._note("error", text)

        def addFailure(self, test, err):
            self._note("fail", self._exc_info_to_string(err, test))

        def addSubTest(self, test, subtest, err):
            if err is not None:
                kind = "fail" if issubclass(err[0], test.failureException) else "error"
                self._note(kind, "[subtest %s]\n%s" % (
                    subtest._subDescription(), self._exc_info_to_string(err, test)))

        def addSuccess(self, test):
            pass

        def addSkip(self, test, reason):
            if self._is_holder(test):
                self._fixture_event(test, "skip", reason)
                return
            if self._cur is None:
                # 3.12+ reports a skipped test without calling startTest().
                self._begin(test)
            self._note("skip", reason)

        def addExpectedFailure(self, test, err):
            self._note("xfail")

        def addUnexpectedSuccess(self, test):
            self._note("unexpected-success", "unexpected success")

    return StreamingResult


def _iter_tests(suite, unittest):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _iter_tests(item, unittest)
        else:
            yield item


def worker_main(args):
    import faulthandler
    faulthandler.enable()
    out = open(args.events, "a", buffering=1, encoding="utf-8")

    def emit(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    import importlib
    import unittest

    try:
        importlib.import_module("test.test_asyncio")
    except ImportError as exc:
        emit({"ev": "fatal", "kind": "no-test-package", "msg": repr(exc)})
        return EXIT_NO_TEST_PACKAGE
    except unittest.SkipTest as exc:  # its __init__ skips without working sockets
        emit({"ev": "fatal", "kind": "module-skipped", "msg": str(exc)})
        return EXIT_MODULE_SKIPPED

    try:
        factory = _install_loop(args.loop)
    except ImportError as exc:
        emit({"ev": "fatal", "kind": "no-loopx", "msg": repr(exc)})
        return EXIT_NO_LOOPX

    _patch_test_utils()
    modname = "test.test_asyncio." + args.worker
    try:
        mod = importlib.import_module(modname)
    except unittest.SkipTest as exc:
        emit({"ev": "fatal", "kind": "module-skipped", "msg": str(exc)})
        return EXIT_MODULE_SKIPPED
    except ModuleNotFoundError as exc:
        if exc.name == modname:
            emit({"ev": "fatal", "kind": "no-such-module",
                  "msg": "not part of Python %s's test_asyncio" % python_tag()})
            return EXIT_MODULE_SKIPPED
        raise

    _adapt_module(mod, factory)

    skip_ids = set()
    if args.skip_file:
        with open(args.skip_file, encoding="utf-8") as f:
            skip_ids = {line.strip() for line in f if line.strip()}

    suite = unittest.defaultTestLoader.loadTestsFromModule(mod)
    selected = []
    for test in _iter_tests(suite, unittest):
        if type(test) in _DROPPED:
            continue
        tid = short_id(test.id())
        if tid in skip_ids:
            continue
        if args.test and not any(fnmatch.fnmatchcase(tid, p) for p in args.test):
            continue
        if not args.no_lists:
            entry = exclusions.match(exclusions.EXCLUDED, tid, args.loop)
            if entry is not None:
                emit({"ev": "excluded", "id": tid, "reason": entry.reason})
                continue
            entry = exclusions.match(exclusions.KNOWN_FAILURES, tid, args.loop)
            if entry is not None and not entry.run:
                emit({"ev": "not-run", "id": tid, "reason": entry.reason})
                continue
        selected.append(test)

    # Tell the driver what will run, so that if it has to give up on the
    # module it can name the tests that never ran.
    emit({"ev": "plan", "ids": [short_id(t.id()) for t in selected]})

    def timeout_for(tid):
        # Known failures get a shorter leash: when they hang they still cost
        # time, and they are expected to fail anyway.
        if args.timeout and not args.no_lists and exclusions.match(
                exclusions.KNOWN_FAILURES, tid, args.loop):
            return min(args.timeout, KNOWN_FAILURE_TIMEOUT)
        return args.timeout

    result = _make_result_class(unittest, emit, timeout_for)()
    # A flat suite in loader order: TestSuite.run() still runs setUpClass /
    # setUpModule fixtures once per class/module as it crosses boundaries.
    unittest.TestSuite(selected).run(result)
    emit({"ev": "done"})
    out.close()
    # Leave through the normal interpreter shutdown: a crash or hang in
    # finalizers is a bug worth reporting (the driver reports it).
    return 0


# ---------------------------------------------------------------------------
# Driver side.
# ---------------------------------------------------------------------------

class ModuleReport:
    def __init__(self, module, loop):
        self.module = module
        self.loop = loop
        self.python = python_tag()
        self.status = "ok"        # ok | no-test-package | no-loopx | skipped
        self.message = ""
        self.tests = {}           # id -> record
        self.restarts = 0
        self.secs = 0.0
        self.no_lists = False

    # Classification ------------------------------------------------------
    def classify(self):
        """Fill record["verdict"]: passed, skipped, excluded, known-failing,
        fixed (known failure that passed), unexpected."""
        for tid, rec in self.tests.items():
            outcome = rec["outcome"]
            if outcome == "excluded":
                rec["verdict"] = "excluded"
                continue
            if outcome == "not-run":
                rec["verdict"] = "known-failing"
                continue
            known = None if self.no_lists else exclusions.match(
                exclusions.KNOWN_FAILURES, tid, self.loop)
            if outcome in FAILING:
                rec["verdict"] = "known-failing" if known else "unexpected"
                if known:
                    rec["reason"] = known.reason
            elif outcome == "skip":
                rec["verdict"] = "skipped"
            else:  # pass, xfail
                rec["verdict"] = "fixed" if known else "passed"
                if known:
                    rec["reason"] = known.reason

    def count(self, verdict):
        return sum(1 for r in self.tests.values() if r.get("verdict") == verdict)

    @property
    def unexpected(self):
        return [t for t, r in sorted(self.tests.items()) if r.get("verdict") == "unexpected"]

    @property
    def fixed(self):
        return [t for t, r in sorted(self.tests.items()) if r.get("verdict") == "fixed"]

    def summary_line(self):
        if self.status != "ok":
            return "conformance %s: %s (%s)" % (self.module, self.status, self.message)
        passed = self.count("passed") + self.count("fixed")
        on_target = sum(1 for r in self.tests.values()
                        if r.get("verdict") in ("passed", "fixed") and r.get("on_target"))
        parts = [
            "%d passed (%d on %s)" % (passed, on_target, self.loop),
            "%d skipped" % self.count("skipped"),
            "%d excluded" % self.count("excluded"),
            "%d known-failing" % self.count("known-failing"),
            "%d unexpected" % len(self.unexpected),
        ]
        if self.fixed:
            parts.append("%d known failures now pass" % len(self.fixed))
        return "conformance %s: %s [%s, python %s, %.0fs]" % (
            self.module, ", ".join(parts), self.loop, self.python, self.secs)

    def details(self, verbose=False):
        """Human-readable lines about what needs attention."""
        lines = []
        for tid in self.unexpected:
            rec = self.tests[tid]
            lines.append("  UNEXPECTED %s %s: %s" % (rec["outcome"], tid, key_line(rec)))
            if verbose:
                for err in rec.get("errors", []):
                    lines.extend("      " + ln for ln in err.rstrip().splitlines())
        for tid in self.fixed:
            lines.append("  NOW PASSES (remove from KNOWN_FAILURES) %s  [%s]" % (
                tid, self.tests[tid].get("reason", "")))
        if self.no_lists:
            # Audit mode: everything ran; say which list entries are stale.
            for tid, rec in sorted(self.tests.items()):
                if rec.get("verdict") != "passed":
                    continue
                for name in ("EXCLUDED", "KNOWN_FAILURES"):
                    entry = exclusions.match(getattr(exclusions, name), tid, self.loop)
                    if entry is not None:
                        lines.append("  LISTED IN %s BUT PASSES %s  [%s]" % (
                            name, tid, entry.reason))
        return lines

    def to_json(self):
        return {
            "module": self.module, "loop": self.loop, "python": self.python,
            "status": self.status, "message": self.message,
            "restarts": self.restarts, "secs": round(self.secs, 1),
            "counts": {v: self.count(v) for v in
                       ("passed", "fixed", "skipped", "excluded", "known-failing", "unexpected")},
            "tests": self.tests,
        }


def _fault_line(text):
    """For a crash/timeout: the faulthandler headline plus where the main thread was."""
    lines = text.splitlines()
    head = next((ln.strip() for ln in lines
                 if ln.startswith(("Fatal Python error", "Timeout ("))), None)
    # faulthandler prints one block per thread, innermost frame first; the
    # main thread is the one that runs the unittest machinery.
    blocks, cur = [], []
    for ln in lines:
        if ln.startswith(("Thread 0x", "Current thread 0x")):
            cur = []
            blocks.append(cur)
        elif ln.strip().startswith("File ") and blocks:
            cur.append(ln.strip())
    main = next((b for b in blocks if any("unittest" in f for f in b)), blocks[0] if blocks else [])
    # Skip the harness's own frames to land on the test's code.
    where = next((f for f in main if "run_cpython.py" not in f), None)
    parts = [p for p in (head, where and "at " + where) if p]
    return " ".join(parts) if parts else None


def key_line(rec):
    """The most telling line of a failure: the exception line of the last traceback."""
    errors = rec.get("errors") or []
    if not errors:
        return rec["outcome"]
    if rec.get("outcome") in ("crash", "timeout"):
        fault = _fault_line(errors[-1])
        if fault:
            return fault[:300]
    lines = [ln for ln in errors[-1].strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        s = ln.strip()
        if not s.startswith(("File ", "^", "~")) and not ln.startswith("    "):
            return s[:300]
    return lines[-1].strip()[:300] if lines else rec["outcome"]


def _read_events(path):
    events = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    events.append(json.loads(line))
                except ValueError:
                    pass  # a line cut by a crash
    except FileNotFoundError:
        pass
    return events


def _tail(path, nbytes=6000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - nbytes))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def run_module(module, loop="loopx", tests=None, timeout=DEFAULT_TEST_TIMEOUT,
               no_lists=False, keep_logs=None, extra_env=None,
               max_timeouts=MAX_TIMEOUTS_PER_MODULE):
    """Run one CPython test_asyncio module in worker subprocesses; return a ModuleReport."""
    report = ModuleReport(module, loop)
    report.no_lists = no_lists
    t_start = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="loopx-conf-%s-" % module)
    events_path = os.path.join(workdir, "events.jsonl")
    skip_path = os.path.join(workdir, "skip.txt")
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONFAULTHANDLER", "1")
    env.pop("PYTHONASYNCIODEBUG", None)   # tests set debug mode themselves
    env.update(extra_env or {})
    done_ids = set()
    planned, planned_set = [], set()
    timeouts = 0
    try:
        while True:
            stderr_path = os.path.join(workdir, "stderr-%d.log" % report.restarts)
            if os.path.exists(events_path):
                os.unlink(events_path)
            with open(skip_path, "w", encoding="utf-8") as f:
                f.write("\n".join(sorted(done_ids)))
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", module,
                   "--loop", loop, "--events", events_path, "--skip-file", skip_path,
                   "--timeout", str(timeout)]
            for pattern in tests or ():
                cmd += ["--test", pattern]
            if no_lists:
                cmd.append("--no-lists")
            rc, killed = _run_worker(cmd, env, workdir, stderr_path, events_path, timeout)
            events = _read_events(events_path)
            fatal = [e for e in events if e["ev"] == "fatal"]
            if fatal:
                kind = fatal[0]["kind"]
                report.status = {"no-test-package": "no-test-package",
                                 "no-loopx": "no-loopx"}.get(kind, "skipped")
                report.message = fatal[0]["msg"]
                break
            current = None
            finished = False
            progress = 0
            for ev in events:
                kind = ev["ev"]
                if kind == "plan":
                    planned.extend(t for t in ev["ids"] if t not in planned_set)
                    planned_set.update(ev["ids"])
                elif kind == "start":
                    current = ev["id"]
                elif kind == "stop":
                    report.tests[ev["id"]] = {k: v for k, v in ev.items() if k != "ev"}
                    done_ids.add(ev["id"])
                    progress += 1
                    current = None
                elif kind in ("excluded", "not-run"):
                    report.tests[ev["id"]] = {"outcome": kind, "reason": ev["reason"]}
                    done_ids.add(ev["id"])
                elif kind == "done":
                    finished = True
            err_tail = _tail(stderr_path)
            if current is not None:
                # The worker died (or was killed) inside this test.
                timed_out = killed or "Timeout (" in err_tail
                # Hangs of known failures are expected and cheap (see
                # KNOWN_FAILURE_TIMEOUT); only other hangs count toward giving up.
                if timed_out and (no_lists or exclusions.match(
                        exclusions.KNOWN_FAILURES, current, loop) is None):
                    timeouts += 1
                report.tests[current] = {
                    "id": current, "outcome": "timeout" if timed_out else "crash",
                    "errors": ["worker %s (exit code %s); end of its stderr:\n%s" % (
                        "timed out" if timed_out else "crashed", rc, err_tail)],
                    "secs": timeout if timed_out else 0, "on_target": True}
                done_ids.add(current)
            elif finished and rc != 0:
                report.tests["%s.<interpreter shutdown>" % module] = {
                    "outcome": "crash", "on_target": True,
                    "errors": ["worker exit code %s after all tests ran; end of stderr:\n%s"
                               % (rc, err_tail)]}
            elif not finished:
                # Died outside any test: import, a class/module fixture, or gc
                # between tests.
                report.tests["%s.<worker %d>" % (module, report.restarts)] = {
                    "outcome": "error", "on_target": False,
                    "errors": ["worker exit code %s outside any test; end of stderr:\n%s"
                               % (rc, err_tail)]}
            if keep_logs:
                os.makedirs(keep_logs, exist_ok=True)
                shutil.copy(stderr_path, os.path.join(
                    keep_logs, "%s-%s-%d.stderr.log" % (module, loop, report.restarts)))
            if finished or (current is None and progress == 0):
                break
            give_up = None
            if timeouts >= max_timeouts:
                give_up = "%d tests hung" % timeouts
            elif report.restarts >= MAX_WORKER_RESTARTS:
                give_up = "%d worker restarts" % report.restarts
            if give_up:
                # Bound the module's run time: everything not run yet fails.
                for tid in planned:
                    if tid not in done_ids:
                        report.tests[tid] = {
                            "id": tid, "outcome": "aborted", "on_target": False,
                            "errors": ["not run: the module was abandoned after " + give_up]}
                break
            report.restarts += 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report.secs = time.monotonic() - t_start
    report.classify()
    return report


def _run_worker(cmd, env, cwd, stderr_path, events_path, timeout):
    """Run one worker; kill it if it makes no progress for too long.

    The worker's own faulthandler watchdog normally ends a hung test; this is
    the backstop for hangs it cannot see (at interpreter shutdown, or in a
    test fixture).  Returns (exit code, killed_by_us).
    """
    grace = timeout + 30 if timeout else 600
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=err, stderr=subprocess.STDOUT,
                                start_new_session=True)
        last_size, last_change = -1, time.monotonic()
        while True:
            try:
                return proc.wait(timeout=0.25), False
            except subprocess.TimeoutExpired:
                pass
            try:
                size = os.path.getsize(events_path)
            except OSError:
                size = 0
            now = time.monotonic()
            if size != last_size:
                last_size, last_change = size, now
            elif now - last_change > grace:
                try:
                    if hasattr(os, "killpg"):
                        os.killpg(proc.pid, signal.SIGKILL)
                    else:  # Windows: no process groups from start_new_session
                        proc.kill()
                except ProcessLookupError:
                    pass
                return proc.wait(), True


def run_modules(modules, loop="loopx", jobs=2, **kw):
    """Run several modules, ``jobs`` at a time, slowest first; return {module: report}."""
    order = sorted(modules, key=module_cost, reverse=True)
    reports = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {m: pool.submit(run_module, m, loop, **kw) for m in order}
        for m in modules:
            reports[m] = futures[m].result()
    return reports


class BackgroundRunner:
    """Starts modules in a thread pool and hands out their reports on demand.

    Used by the pytest wrapper so that its one-test-per-module items, which
    pytest runs one after the other, still use both cores.
    """

    def __init__(self, modules, loop, jobs, **kw):
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs))
        self._futures = {}
        self._lock = threading.Lock()
        self._loop = loop
        self._kw = kw
        for m in sorted(modules, key=module_cost, reverse=True):
            self._futures[m] = self._pool.submit(run_module, m, loop, **kw)

    def result(self, module):
        with self._lock:
            fut = self._futures.get(module)
            if fut is None:
                fut = self._futures[module] = self._pool.submit(
                    run_module, module, self._loop, **self._kw)
        return fut.result()

    def shutdown(self):
        self._pool.shutdown(wait=False, cancel_futures=True)


def default_modules(include_pending=False):
    mods = list(CORE_MODULES)
    if include_pending:
        mods += list(PENDING_MODULES)
    return mods


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--module", "-m", action="append", default=[],
                   help="test_asyncio module to run (repeatable, or comma-separated)")
    p.add_argument("--all", action="store_true",
                   help="run every core module and the pending transport ones")
    p.add_argument("--core", action="store_true", help="run every core module")
    p.add_argument("--loop", choices=("loopx", "asyncio", "proactor"), default="loopx",
                   help="proactor: asyncio's proactor loop over loopx._proactor "
                        "(a LOOPX_PROACTOR_EMU=1 build; PROACTOR_MODULES by default)")
    p.add_argument("--json", metavar="FILE", help="write per-test results as JSON")
    p.add_argument("--test", "-k", action="append", default=[], metavar="GLOB",
                   help="only tests whose id (e.g. test_tasks.CTaskTests.test_x) "
                        "matches this glob; repeatable")
    p.add_argument("--timeout", type=float, default=DEFAULT_TEST_TIMEOUT,
                   help="seconds one test may take before it counts as hung")
    p.add_argument("--jobs", "-j", type=int, default=2)
    p.add_argument("--no-lists", action="store_true",
                   help="ignore EXCLUDED/KNOWN_FAILURES: run and judge everything")
    p.add_argument("--logs", metavar="DIR", help="keep each worker's stderr in DIR")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="print the traceback of every unexpected failure")
    p.add_argument("--list-modules", action="store_true")
    # Internal: the worker subprocess.
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--events", help=argparse.SUPPRESS)
    p.add_argument("--skip-file", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        return worker_main(args)

    if args.list_modules:
        for m in CORE_MODULES:
            print(m)
        for m, (why, _) in PENDING_MODULES.items():
            print("%s  (pending: %s)" % (m, why))
        return 0

    modules = [m for arg in args.module for m in arg.split(",") if m]
    if args.all:
        modules += default_modules(include_pending=True)
    elif args.loop == "proactor" and not modules:
        modules += PROACTOR_MODULES
    elif args.core or not modules:
        modules += default_modules()
    modules = list(dict.fromkeys(modules))

    kw = dict(tests=args.test, timeout=args.timeout, no_lists=args.no_lists,
              keep_logs=args.logs)
    reports = run_modules(modules, args.loop, jobs=args.jobs, **kw)

    status = 0
    totals = {}
    for m in modules:
        r = reports[m]
        print(r.summary_line())
        for line in r.details(verbose=args.verbose):
            print(line)
        if r.status == "no-loopx":
            status = max(status, 2)
        elif r.status == "ok" and r.unexpected:
            status = max(status, 1)
        for v in ("passed", "fixed", "skipped", "excluded", "known-failing", "unexpected"):
            totals[v] = totals.get(v, 0) + r.count(v)
    if len(modules) > 1:
        print("conformance total: %d passed, %d skipped, %d excluded, "
              "%d known-failing, %d unexpected, %d known failures now pass" % (
                  totals["passed"] + totals["fixed"], totals["skipped"],
                  totals["excluded"], totals["known-failing"], totals["unexpected"],
                  totals["fixed"]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({m: reports[m].to_json() for m in modules}, f, indent=1, sort_keys=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
