"""A session: which runs happen in which order, and running them.

Order matters on a shared, noisy machine. Rounds are the outer loop, so each
loop's rounds are spread over the whole session rather than bunched in one
quiet or busy stretch; within a round, each workload's loops run in an order
rotated by the round number (A B C, B C A, C A B, ...) so no loop always runs
first (cold page cache, CPU frequency ramp) or right after a heavy neighbour.
"""
import time

from .network import run_server
from .runner import run_inproc


def applies(loop, workload):
    """raw-c exists only for the network workloads that have a C server."""
    return not loop.is_raw_c or workload.raw_c is not None


def plan(loops, workloads, rounds):
    """``[(round, workload, loop), ...]`` in execution order."""
    runs = []
    for rnd in range(rounds):
        for workload in workloads:
            eligible = [loop for loop in loops if applies(loop, workload)]
            if not eligible:
                continue
            k = rnd % len(eligible)
            runs.extend((rnd, workload, loop) for loop in eligible[k:] + eligible[:k])
    return runs


def execute(runs, budgets, ctx, progress, rounds):
    """Run the plan; returns the RunResults.

    Once a (loop, workload) fails, its later rounds are skipped: the cell is
    FAILED either way, and a hang would otherwise cost a timeout per round.
    """
    results, failed_pairs = [], set()
    for rnd, workload, loop in runs:
        if (loop.name, workload.name) in failed_pairs:
            progress.advance()
            continue
        progress.step(f"round {rnd + 1}/{rounds} · {workload.name} · {loop.name}")
        budget = budgets[workload.group]
        t0 = time.monotonic()
        if workload.kind == "server":
            result = run_server(loop, workload, budget, ctx, rnd)
        else:
            result = run_inproc(loop, workload, budget, ctx, rnd)
        # Whole cost of the run (start-up included), for planning budgets.
        result.extra["wall_seconds"] = round(time.monotonic() - t0, 3)
        results.append(result)
        if not result.ok:
            failed_pairs.add((loop.name, workload.name))
            progress.note(f"FAILED {loop.name} · {workload.name}: {result.reason}")
        progress.advance()
    return results
