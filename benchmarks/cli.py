"""``python -m benchmarks``: probe the loops, run the session, report.

Exit status: 0 when the session ran (FAILED cells are results, not errors),
1 when no requested loop could run, 2 for bad arguments.
"""
import argparse
import datetime
import os
import shutil
import sys
import tempfile
import time

from . import native, plot, report, workloads
from .loops import DEFAULT_LOOPS, parse_loops, probe, probe_modules
from .machine import facts, pin, unpin, usable_cpus
from .progress import make_progress
from .runner import Budget, Context
from .session import applies, execute, plan

# quick: a few minutes for the whole registry on a 2-core machine; full: for
# numbers to publish. Budgets are per run (one process, one workload, one loop).
MODES = {
    "quick": {"rounds": 3, "micro": Budget(warmup=0.1, duration=0.25),
              "network": Budget(warmup=0.1, duration=0.3)},
    "full": {"rounds": 7, "micro": Budget(warmup=0.5, duration=2.0),
             "network": Budget(warmup=1.0, duration=3.0)},
}
_RUN_OVERHEAD_S = 0.35   # interpreter start-up, imports, stop; for the estimate


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark loopx against asyncio, uvloop and rloop, side by side.",
    )
    p.add_argument("--loops", default=DEFAULT_LOOPS,
                   help="comma-separated: loopx, asyncio, uvloop, rloop, raw-c (the native "
                        "epoll reference server), or any module:factory "
                        f"(default: {DEFAULT_LOOPS})")
    p.add_argument("--workloads", default="all",
                   help="comma-separated names, globs (tcp_echo_*) or groups "
                        "(micro, network); default: all. See --list")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="short runs, 3 rounds, a few minutes in all (default)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="long runs, 7 rounds, for numbers to publish")
    p.set_defaults(mode="quick")
    p.add_argument("--rounds", type=int, help="rounds per (loop, workload)")
    p.add_argument("--duration", type=float, help="measured seconds per run (overrides mode)")
    p.add_argument("--warmup", type=float, help="warm-up seconds per run (overrides mode)")
    p.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    p.add_argument("--plot", metavar="FILE.png",
                   help="write the throughput chart (and FILE-latency.png)")
    p.add_argument("--pythonpath", action="append", default=[], metavar="DIR",
                   help="prepend DIR to the children's sys.path (they run isolated from "
                        "the checkout; e.g. --pythonpath . to measure an in-place build)")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--no-progress", action="store_true", help="plain progress lines")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    return p


def _list_workloads():
    for w in workloads.REGISTRY:
        print(f"{w.name:24} {w.group:8} {w.description}")


def _budgets(args):
    budgets = {}
    for group in workloads.GROUPS:
        base = MODES[args.mode][group]
        budgets[group] = Budget(
            warmup=base.warmup if args.warmup is None else args.warmup,
            duration=base.duration if args.duration is None else args.duration,
        )
    return budgets


def _say(text):
    print(f"benchmarks: {text}", file=sys.stderr, flush=True)


def _prepare_native(selected, loops, bin_dir):
    """Build the C helpers when a network workload or raw-c needs them."""
    if not any(w.kind == "server" for w in selected) and not any(l.is_raw_c for l in loops):
        return None, None
    try:
        return native.ensure_built(bin_dir), None
    except native.BuildError as exc:
        return None, str(exc)


def main(argv=None):
    try:
        return _main(argv)
    except KeyboardInterrupt:
        # Each run's children are killed by its own cleanup on the way out.
        _say("interrupted")
        return 130


def _split_runnable(selected, ctx, build_error):
    """(runnable workloads, {skipped name: why}, versions of required modules)."""
    required = sorted({m for w in selected for m in w.requires})
    versions = probe_modules(required, ctx) if required else {}
    runnable, skipped = [], {}
    for w in selected:
        missing = [m for m in w.requires if not versions.get(m)]
        if w.kind == "server" and ctx.bin_dir is None:
            skipped[w.name] = f"C helpers not built: {build_error}"
        elif missing:
            skipped[w.name] = f"{', '.join(missing)} not installed"
        else:
            runnable.append(w)
    for name, why in skipped.items():
        _say(f"workload {name} skipped: {why}")
    return runnable, skipped, versions


def _write_outputs(data, args):
    sys.stdout.write(report.markdown(data))
    if args.json:
        report.write_json(data, args.json)
        _say(f"JSON written to {args.json}")
    if args.plot:
        try:
            for path in plot.write_charts(data, args.plot):
                _say(f"chart written to {path}")
        except plot.PlotUnavailable as exc:
            _say(f"no chart: {exc}")


def _main(argv):
    args = build_parser().parse_args(argv)
    if args.list:
        _list_workloads()
        return 0
    if (args.rounds is not None and args.rounds < 1) or (args.duration is not None
                                                         and args.duration <= 0):
        _say("--rounds must be at least 1 and --duration positive")
        return 2
    try:
        selected = workloads.select(args.workloads)
    except ValueError as exc:
        _say(str(exc))
        return 2
    loops = parse_loops(args.loops)
    if not loops:
        _say("--loops names no loop")
        return 2
    rounds = args.rounds or MODES[args.mode]["rounds"]
    budgets = _budgets(args)
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()

    cpus = usable_cpus()
    server_cpu = client_cpu = None
    if len(cpus) >= 2 and not args.no_pin:
        server_cpu, client_cpu = cpus[0], cpus[1]
        # The harness itself sits with the load generator, off the measured
        # CPU, until the session ends.
        pin(0, client_cpu)

    workdir = tempfile.mkdtemp(prefix="loopx-bench-")
    try:
        bin_dir, build_error = _prepare_native(
            selected, loops, os.environ.get("LOOPX_BENCH_BIN", native.DEFAULT_BIN_DIR))
        # Absolute: children run with the scratch directory as their cwd.
        pythonpath = tuple(os.path.abspath(p) for p in args.pythonpath)
        ctx = Context(workdir=workdir, bin_dir=bin_dir, pythonpath=pythonpath,
                      server_cpu=server_cpu, client_cpu=client_cpu)

        _say("probing loops in isolated interpreters ...")
        for loop in loops:
            probe(loop, ctx)
            if not loop.available:
                _say(f"{loop.name} skipped: {loop.reason}")
        available = [loop for loop in loops if loop.available]
        if not available:
            _say("no requested loop can run here")
            return 1
        runnable, skipped, versions = _split_runnable(selected, ctx, build_error)

        runs = plan(available, runnable, rounds)
        estimate = sum(budgets[w.group].warmup + budgets[w.group].duration + _RUN_OVERHEAD_S
                       for _, w, _ in runs)
        _say(f"{len(runs)} runs planned ({len(available)} loops, {len(runnable)} workloads, "
             f"{rounds} rounds), about {estimate / 60:.1f} min")
        with make_progress(len(runs), fancy=not args.no_progress) as progress:
            results = execute(runs, budgets, ctx, progress, rounds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if client_cpu is not None:
            unpin(0, cpus)

    harness = {
        "mode": args.mode, "rounds": rounds, "argv": sys.argv[1:] if argv is None else argv,
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": time.monotonic() - t0,
        "budgets": {g: vars(b) for g, b in budgets.items()},
        "server_cpu": server_cpu, "client_cpu": client_cpu,
        "pythonpath": list(pythonpath),
    }
    data = report.build(harness=harness, machine=dict(facts(), workload_modules=versions),
                        loops=loops, skipped_workloads=skipped, results=results,
                        workloads=[w for w in runnable if any(applies(l, w) for l in available)])
    _write_outputs(data, args)
    return 0
