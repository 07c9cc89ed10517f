"""Build the harness's C helpers (``benchmarks/csrc``) into ``benchmarks/bin``.

Built on first use with the system ``cc`` (or ``$CC``) and rebuilt when a
source is newer than its binary. Each binary is written under a temporary
name and renamed into place, so two harnesses building at once never run a
half-written file. ``python -m benchmarks.native`` builds them ahead of time.
"""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.join(HERE, "csrc")
DEFAULT_BIN_DIR = os.path.join(HERE, "bin")
# program: (source, libraries).  The load generator speaks TLS through the
# system OpenSSL (Debian/Ubuntu: libssl-dev).
PROGRAMS = {"loadgen": ("loadgen.c", ["-lssl", "-lcrypto"]),
            "raw_server": ("raw_server.c", [])}
CFLAGS = ["-O2", "-std=gnu11", "-Wall"]


class BuildError(RuntimeError):
    pass


def find_compiler():
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def _stale(binary, sources):
    if not os.path.exists(binary):
        return True
    built = os.path.getmtime(binary)
    return any(os.path.getmtime(src) > built for src in sources)


def ensure_built(bin_dir=DEFAULT_BIN_DIR):
    """Compile whatever is missing or stale; return ``bin_dir``.

    Raises ``BuildError`` with the compiler's message when it cannot.
    """
    cc = find_compiler()
    if cc is None:
        raise BuildError("no C compiler found (install cc or set $CC)")
    os.makedirs(bin_dir, exist_ok=True)
    header = os.path.join(SOURCE_DIR, "common.h")
    for program, (source, libraries) in PROGRAMS.items():
        src = os.path.join(SOURCE_DIR, source)
        binary = os.path.join(bin_dir, program)
        if not _stale(binary, (src, header)):
            continue
        partial = f"{binary}.tmp{os.getpid()}"
        proc = subprocess.run([cc, *CFLAGS, "-o", partial, src, *libraries],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"{cc} failed on {source}: {proc.stderr.strip()[-800:]}")
        os.replace(partial, binary)
    return bin_dir


def main():
    try:
        bin_dir = ensure_built()
    except BuildError as exc:
        print(f"benchmarks: {exc}", file=sys.stderr)
        return 1
    # stderr: stdout of scripts/bench.sh is the report alone.
    print(f"benchmarks: C helpers ready in {bin_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
