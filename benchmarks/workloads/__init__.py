"""The workload registry: what can be run, and how each one is measured.

A ``Workload`` names a module in this package plus its parameters. It is
pure data so the parent process can plan and report without importing any
loop; the module itself is imported only in the child process that runs it.

* ``kind="inproc"``: the module's ``unit()`` runs in the child on the loop
  under test (``base.measure``).
* ``kind="server"``: the module's ``start()`` serves on the loop under test
  in the child while ``benchmarks/bin/loadgen`` (mode ``client["mode"]``)
  drives it from another process on another core. ``raw_c`` names the
  ``raw_server`` mode that serves the same contract for the ``raw-c`` loop.
"""
import fnmatch
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Workload:
    name: str
    group: str                    # "micro" or "network"
    kind: str                     # "inproc" or "server"
    module: str                   # module in benchmarks.workloads
    description: str
    params: dict = field(default_factory=dict)
    metric: str = "ops/s"
    higher_is_better: bool = True
    client: dict = field(default_factory=dict)   # loadgen options (server kind)
    raw_c: str = None                            # raw_server mode, if any
    requires: tuple = ()                         # extra modules the child needs
    has_latency: bool = False


def _echo(name, style, size, description, tls=False):
    tls_opt = {"tls": True} if tls else {}
    return Workload(
        name=name, group="network", kind="server", module="stream_echo",
        description=description, params={"style": style, **tls_opt},
        client={"mode": "echo", "conns": 10, "size": size, **tls_opt},
        raw_c=None if tls else "tcp",   # no raw C server speaks TLS
        requires=("trustme",) if tls else (), has_latency=True,
    )


_SIZES = (("1k", 1024, "1 KiB"), ("10k", 10 * 1024, "10 KiB"), ("100k", 100 * 1024, "100 KiB"))

REGISTRY = (
    Workload("call_soon", "micro", "inproc", "call_soon",
             "call_soon chain: each callback schedules the next (callbacks/s)"),
    Workload("call_soon_batch", "micro", "inproc", "call_soon_batch",
             "call_soon, 1,000 callbacks queued per iteration (callbacks/s)"),
    Workload("sleep0_1task", "micro", "inproc", "task_switch",
             "await asyncio.sleep(0) in 1 task (switches/s)",
             params={"tasks": 1, "switches": 10_000}),
    Workload("sleep0_1000tasks", "micro", "inproc", "task_switch",
             "await asyncio.sleep(0) in 1,000 tasks, round robin (switches/s)",
             params={"tasks": 1_000, "switches": 20_000}),
    Workload("future_pingpong", "micro", "inproc", "future_pingpong",
             "two tasks exchanging values through fresh futures (exchanges/s)"),
    Workload("timer_churn", "micro", "inproc", "timer_churn",
             "call_later + cancel with 10,000 timers pending (pairs/s)"),
    Workload("sleep_random_10k", "micro", "inproc", "sleep_random",
             "10,000 concurrent asyncio.sleep(0-2 ms) firing (sleeps/s)"),
    *(_echo(f"tcp_echo_protocol_{tag}", "protocol", size,
            f"TCP echo, asyncio.Protocol, {label} messages, 10 clients (round trips/s)")
      for tag, size, label in _SIZES),
    *(_echo(f"tcp_echo_streams_{tag}", "streams", size,
            f"TCP echo, asyncio streams, {label} messages, 10 clients (round trips/s)")
      for tag, size, label in _SIZES),
    *(_echo(f"tcp_echo_sock_{tag}", "sock", size,
            f"TCP echo, loop.sock_recv/sock_sendall, {label} messages, 10 clients "
            "(round trips/s)")
      for tag, size, label in _SIZES),
    *(Workload(f"tcp_connect_{style}_1k", "network", "server", "stream_echo",
               f"TCP connection churn, {label}: connect, one 1 KiB echo, close; 10 clients "
               "(connections/s)",
               params={"style": style}, client={"mode": "connect", "conns": 10, "size": 1024},
               raw_c="tcp", has_latency=True)
      for style, label in (("protocol", "asyncio.Protocol"), ("streams", "asyncio streams"))),
    *(_echo(f"tls_echo_{style}_{tag}", style, size,
            f"TLS echo over TCP, {label}, {size_label} messages, 10 clients (round trips/s)",
            tls=True)
      for style, label in (("protocol", "asyncio.Protocol"), ("streams", "asyncio streams"))
      for tag, size, size_label in _SIZES[:2]),
    Workload("unix_connect_1k", "network", "server", "stream_echo",
             "Unix socket connection churn, asyncio.Protocol: connect, one 1 KiB echo, close; "
             "10 clients (connections/s)",
             params={"style": "protocol", "family": "unix"},
             client={"mode": "connect", "conns": 10, "size": 1024},
             raw_c="unix", has_latency=True),
    Workload("unix_echo_1k", "network", "server", "stream_echo",
             "Unix socket echo, asyncio.Protocol, 1 KiB messages, 10 clients (round trips/s)",
             params={"style": "protocol", "family": "unix"},
             client={"mode": "echo", "conns": 10, "size": 1024},
             raw_c="unix", has_latency=True),
    Workload("udp_pingpong_1k", "network", "server", "udp_echo",
             "UDP ping-pong, 1 KiB datagrams, 10 clients (round trips/s)",
             client={"mode": "udp", "conns": 10, "size": 1024},
             raw_c="udp", has_latency=True),
    Workload("http_keepalive", "network", "server", "http_server",
             "HTTP/1.1 keep-alive on httptools, 10 clients x 8 pipelined (responses/s)",
             client={"mode": "http", "conns": 10, "pipeline": 8},
             raw_c="http", requires=("httptools",), has_latency=True),
    Workload("idle_conns_10k", "network", "server", "stream_echo",
             "10,000 idle TCP connections: server memory per connection (bytes)",
             params={"style": "protocol"},
             client={"mode": "idle", "conns": 10_000, "size": 16},
             metric="B/conn", higher_is_better=False, raw_c="tcp"),
    Workload("subprocess_spawn", "network", "inproc", "subprocess_spawn",
             "create_subprocess_exec('echo N') + communicate (spawns/s)"),
    Workload("subprocess_cat_pipe", "network", "inproc", "subprocess_pipe",
             "cat through stdin/stdout pipes, streams, 64 KiB writes, 64 MiB per child "
             "(MiB/s)",
             params={"mib": 64, "chunk": 64 * 1024, "read_size": 64 * 1024},
             metric="MiB/s"),
)

GROUPS = ("micro", "network")


def select(patterns=None):
    """Workloads matching comma-separated names, groups or glob patterns.

    ``None`` or ``"all"`` selects everything, in registry order. Raises
    ``ValueError`` naming any pattern that matched nothing.
    """
    if not patterns or patterns == "all":
        return list(REGISTRY)
    chosen = set()
    for pattern in (p.strip() for p in patterns.split(",") if p.strip()):
        hits = {w.name for w in REGISTRY
                if pattern == w.group or fnmatch.fnmatchcase(w.name, pattern)}
        if not hits:
            raise ValueError(f"no workload matches {pattern!r} (see --list)")
        chosen |= hits
    return [w for w in REGISTRY if w.name in chosen]
