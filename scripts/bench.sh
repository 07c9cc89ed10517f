#!/usr/bin/env bash
# Benchmark loopx against asyncio, uvloop and rloop: the README's main command.
#
#   bash scripts/bench.sh                          # quick: a few minutes
#   bash scripts/bench.sh --full --json out.json --plot out.png
#   bash scripts/bench.sh --workloads micro --loops loopx,uvloop
#
# Arguments go to `python -m benchmarks` (see --help there). All setup is done
# here, so it works on a fresh machine:
#   1. a venv in .venv/bench (BENCH_PYTHON=python3.12 picks the interpreter);
#   2. uvloop, rloop, httptools, trustme, matplotlib and rich from PyPI (one that fails
#      to install only drops its loop, workload or chart, with a message);
#   3. loopx itself, built by `pip install` from a snapshot copy of the
#      checkout. Building from a copy keeps the build out of the working tree,
#      where the lead may be rebuilding the extension in place at the same
#      time (an in-tree pip build would write loopx/*.c and build/ there). The
#      snapshot is skipped when the sources have not changed since the last
#      successful build. If the build fails (the native core is unfinished),
#      any older loopx is uninstalled so it cannot be measured by mistake,
#      and the run goes on without loopx;
#   4. the C load generator and reference server (benchmarks/bin/);
#   5. the harness. It runs every loop in child processes started with
#      `python -I`, so `import loopx` finds the loopx installed in the venv,
#      never the unbuilt source tree next to benchmarks/.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
venv="$repo/.venv/bench"
py="$venv/bin/python"
logs="$venv/logs"
pip=("$py" -m pip install -q --disable-pip-version-check)

say() { printf 'bench.sh: %s\n' "$*" >&2; }

# --- 1. venv -----------------------------------------------------------------
if [ ! -x "$py" ]; then
    say "creating $venv with ${BENCH_PYTHON:-python3}"
    "${BENCH_PYTHON:-python3}" -m venv "$venv"
fi
mkdir -p "$logs"

# --- 2. PyPI dependencies ----------------------------------------------------
deps=(uvloop rloop httptools trustme matplotlib rich)
say "installing ${deps[*]}"
if ! "${pip[@]}" "${deps[@]}" >"$logs/deps.log" 2>&1; then
    # One at a time, so one package without a wheel for this Python does not
    # cost the others.
    for dep in "${deps[@]}"; do
        "${pip[@]}" "$dep" >>"$logs/deps.log" 2>&1 \
            || say "could not install $dep (see $logs/deps.log); going on without it"
    done
fi

# --- 3. loopx ----------------------------------------------------------------
snapshot="$(mktemp -d "${TMPDIR:-/tmp}/loopx-bench-src.XXXXXX")"
trap 'rm -rf "$snapshot"' EXIT
# What the build reads: no VCS data, venvs, build products, Cython-generated
# C, or directories the build never uses (so editing a test or the harness
# does not force a rebuild).
tar -C "$repo" -cf - \
    --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist \
    --exclude='*.egg-info' --exclude='*.so' --exclude='./loopx/*.c' \
    --exclude='__pycache__' --exclude=./.pytest_cache --exclude=./.hypothesis \
    --exclude=./benchmarks --exclude=./tests --exclude=./.github --exclude=./.ci \
    . | tar -C "$snapshot" -xf -
source_hash="$(cd "$snapshot" && find . -type f -print0 | LC_ALL=C sort -z \
    | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
stamp="$venv/loopx-source.sha256"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$source_hash" ] \
        && (cd / && "$py" -I -c 'import loopx' 2>/dev/null); then
    say "loopx: sources unchanged since the last build, reusing it"
else
    rm -f "$stamp"
    say "loopx: building from a snapshot of the checkout (log: $logs/loopx-build.log)"
    if "${pip[@]}" --force-reinstall --no-deps "$snapshot" >"$logs/loopx-build.log" 2>&1; then
        echo "$source_hash" >"$stamp"
        say "loopx: built and installed"
    else
        "$py" -m pip uninstall -q -y loopx >/dev/null 2>&1 || true
        say "loopx: BUILD FAILED, benchmarking without loopx; last lines of the log:"
        tail -n 15 "$logs/loopx-build.log" | sed 's/^/    /' >&2
    fi
fi

# --- 4. C helpers ------------------------------------------------------------
"$py" -m benchmarks.native

# --- 5. the harness ----------------------------------------------------------
"$py" -m benchmarks "$@"
