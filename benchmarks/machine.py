"""Facts about the machine and the processes on it, read from /proc.

Everything here is a cheap read that degrades to ``None`` where the kernel
does not provide it, so the harness still runs (with fewer facts) off Linux.
"""
import glob
import os
import platform
import sys

# Runs whose share of time with a task stalled waiting for a CPU (from
# /proc/pressure/cpu "some") exceeds this are flagged as contended: on a
# shared 2-core machine that is when numbers stop being comparable.
CONTENDED_STALL_FRACTION = 0.10


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def cpu_pressure_stall_us():
    """Total microseconds some task waited for a CPU (PSI), or None."""
    text = _read("/proc/pressure/cpu")
    if not text:
        return None
    for line in text.splitlines():
        if line.startswith("some "):
            for part in line.split():
                if part.startswith("total="):
                    return int(part[6:])
    return None


def process_cpu_ns(pid):
    """CPU time used so far by all threads of ``pid``, in nanoseconds.

    ``/proc/<pid>/task/*/schedstat`` counts in nanoseconds; ``/proc/<pid>/stat``
    only in clock ticks (10 ms), too coarse for sub-second windows, so it is
    the fallback. Returns None when the process is gone.
    """
    total, found = 0, False
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        text = _read(path)
        if text:
            total += int(text.split()[0])
            found = True
    if found:
        return total
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    # Fields after the parenthesised command name; utime, stime are 14 and 15.
    fields = text.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def process_rss_bytes(pid):
    """Resident set size of ``pid`` in bytes, or None."""
    text = _read(f"/proc/{pid}/status")
    for line in (text or "").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


def usable_cpus():
    """The CPUs this process may run on, sorted."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def pin(pid, cpu):
    """Pin ``pid`` to one CPU; a no-op where affinity is unsupported."""
    if cpu is None:
        return
    try:
        os.sched_setaffinity(pid, {cpu})
    except (AttributeError, OSError, ProcessLookupError):
        pass


def unpin(pid, cpus):
    """Give ``pid`` back the CPUs it had (``usable_cpus()`` taken before pinning)."""
    try:
        os.sched_setaffinity(pid, set(cpus))
    except (AttributeError, OSError, ProcessLookupError):
        pass


def cpu_model():
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def facts():
    """Machine facts for the report header and the JSON output."""
    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    pressure = _read("/proc/pressure/cpu")
    return {
        "cpu_model": cpu_model(),
        "cpus_online": os.cpu_count(),
        "cpus_usable": usable_cpus(),
        "kernel": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "python_executable": sys.executable,
        "cpu_governor": governor.strip() if governor else None,
        "loadavg": (_read("/proc/loadavg") or "").split()[:3] or None,
        "cpu_pressure_at_start": pressure.splitlines()[0] if pressure else None,
    }
