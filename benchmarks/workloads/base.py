"""What every workload module builds on (imported in the child process only).

Two kinds of workload modules live next to this file:

* in-process workloads define ``async def unit(loop, **params) -> int``: one
  verified unit of work on the running loop, returning how many operations it
  did. ``measure()`` turns that into a timed measurement on a fresh loop.
* server workloads define ``async def start(loop, **params) -> (address,
  close)``: start a server on the loop and say where it listens; the native
  load generator (another process) drives it and verifies every byte.

Verification is part of the work, not an afterthought: a unit that sees a
wrong count, order or value raises ``VerificationError`` and the run is
reported as FAILED, never as a number.
"""
import socket
import time

from ..machine import cpu_pressure_stall_us, pin

# Where helper processes a workload starts (``cat``) should run: the load
# generator's CPU, so the process under test keeps its own CPU, as it does
# for the network workloads. Set by the child; None when nothing is pinned.
PEER_CPU = None


class VerificationError(AssertionError):
    """The loop produced a wrong result (count, order, value)."""


def measure(loop, unit, params, warmup, duration):
    """Time ``unit(loop, **params)`` on ``loop``, repeated for ``duration`` s.

    Units run back to back (``run_until_complete`` each) for ``warmup``
    seconds first, untimed, so lazy imports, freelists and caches are warm.
    The clock is read only between units, never inside one, so the harness
    adds no per-operation cost. Returns the raw numbers the parent reports.
    """
    deadline = time.perf_counter() + warmup
    while time.perf_counter() < deadline:
        loop.run_until_complete(unit(loop, **params))

    ops = 0
    stall0 = cpu_pressure_stall_us()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    end = t0 + duration
    while True:
        ops += loop.run_until_complete(unit(loop, **params))
        t1 = time.perf_counter()
        if t1 >= end:
            break
    cpu1 = time.process_time()
    stall1 = cpu_pressure_stall_us()
    return {
        "ops": ops,
        "seconds": t1 - t0,
        "cpu_seconds": cpu1 - cpu0,
        "stall_us": None if stall0 is None or stall1 is None else stall1 - stall0,
    }


def pin_peer(pid):
    """Move a helper process off the CPU of the process under test.

    A child inherits its parent's affinity, i.e. the loop's one CPU; a
    helper that streams data would otherwise share it with the loop.
    """
    pin(pid, PEER_CPU)


def describe_address(sock):
    """The READY address of a listening socket, as the parent expects it."""
    if sock.family == socket.AF_UNIX:
        return {"family": "unix", "path": sock.getsockname()}
    host, port = sock.getsockname()[:2]
    kind = "udp" if sock.type == socket.SOCK_DGRAM else "tcp"
    return {"family": kind, "host": host, "port": port}
