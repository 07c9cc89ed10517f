"""The child side: one fresh process per (loop, workload, round).

A fresh process per run means loops never share an interpreter: no state
left by one loop (freelists, a policy, a running-loop slot, a leaked thread)
can change another's numbers, and a loop that crashes takes down only its
own run, which is then reported as FAILED.

Roles (``argv = [role, json_payload]``):
  probe   import a loop factory, run a trivial coroutine, report versions
  inproc  run an in-process workload (``workloads.base.measure``)
  serve   start a server workload, print READY, serve until stdin says stop

The parent reads ``TAG {json}`` lines (READY, RESULT) from the original
stdout. File descriptor 1 is pointed at stderr for everything else, so a
stray ``print`` in a loop or workload can never corrupt that protocol.
"""
import asyncio
import importlib
import importlib.metadata
import importlib.util
import json
import os
import resource
import sys
import threading
import traceback

from .workloads import base as workload_base
from .workloads.base import measure

_protocol = None


def emit(tag, payload):
    _protocol.write(f"{tag} {json.dumps(payload)}\n")
    _protocol.flush()


def load_factory(spec):
    """Resolve ``"module:attr.path"`` to a callable loop factory."""
    module_name, _, attr_path = spec.partition(":")
    target = importlib.import_module(module_name)
    for attr in (attr_path or "new_event_loop").split("."):
        target = getattr(target, attr)
    if not callable(target):
        raise TypeError(f"{spec} is not callable")
    return target


def module_version(name):
    """Installed version of a module's distribution, or None if absent."""
    if importlib.util.find_spec(name) is None:
        return None
    if name in sys.stdlib_module_names:
        return f"stdlib (Python {sys.version.split()[0]})"
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return getattr(importlib.import_module(name), "__version__", "unknown")


class ErrorLog:
    """Loop exception handler that records errors: any error fails the run.

    A loop reports errors raised in callbacks and protocols here rather than
    raising them, so without this a broken run could still post a number.
    Connection resets are how clients leave, not errors.
    """

    def __init__(self):
        self.errors = []

    def __call__(self, loop, context):
        exc = context.get("exception")
        if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
            return
        message = context.get("message", "error")
        self.errors.append(f"{message}: {type(exc).__name__}: {exc}" if exc else message)

    def failure(self):
        if not self.errors:
            return None
        return {"ok": False, "error_type": "LoopError",
                "error": f"exception handler called {len(self.errors)} times; "
                         f"first: {self.errors[0]}"[:400]}


def _new_loop(payload):
    loop = load_factory(payload["factory"])()
    errors = ErrorLog()
    loop.set_exception_handler(errors)
    asyncio.set_event_loop(loop)
    return loop, errors


def _close_loop(loop):
    asyncio.set_event_loop(None)
    loop.close()


def probe(payload):
    info = {
        "ok": True,
        "python": sys.version.split()[0],
        "modules": {name: module_version(name) for name in payload.get("modules", ())},
    }
    spec = payload.get("factory")
    if spec:
        module_name = spec.partition(":")[0]
        loop = load_factory(spec)()
        try:
            loop.run_until_complete(asyncio.sleep(0.001))
        finally:
            loop.close()
        module = sys.modules[module_name]
        info["version"] = module_version(module_name.split(".")[0])
        info["file"] = getattr(module, "__file__", None)
        info["loop_type"] = f"{type(loop).__module__}.{type(loop).__qualname__}"
    return info


def run_inproc(payload):
    module = importlib.import_module(f"benchmarks.workloads.{payload['module']}")
    workload_base.PEER_CPU = payload.get("peer_cpu")
    loop, errors = _new_loop(payload)
    try:
        numbers = measure(loop, module.unit, payload["params"],
                          payload["warmup"], payload["duration"])
    finally:
        _close_loop(loop)
    return errors.failure() or {"ok": True, **numbers}


def _raise_fd_limit():
    # The idle-connections workload holds 10,000 sockets.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve(payload):
    _raise_fd_limit()
    module = importlib.import_module(f"benchmarks.workloads.{payload['module']}")
    loop, errors = _new_loop(payload)
    address, close = loop.run_until_complete(module.start(loop, **payload["params"]))
    emit("READY", address)

    # A line or EOF on stdin means stop. A thread waits for it so the loop
    # under test needs nothing beyond call_soon_threadsafe to be stoppable.
    def wait_for_stop():
        sys.stdin.buffer.readline()
        loop.call_soon_threadsafe(loop.stop)

    threading.Thread(target=wait_for_stop, daemon=True).start()
    loop.run_forever()
    close()
    loop.run_until_complete(asyncio.sleep(0))
    _close_loop(loop)
    return errors.failure() or {"ok": True}


def _failure(exc):
    name = type(exc).__name__
    if str(exc):
        error = f"{name}: {exc}"
    else:
        # AbstractEventLoop's stubs raise a bare NotImplementedError: name the
        # method instead, which is what a reader of the table needs to know.
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        error = f"{name} in {tb.tb_frame.f_code.co_name}()" if tb else name
    return {
        "ok": False,
        "error_type": name,
        "error": " ".join(error.split())[:400],
        "traceback": traceback.format_exc()[-3000:],
    }


def main(argv):
    global _protocol
    _protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    role, payload = argv[0], json.loads(argv[1])
    for path in reversed(payload.get("pythonpath", ())):
        sys.path.insert(0, os.path.abspath(path))
    roles = {"probe": probe, "inproc": run_inproc, "serve": serve}
    try:
        result = roles[role](payload)
    except BaseException as exc:  # noqa: BLE001 - every failure is reported
        result = _failure(exc)
    emit("RESULT", result)
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave at once: a broken loop may have left non-daemon threads or
    # pending work that would make a normal interpreter exit hang.
    os._exit(0)
