"""The parent side of one run: start a child, read its result, never trust it.

Every way a run can go wrong ends as a ``RunResult`` with ``ok=False`` and a
reason: an exception in the loop (``NotImplementedError`` while a feature has
not landed), a verification failure, a crash (a native loop can segfault), a
hang (killed at the deadline). Only a run that finished and verified
carries a number.
"""
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

from .machine import CONTENDED_STALL_FRACTION, pin

ISOLATED_ENTRY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "isolated.py")


@dataclass
class Context:
    """Where and how children run; shared by every run of a session."""

    workdir: str                       # scratch: unix sockets, child cwd
    bin_dir: str = None                # the compiled C helpers
    python: str = sys.executable
    pythonpath: tuple = ()
    server_cpu: int = None             # CPU of the process under test
    client_cpu: int = None             # CPU of the load generator
    timeout_slack: float = 15.0        # seconds a run may exceed its budget


@dataclass
class Budget:
    warmup: float
    duration: float


@dataclass
class RunResult:
    loop: str
    workload: str
    round: int
    ok: bool
    reason: str = None                 # why it failed: the full text
    reason_kind: str = None            # short: exception type, "verification", ...
    value: float = None                # the workload's metric (ops/s, B/conn)
    ops: int = None
    seconds: float = None
    cpu_us_per_op: float = None        # CPU time of the process under test
    stall_fraction: float = None       # PSI "some" CPU stall / wall time
    p50_us: float = None
    p99_us: float = None
    extra: dict = field(default_factory=dict)

    @property
    def contended(self):
        return self.stall_fraction is not None and self.stall_fraction > CONTENDED_STALL_FRACTION

    def to_json(self):
        data = asdict(self)
        data["contended"] = self.contended
        return data


def failed(loop, workload, rnd, kind, reason):
    return RunResult(loop=loop, workload=workload, round=rnd, ok=False,
                     reason_kind=kind, reason=reason)


class ChildProcess:
    """A process whose stdout speaks ``TAG [json]`` lines; stderr kept aside.

    Stderr goes to a temporary file rather than a pipe: nobody reads it
    while the run is going, and a full pipe would block the child.
    """

    def __init__(self, argv, ctx, cpu=None):
        self._stderr = tempfile.TemporaryFile()
        self.argv = argv
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            cwd=ctx.workdir, close_fds=True,
        )
        # Pinned right after the fork: the short window before is startup only.
        pin(self.proc.pid, cpu)
        self._buffer = b""

    @property
    def pid(self):
        return self.proc.pid

    def read_line(self, deadline):
        """Next ``(tag, payload)``; ``None`` at EOF; ``TimeoutError`` at the deadline."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                if not self._buffer:
                    return None
                self._buffer += b"\n"  # a last line without newline
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        tag, _, rest = line.decode(errors="replace").strip().partition(" ")
        if rest.startswith("{"):
            try:
                return tag, json.loads(rest)
            except ValueError:
                pass
        return tag, rest

    def expect(self, tags, deadline):
        """Skip lines until one with a tag in ``tags``; ``None`` at EOF."""
        while True:
            line = self.read_line(deadline)
            if line is None or line[0] in tags:
                return line

    def send_line(self, text):
        try:
            self.proc.stdin.write(text.encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def close_stdin(self):
        try:
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def death_reason(self):
        """Why the child ended without a result: exit status and stderr tail."""
        code = self.wait(5)
        if code is None:
            status = "did not exit"
        elif code < 0:
            try:
                status = f"crashed with {signal.Signals(-code).name}"
            except ValueError:
                status = f"killed by signal {-code}"
        else:
            status = f"exited with status {code} without a result"
        tail = self.stderr_tail()
        return f"{status}: {tail}" if tail else status

    def stderr_tail(self, limit=400):
        """The useful end of stderr: a traceback's last lines, or for a fatal
        signal faulthandler's header and innermost frames (printed first)."""
        self._stderr.seek(0)
        lines = [l.strip() for l in
                 self._stderr.read().decode(errors="replace").strip().splitlines()]
        fatal = next((i for i, l in enumerate(lines) if l.startswith("Fatal Python error")), None)
        if fatal is not None:
            frames = [l for l in lines[fatal:] if l.startswith("File ")][:3]
            return " | ".join([lines[fatal], *frames])[:limit]
        return " | ".join(lines[-3:])[-limit:]

    def close(self):
        self.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self._stderr.close()


def python_child(role, payload, ctx, cpu=None):
    """Start ``benchmarks.child`` isolated from the checkout (see isolated.py)."""
    payload = dict(payload, pythonpath=list(ctx.pythonpath))
    # faulthandler: a native loop that segfaults leaves a Python traceback in
    # the stderr tail that the failure reason quotes.
    argv = [ctx.python, "-I", "-X", "faulthandler", ISOLATED_ENTRY, role, json.dumps(payload)]
    return ChildProcess(argv, ctx, cpu)


def child_failure(loop, workload, rnd, result):
    """A RunResult for a child that reported ``{"ok": false, ...}``."""
    kind = result.get("error_type") or "error"
    if kind == "VerificationError":
        kind = "verification"
    return failed(loop, workload, rnd, kind, result.get("error") or "unknown error")


def run_inproc(loop, workload, budget, ctx, rnd):
    """One round of an in-process workload in a fresh child."""
    payload = {"factory": loop.factory, "module": workload.module, "params": workload.params,
               "warmup": budget.warmup, "duration": budget.duration,
               "peer_cpu": ctx.client_cpu}
    child = python_child("inproc", payload, ctx, cpu=ctx.server_cpu)
    timeout = budget.warmup + budget.duration + ctx.timeout_slack
    try:
        line = child.expect({"RESULT"}, time.monotonic() + timeout)
        if line is None:
            return failed(loop.name, workload.name, rnd, "crash", child.death_reason())
        result = line[1]
        if not result.get("ok"):
            return child_failure(loop.name, workload.name, rnd, result)
        ops, seconds = result["ops"], result["seconds"]
        if ops <= 0 or seconds <= 0:
            return failed(loop.name, workload.name, rnd, "verification", "no operation completed")
        stall = result.get("stall_us")
        return RunResult(
            loop=loop.name, workload=workload.name, round=rnd, ok=True,
            value=ops / seconds, ops=ops, seconds=seconds,
            cpu_us_per_op=result["cpu_seconds"] * 1e6 / ops,
            stall_fraction=None if stall is None else stall / 1e6 / seconds,
        )
    except TimeoutError:
        return failed(loop.name, workload.name, rnd, "timeout",
                      f"no result after {timeout:.0f} s (hung loop?)")
    finally:
        child.close()
