"""CPython's own test_asyncio, run against loopx: one pytest item per module.

Each item runs its module in worker subprocesses (see run_cpython.py) and
fails if any test failed that is neither EXCLUDED nor a KNOWN_FAILURE
(exclusions.py).  The per-module counts appear in pytest's terminal summary
(conftest.py).

Environment:
  LOOPX_CONFORMANCE_LOOP=asyncio   run against the standard loop (harness check)
  LOOPX_CONFORMANCE_ALL=1          also run the transport/subprocess modules
  LOOPX_CONFORMANCE_ALLOW_MISSING=1  skip instead of fail when loopx is not built
  LOOPX_CONFORMANCE_JOBS=N         modules run in parallel (default 2)
  LOOPX_CONFORMANCE_TIMEOUT=S      seconds before one test counts as hung (30)
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import exclusions  # noqa: E402
import run_cpython as harness  # noqa: E402

LOOP = os.environ.get("LOOPX_CONFORMANCE_LOOP", "loopx")
INCLUDE_PENDING = os.environ.get("LOOPX_CONFORMANCE_ALL") == "1"
ALLOW_MISSING = os.environ.get("LOOPX_CONFORMANCE_ALLOW_MISSING") == "1"
JOBS = int(os.environ.get("LOOPX_CONFORMANCE_JOBS", "2"))


def _module_params():
    params = [pytest.param(m, id=m) for m in harness.CORE_MODULES]
    for module, (why, _cost) in harness.PENDING_MODULES.items():
        marks = () if INCLUDE_PENDING else pytest.mark.skip(
            reason="%s: pending %s (LOOPX_CONFORMANCE_ALL=1 runs it)" % (module, why))
        params.append(pytest.param(module, id=module, marks=marks))
    return params


def _selected_modules(session):
    """Modules of the conformance items pytest will really run (after -k, skips)."""
    modules = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if (callspec is None or "module" not in callspec.params
                or getattr(item, "function", None) is not test_cpython_module):
            continue
        if item.get_closest_marker("skip") is not None:
            continue
        modules.append(callspec.params["module"])
    return modules


@pytest.fixture(scope="session")
def conformance_runner(request):
    # All selected modules start at once in a 2-worker pool, so the items,
    # which pytest runs one by one, still keep both cores busy.  Under
    # pytest-xdist every worker collects every item, so there each module is
    # only started when its own item asks for it.
    under_xdist = hasattr(request.config, "workerinput")
    modules = [] if under_xdist else _selected_modules(request.session)
    runner = harness.BackgroundRunner(modules, LOOP, 1 if under_xdist else JOBS)
    yield runner
    runner.shutdown()


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("module", _module_params())
def test_cpython_module(module, conformance_runner, request):
    report = conformance_runner.result(module)
    request.node.user_properties.append(("conformance", report.summary_line()))
    details = report.details()
    if details:
        request.node.user_properties.append(("conformance_details", "\n".join(details)))

    if report.status == "no-test-package":
        pytest.skip("Python %s has no test.test_asyncio package (%s); Debian/Ubuntu "
                    "ship it as libpython3.X-testsuite" % (report.python, report.message))
    if report.status == "no-loopx":
        message = ("loopx is not importable for Python %s: %s (build it with "
                   "`python setup.py build_ext --inplace`)" % (report.python, report.message))
        if ALLOW_MISSING:
            pytest.skip(message)
        pytest.fail(message + "; set LOOPX_CONFORMANCE_ALLOW_MISSING=1 to skip instead",
                    pytrace=False)
    if report.status == "skipped":
        pytest.skip("%s: %s" % (module, report.message))
    assert report.status == "ok", report.summary_line()

    if report.unexpected:
        lines = [report.summary_line(), "unexpected failures (each is a loopx bug, or "
                 "belongs in tests/conformance/exclusions.py with a reason):"]
        for tid in report.unexpected:
            rec = report.tests[tid]
            lines.append("  %s %s: %s" % (rec["outcome"], tid, harness.key_line(rec)))
        lines.append("repro: python tests/conformance/run_cpython.py -m %s -v -k '<id>'"
                     % module)
        # The first traceback in full, so the failure report is self-contained.
        first = report.tests[report.unexpected[0]]
        if first.get("errors"):
            lines.append("")
            lines.append("first traceback (%s):" % report.unexpected[0])
            lines.append(first["errors"][-1])
        pytest.fail("\n".join(lines), pytrace=False)


def test_lists_are_well_formed():
    """Every list entry names a known module, has a reason, and is not repeated."""
    known = set(harness.CORE_MODULES) | set(harness.PENDING_MODULES)
    seen = set()
    for name, entries in (("EXCLUDED", exclusions.EXCLUDED),
                          ("KNOWN_FAILURES", exclusions.KNOWN_FAILURES)):
        for entry in entries:
            assert entry.pattern.split(".", 1)[0] in known, (name, entry.pattern)
            assert entry.reason.strip(), (name, entry.pattern)
            assert set(entry.loops) <= {"loopx", "asyncio", "proactor"}, (name, entry.pattern)
            key = (entry.pattern, entry.py, entry.loops)
            assert key not in seen, ("listed twice", entry.pattern)
            seen.add(key)


def test_harness_survives_crash_and_hang():
    """A segfault or a GIL-holding hang costs one test, not the module."""
    crash = "test_futures2.CFutureTests.test_future_traceback"
    hang = "test_futures2.FutureReprTests.test_recursive_repr_for_pending_tasks"
    report = harness.run_module(
        "test_futures2", "asyncio", timeout=3,
        extra_env={"LOOPX_CONFORMANCE_SELFTEST": "crash=%s;hang=%s" % (crash, hang)})
    if report.status != "ok":
        pytest.skip(report.summary_line())
    assert report.tests[crash]["outcome"] == "crash"
    assert report.tests[hang]["outcome"] == "timeout"
    others = {t: r["outcome"] for t, r in report.tests.items() if t not in (crash, hang)}
    assert others and set(others.values()) == {"pass"}, others
    assert report.restarts == 2
    assert "Segmentation fault" in harness.key_line(report.tests[crash])
