"""Tests of the benchmark harness (benchmarks/) itself, not of loopx.

They run real child processes on the standard asyncio loop, and on loops in
``benchmarks.selftest`` that misbehave on purpose, with tiny budgets so the
whole file takes seconds. Nothing here needs uvloop, rloop or loopx; the
chart test skips without matplotlib and the load-generator tests skip
without a C compiler.
"""
import json
import os
import subprocess

import pytest

import helpers

helpers.skip_module_on_windows("the benchmark harness is Linux's (/proc, CPU pinning)")

from benchmarks import cli, native, report, workloads
from benchmarks.loops import parse_loops
from benchmarks.network import run_server
from benchmarks.runner import Budget, Context, RunResult, run_inproc
from benchmarks.session import plan
from benchmarks.stats import Summary, ratio

TINY = Budget(warmup=0.02, duration=0.1)
# Network runs need at least one round trip inside the window, even on a
# loaded machine: a little longer.
NET = Budget(warmup=0.05, duration=0.3)
TINY_ARGS = ["--warmup", "0.02", "--duration", "0.1", "--no-progress", "--no-pin"]


def workload(name):
    return next(w for w in workloads.REGISTRY if w.name == name)


def loop(spec):
    return parse_loops(spec)[0]


@pytest.fixture
def ctx(tmp_path):
    return Context(workdir=str(tmp_path), timeout_slack=20.0)


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory):
    if native.find_compiler() is None:
        pytest.skip("no C compiler: the native load generator cannot be built")
    return native.ensure_built(str(tmp_path_factory.mktemp("bench-bin")))


# --- in-process workloads -------------------------------------------------

def test_micro_workload_on_asyncio_gives_a_positive_number(ctx):
    result = run_inproc(loop("asyncio"), workload("call_soon"), TINY, ctx, 0)
    assert result.ok, result.reason
    assert result.value > 0 and result.ops > 0
    assert result.cpu_us_per_op > 0


@pytest.mark.parametrize(
    "name", [w.name for w in workloads.REGISTRY if w.kind == "inproc" and w.name != "call_soon"]
)
def test_every_inproc_workload_verifies_on_asyncio(ctx, name):
    # The reference loop must pass every verifier, or the verifier is wrong.
    result = run_inproc(loop("asyncio"), workload(name), TINY, ctx, 0)
    assert result.ok, result.reason
    assert result.value > 0


def test_micro_verifier_catches_a_duplicated_callback(ctx):
    result = run_inproc(loop("benchmarks.selftest:duplicating_loop"), workload("call_soon"),
                        TINY, ctx, 0)
    assert not result.ok
    assert result.reason_kind == "verification"
    assert result.value is None


def test_pipe_verifier_catches_a_flipped_byte(ctx):
    # cat hands back what it was given: a byte flipped on the way into its
    # stdin must come back as a wrong byte at a known offset, never as MiB/s.
    result = run_inproc(loop("benchmarks.selftest:corrupting_loop"),
                        workload("subprocess_cat_pipe"), TINY, ctx, 0)
    assert not result.ok
    assert result.reason_kind == "verification"
    assert "wrong byte at offset" in result.reason
    assert result.value is None


def test_cat_pipe_reports_mib_per_second(ctx):
    w = workload("subprocess_cat_pipe")
    assert (w.group, w.metric) == ("network", "MiB/s")
    assert w in workloads.select("subprocess_*")
    result = run_inproc(loop("asyncio"), w, TINY, ctx, 0)
    assert result.ok, result.reason
    # One operation is one MiB, and every unit moves w.params["mib"] of them.
    assert result.ops % w.params["mib"] == 0
    assert result.value == result.ops / result.seconds


def test_a_missing_loop_feature_fails_with_the_exception(ctx):
    # What loopx looks like before its transports land: the server never
    # starts, so no load generator is needed to see the failure.
    result = run_server(loop("benchmarks.selftest:unimplemented_loop"),
                        workload("tcp_echo_protocol_1k"), NET, ctx, 0)
    assert not result.ok
    assert result.reason_kind == "NotImplementedError"
    assert "transports have not landed" in result.reason


# --- network workloads (native load generator) ----------------------------

# Echo, connection churn (one echo per connection: the loadgen's "connect"
# mode counts whole connections), and echo over TLS (the loadgen is a TLS
# client; the server's certificate comes from trustme).
ECHO_MODES = ["tcp_echo_protocol_1k", "tcp_connect_protocol_1k", "tls_echo_streams_1k",
              "tcp_connect_streams_1k"]


def _needs(name):
    for module in workload(name).requires:
        pytest.importorskip(module, reason=f"{name} needs {module}")


@pytest.mark.parametrize("name", ECHO_MODES)
def test_echo_verifier_passes_asyncio(ctx, bin_dir, name):
    _needs(name)
    ctx.bin_dir = bin_dir
    result = run_server(loop("asyncio"), workload(name), NET, ctx, 0)
    assert result.ok, result.reason
    assert result.value > 0
    assert 0 < result.p50_us <= result.p99_us


@pytest.mark.parametrize("name", ECHO_MODES[:3])
def test_echo_verifier_catches_a_flipped_byte(ctx, bin_dir, name):
    _needs(name)
    ctx.bin_dir = bin_dir
    result = run_server(loop("benchmarks.selftest:corrupting_loop"), workload(name), NET, ctx, 0)
    assert not result.ok
    assert result.reason_kind == "verification"
    assert "echoed byte" in result.reason
    assert result.value is None


def test_raw_c_reference_server_passes_the_verifier(ctx, bin_dir):
    ctx.bin_dir = bin_dir
    result = run_server(loop("raw-c"), workload("tcp_echo_protocol_1k"), NET, ctx, 0)
    assert result.ok, result.reason
    assert result.value > 0


def test_tls_loadgen_fails_cleanly_on_a_plaintext_server(bin_dir):
    # A server that does not speak TLS (the raw C one echoes the ClientHello
    # back) must fail the handshake with a reason, not hang or post a number.
    raw = subprocess.Popen([os.path.join(bin_dir, "raw_server"), "tcp", "tcp:127.0.0.1:0"],
                           stdout=subprocess.PIPE, text=True)
    try:
        ready = raw.stdout.readline().split()
        assert ready[0] == "READY", ready
        port = json.loads(" ".join(ready[1:]))["port"]
        gen = subprocess.run([os.path.join(bin_dir, "loadgen"), "echo", f"tcp:127.0.0.1:{port}",
                              "-c", "1", "-d", "0.1", "-t", "5", "-S", "tls"],
                             capture_output=True, text=True, timeout=30)
    finally:
        raw.kill()
        raw.wait()
        raw.stdout.close()
    assert gen.returncode == 1
    verdict = json.loads(gen.stdout.splitlines()[-1].removeprefix("RESULT "))
    assert verdict["ok"] is False
    assert "TLS handshake" in verdict["error"]


@pytest.mark.parametrize("mode, endpoint", [("udp", "udp:127.0.0.1:9"),
                                            ("connect", "tcp:127.0.0.1:9"),
                                            ("echo", "unix:/tmp/x.sock")])
def test_tls_loadgen_is_echo_over_tcp_only(bin_dir, mode, endpoint):
    gen = subprocess.run([os.path.join(bin_dir, "loadgen"), mode, endpoint, "-S", "tls"],
                         capture_output=True, text=True, timeout=30)
    assert gen.returncode == 2
    assert "usage" in gen.stderr


# --- the whole command ----------------------------------------------------

def test_end_to_end_markdown_and_json(tmp_path, capsys):
    out = tmp_path / "report.json"
    status = cli.main(["--loops", "asyncio,no_such_loop_module",
                       "--workloads", "call_soon,sleep0_1task", "--rounds", "2",
                       "--json", str(out), *TINY_ARGS])
    assert status == 0
    markdown = capsys.readouterr().out

    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header[:3] == ["workload", "unit", "asyncio"]
    rows = {line.split("|")[1].strip() for line in table[1:3]}
    assert rows == {"call_soon", "sleep0_1task"}
    assert "no_such_loop_module: skipped, not importable" in markdown

    data = json.loads(out.read_text())
    for name in ("call_soon", "sleep0_1task"):
        summary = data["summaries"][name]["asyncio"]
        assert summary["status"] == "ok"
        assert 0 < summary["min"] <= summary["median"] <= summary["max"]
        assert summary["rounds"] == 2
    missing = next(l for l in data["loops"] if l["name"] == "no_such_loop_module")
    assert missing["available"] is False
    assert data["machine"]["python"]


def test_relative_pythonpath_reaches_the_children(tmp_path, monkeypatch, capsys):
    # Children run in a scratch cwd: "--pythonpath ." (the README's way to
    # measure an in-place build) must mean the caller's directory.
    (tmp_path / "inplace_loop.py").write_text(
        "import asyncio\nnew_event_loop = asyncio.new_event_loop\n")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "report.json"
    status = cli.main(["--loops", "inplace_loop", "--workloads", "call_soon", "--rounds", "1",
                       "--pythonpath", ".", "--json", str(out), *TINY_ARGS])
    assert status == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    assert data["summaries"]["call_soon"]["inplace_loop"]["status"] == "ok"
    assert data["harness"]["pythonpath"] == [str(tmp_path)]


def test_unknown_workload_is_a_usage_error(capsys):
    assert cli.main(["--workloads", "no_such_workload", "--no-progress"]) == 2
    assert "no_such_workload" in capsys.readouterr().err


# --- planning, statistics, rendering (no processes) ------------------------

def test_plan_interleaves_loops_and_rotates_the_first():
    loops = parse_loops("a:f,b:f,c:f")
    runs = plan(loops, [workload("call_soon")], rounds=3)
    order = [[l.name for r, _, l in runs if r == rnd] for rnd in range(3)]
    assert order == [["a:f", "b:f", "c:f"], ["b:f", "c:f", "a:f"], ["c:f", "a:f", "b:f"]]


def test_raw_c_runs_only_where_a_c_server_exists():
    runs = plan(parse_loops("asyncio,raw-c"),
                [workload("call_soon"), workload("tcp_echo_protocol_1k")], rounds=1)
    pairs = {(w.name, l.name) for _, w, l in runs}
    assert ("call_soon", "raw-c") not in pairs
    assert ("tcp_echo_protocol_1k", "raw-c") in pairs


def test_ratio_reads_higher_is_better_for_every_metric():
    fast = Summary("x", "w", "ok", median=200.0)
    slow = Summary("y", "w", "ok", median=100.0)
    assert ratio(fast, slow) == 2.0
    # Memory per connection: less is better, so the ratio is inverted.
    assert ratio(slow, fast, higher_is_better=False) == 2.0
    assert ratio(Summary("z", "w", "failed"), slow) is None


def _synthetic_report():
    loops = parse_loops("asyncio,uvloop")
    for spec in loops:
        spec.info = {"version": "test"}
    chosen = [workload("call_soon"), workload("tcp_echo_protocol_1k")]
    results = [
        RunResult("asyncio", "call_soon", 0, True, value=100.0, ops=10, seconds=0.1),
        RunResult("uvloop", "call_soon", 0, True, value=250.0, ops=25, seconds=0.1),
        RunResult("asyncio", "tcp_echo_protocol_1k", 0, True, value=10.0, ops=1,
                  seconds=0.1, p50_us=50.0, p99_us=90.0),
        RunResult("uvloop", "tcp_echo_protocol_1k", 0, False, reason_kind="NotImplementedError",
                  reason="NotImplementedError in create_server()"),
    ]
    harness = {"mode": "quick", "rounds": 1, "started": "now", "seconds": 1.0,
               "budgets": {"micro": {"warmup": 0, "duration": 1},
                           "network": {"warmup": 0, "duration": 1}},
               "server_cpu": None, "client_cpu": None}
    machine = {"cpu_model": "test", "cpus_online": 2, "kernel": "test", "python": "3",
               "loadavg": None}
    return report.build(harness=harness, machine=machine, loops=loops, workloads=chosen,
                        skipped_workloads={}, results=results)


def test_markdown_shows_failures_as_failed_never_as_a_number():
    markdown = report.markdown(_synthetic_report())
    row = next(line for line in markdown.splitlines() if line.startswith("| tcp_echo_protocol_1k"))
    assert "FAILED (NotImplementedError)" in row
    call_soon = next(line for line in markdown.splitlines() if line.startswith("| call_soon"))
    assert "2.50x" in call_soon   # uvloop x asyncio
    assert "NotImplementedError in create_server()" in markdown


def test_charts_are_written(tmp_path):
    pytest.importorskip("matplotlib", reason="charts need matplotlib (optional)")
    from benchmarks import plot

    paths = plot.write_charts(_synthetic_report(), str(tmp_path / "chart.png"))
    assert [p.rsplit("/", 1)[1] for p in paths] == ["chart.png", "chart-latency.png"]
    for path in paths:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
