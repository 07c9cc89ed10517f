"""One round of a server workload: the loop serves, native code drives.

Two processes on two cores: the server (a Python child running the loop
under test, or ``raw_server`` for raw-c) pinned to one CPU, the C load
generator pinned to the other, so the client never steals the server's
CPU and the server's CPU time is its own.

The load generator prints MEASURE_START / MEASURE_END around its measured
window; the server's CPU time (``/proc``) and the machine's CPU pressure are
read exactly there, so start-up and warm-up are never counted. The idle
workload reads the server's RSS before the clients connect and at
IDLE_READY, when all of them are open and proven.
"""
import functools
import os
import time

from .machine import cpu_pressure_stall_us, process_cpu_ns, process_rss_bytes
from .runner import ChildProcess, RunResult, child_failure, failed, python_child

_READY_TIMEOUT = 30.0    # interpreter start, imports, loop creation, bind
_STOP_TIMEOUT = 10.0
_IO_TIMEOUT = 5.0        # loadgen: seconds without a reply before it fails


def _endpoint(address):
    if address.get("family") == "unix":
        return f"unix:{address['path']}"
    return f"{address['family']}:{address['host']}:{address['port']}"


def _start_server(loop, workload, ctx, unix_path):
    if loop.is_raw_c:
        if workload.raw_c == "unix":
            spec = f"unix:{unix_path}"
        elif workload.raw_c == "udp":
            spec = "udp:127.0.0.1:0"
        else:
            spec = "tcp:127.0.0.1:0"
        argv = [os.path.join(ctx.bin_dir, "raw_server"), workload.raw_c, spec]
        return ChildProcess(argv, ctx, cpu=ctx.server_cpu)
    params = dict(workload.params)
    if params.get("family") == "unix":
        params["unix_path"] = unix_path
    payload = {"factory": loop.factory, "module": workload.module, "params": params}
    return python_child("serve", payload, ctx, cpu=ctx.server_cpu)


def _loadgen_argv(workload, budget, ctx, endpoint):
    opts = workload.client
    argv = [os.path.join(ctx.bin_dir, "loadgen"), opts["mode"], endpoint,
            "-c", str(opts.get("conns", 10)), "-s", str(opts.get("size", 1024)),
            "-w", str(budget.warmup), "-d", str(budget.duration),
            "-t", str(_IO_TIMEOUT)]
    if "pipeline" in opts:
        argv += ["-p", str(opts["pipeline"])]
    if opts.get("tls"):
        argv += ["-S", "tls"]
    return argv


def run_server(loop, workload, budget, ctx, rnd):
    """Serve ``workload`` on ``loop`` against the load generator; one RunResult."""
    fail = functools.partial(failed, loop.name, workload.name, rnd)
    unix_path = os.path.join(ctx.workdir, f"{workload.name}-{os.getpid()}-{rnd}.sock")
    server = _start_server(loop, workload, ctx, unix_path)
    client = None
    try:
        try:
            line = server.expect({"READY", "RESULT"}, time.monotonic() + _READY_TIMEOUT)
        except TimeoutError:
            return fail("timeout", f"the server was not ready after {_READY_TIMEOUT:.0f} s")
        if line is None:
            return fail("crash", server.death_reason())
        if line[0] == "RESULT":
            return child_failure(loop.name, workload.name, rnd, line[1])

        rss_before = process_rss_bytes(server.pid)
        client = ChildProcess(_loadgen_argv(workload, budget, ctx, _endpoint(line[1])),
                              ctx, cpu=ctx.client_cpu)
        marks = _drive_client(client, server, budget, fail)
        if isinstance(marks, RunResult):
            return marks
        verdict = marks["result"]
        if not verdict.get("ok"):
            return fail(verdict.get("kind", "verification"),
                        f"load generator: {verdict.get('error')}")
        server_result = _stop_server(server)
        if not server_result.get("ok"):
            return child_failure(loop.name, workload.name, rnd, server_result)
        return _result(loop, workload, rnd, marks, rss_before, fail)
    finally:
        if client is not None:
            client.close()
        server.close()
        if os.path.exists(unix_path):
            os.unlink(unix_path)


def _drive_client(client, server, budget, fail):
    """Follow the load generator's lines, taking readings at each mark.

    Returns the marks (with the generator's ``result``) or a failed RunResult.
    """
    marks = {}
    deadline = time.monotonic() + budget.warmup + budget.duration + 60.0
    while "result" not in marks:
        try:
            line = client.read_line(deadline)
        except TimeoutError:
            return fail("timeout", "the load generator did not finish in time")
        if line is None:
            break
        tag, payload = line
        if tag == "MEASURE_START":
            marks["cpu0"], marks["stall0"] = process_cpu_ns(server.pid), cpu_pressure_stall_us()
        elif tag == "MEASURE_END":
            marks["cpu1"], marks["stall1"] = process_cpu_ns(server.pid), cpu_pressure_stall_us()
        elif tag == "IDLE_READY":
            marks["rss_idle"] = process_rss_bytes(server.pid)
            client.send_line("go")
        elif tag == "RESULT":
            marks["result"] = payload
    # A server that died (under load or right after) is the story, whatever
    # the client saw.
    if server.proc.poll() is not None:
        return fail("crash", f"server {server.death_reason()}")
    if "result" not in marks:
        return fail("crash", f"load generator {client.death_reason()}")
    return marks


def _stop_server(server):
    server.close_stdin()   # EOF on stdin: the server's signal to stop
    try:
        line = server.expect({"RESULT"}, time.monotonic() + _STOP_TIMEOUT)
    except TimeoutError:
        return {"ok": False, "error_type": "timeout",
                "error": f"the server did not stop within {_STOP_TIMEOUT:.0f} s of being asked"}
    if line is None:
        # raw_server has no RESULT line; for it a clean exit is success.
        code = server.wait(_STOP_TIMEOUT)
        if code == 0:
            return {"ok": True}
        return {"ok": False, "error_type": "crash", "error": server.death_reason()}
    return line[1]


def _result(loop, workload, rnd, marks, rss_before, fail):
    res = marks["result"]
    if workload.client["mode"] == "idle":
        conns = res["conns"]
        if rss_before is None or marks.get("rss_idle") is None:
            return fail("error", "could not read the server's RSS")
        return RunResult(
            loop=loop.name, workload=workload.name, round=rnd, ok=True,
            value=max(0, marks["rss_idle"] - rss_before) / conns,
            ops=conns, seconds=res["seconds"],
            p50_us=res.get("p50_us"), p99_us=res.get("p99_us"),
            extra={"conns_per_s": conns / res["seconds"] if res["seconds"] else None,
                   "rss_before": rss_before, "rss_idle": marks["rss_idle"]},
        )
    ops, seconds = res["ops"], res["seconds"]
    if ops <= 0:
        return fail("verification", "no round trip completed in the measured window")
    cpu_us = None
    if marks.get("cpu0") is not None and marks.get("cpu1") is not None:
        cpu_us = (marks["cpu1"] - marks["cpu0"]) / 1e3 / ops
    stall = None
    if marks.get("stall0") is not None and marks.get("stall1") is not None:
        stall = (marks["stall1"] - marks["stall0"]) / 1e6 / seconds
    return RunResult(
        loop=loop.name, workload=workload.name, round=rnd, ok=True,
        value=ops / seconds, ops=ops, seconds=seconds, cpu_us_per_op=cpu_us,
        stall_fraction=stall, p50_us=res.get("p50_us"), p99_us=res.get("p99_us"),
        extra={"bytes_verified": res.get("bytes_verified")},
    )
