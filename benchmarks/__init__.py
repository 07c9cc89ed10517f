"""loopx's benchmark harness: loopx side by side with asyncio, uvloop, rloop.

    python -m benchmarks                  # quick: all workloads, 3 rounds
    python -m benchmarks --full --json out.json --plot out.png
    python -m benchmarks --list           # the workloads
    bash scripts/bench.sh                 # the same, with all setup done first

Layout, one concern per module:
  cli        arguments, the session from probe to report
  loops      loop names and factories; probing what is importable
  session    run order (rounds outer, loops rotated) and execution
  runner     one in-process run in a child; the child-process plumbing
  network    one server run: loop under test + C load generator
  child      the child-process side (run under isolated.py)
  workloads/ one module per workload, plus the registry
  machine    /proc readings: CPU time, RSS, CPU pressure, facts
  stats      min/median/max and ratios
  report     markdown and JSON; plot: the charts
  native     compiling csrc/ (loadgen.c, raw_server.c) into bin/
  selftest   deliberately broken loops that prove the verifiers work

This package must import nothing heavy at the top level: child processes
load it to run a single workload.
"""
