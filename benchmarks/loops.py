"""The loops under test: names, factories, and whether each one can run here.

``--loops`` takes well-known names (``loopx``, ``asyncio``, ``uvloop``,
``rloop``), any ``module:factory`` (``uvloop:new_event_loop``), a bare module
name (its ``new_event_loop``), and ``raw-c``: not a loop but the native epoll
reference server, shown as a loop for the network workloads.

Every Python loop is probed in its own isolated child before any
measurement: a loop that cannot be imported, or cannot run a trivial
coroutine, is reported with the reason and left out instead of failing every
workload (or crashing the harness).
"""
import time
from dataclasses import dataclass, field

from .runner import python_child

RAW_C = "raw-c"
REFERENCES = ("asyncio", "uvloop")     # the ratio columns, in this order
DEFAULT_LOOPS = "loopx,asyncio,uvloop,rloop,raw-c"

_WELL_KNOWN = {
    "loopx": "loopx:new_event_loop",
    "asyncio": "asyncio:new_event_loop",
    "uvloop": "uvloop:new_event_loop",
    "rloop": "rloop:new_event_loop",
}
_PROBE_TIMEOUT = 60.0


@dataclass
class LoopSpec:
    name: str
    factory: str = None            # "module:attr"; None for raw-c
    available: bool = True
    reason: str = None             # why it is not available
    info: dict = field(default_factory=dict)   # version, file, loop_type

    @property
    def is_raw_c(self):
        return self.factory is None

    def to_json(self):
        return {"name": self.name, "factory": self.factory, "available": self.available,
                "reason": self.reason, **self.info}


def parse_loops(text):
    """LoopSpecs for a comma-separated ``--loops`` value, duplicates dropped."""
    specs, seen = [], set()
    for token in (t.strip() for t in text.split(",")):
        if not token or token in seen:
            continue
        seen.add(token)
        if token == RAW_C:
            specs.append(LoopSpec(token))
        elif token in _WELL_KNOWN:
            specs.append(LoopSpec(token, _WELL_KNOWN[token]))
        elif ":" in token:
            specs.append(LoopSpec(token, token))
        else:
            specs.append(LoopSpec(token, f"{token}:new_event_loop"))
    return specs


def probe(spec, ctx):
    """Fill in ``spec.available``/``reason``/``info`` from an isolated child."""
    if spec.is_raw_c:
        have = ctx.bin_dir is not None
        spec.available = have
        spec.reason = None if have else "the C helpers could not be built"
        spec.info = {"version": "epoll, cc -O2", "loop_type": "benchmarks/csrc/raw_server.c"}
        return
    child = python_child("probe", {"factory": spec.factory}, ctx)
    try:
        line = child.expect({"RESULT"}, time.monotonic() + _PROBE_TIMEOUT)
        if line is None:
            result = {"ok": False, "error": child.death_reason(), "error_type": "crash"}
        else:
            result = line[1]
    except TimeoutError:
        result = {"ok": False, "error": f"probe hung for {_PROBE_TIMEOUT:.0f} s",
                  "error_type": "timeout"}
    finally:
        child.close()
    if result.get("ok"):
        spec.available = True
        spec.info = {k: result.get(k) for k in ("version", "file", "loop_type", "python")}
        return
    spec.available = False
    if result.get("error_type") in ("ModuleNotFoundError", "ImportError"):
        spec.reason = f"not importable ({result['error']})"
    else:
        spec.reason = f"cannot run a trivial coroutine ({result['error']})"


def probe_modules(modules, ctx):
    """Versions of ``modules`` as the children see them (None: missing)."""
    child = python_child("probe", {"modules": list(modules)}, ctx)
    try:
        line = child.expect({"RESULT"}, time.monotonic() + _PROBE_TIMEOUT)
    except TimeoutError:
        line = None
    finally:
        child.close()
    if line is None or not line[1].get("ok"):
        return {name: None for name in modules}
    return line[1]["modules"]
