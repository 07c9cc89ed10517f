#!/usr/bin/env bash
# Other projects' own test suites, run on the standard loop and on loopx:
# what "your program runs unchanged" means for a database driver (asyncpg,
# against a PostgreSQL server its tests start) and for an async framework
# (anyio, whose asyncio backend drives sockets, TLS, subprocesses, signals
# and threads).  A test that does not fail on the standard loop but fails on
# loopx is a loopx bug: the script names each one and exits 1 if there are
# any (or if a test ran on one loop only).  Tests that fail on both loops (no
# IPv6 "localhost" here, say) are counted, not blamed.
#
# Not part of .ci/run: it downloads the suites from PyPI, needs PostgreSQL's
# server binaries for asyncpg, and takes about 7 minutes here.
#
# Usage: scripts/test_thirdparty.sh PYTHON [asyncpg] [anyio]   (default: both)
# PYTHON is a venv's python with loopx built in place in this tree (as
# scripts/test.sh makes them, e.g. .venv/py3.11/bin/python).  Each suite gets
# a venv of its own under $LOOPX_THIRDPARTY_DIR (default
# /tmp/loopx-thirdparty), made from that venv's base interpreter.  Versions:
# ASYNCPG_VERSION, ANYIO_VERSION (defaults: the ones last checked, below).
#
# PostgreSQL refuses to run as root: as root, the asyncpg suite runs as the
# user loopx-pg (made if missing), which must be able to run PYTHON and read
# this tree (for a pyenv Python under /root, `chmod o+x /root`).
set -euo pipefail
shopt -s inherit_errexit   # a failure inside $(...) stops the script too
cd "$(dirname "$0")/.."
repo=$PWD
py=$1
shift
suites=${*:-asyncpg anyio}
work=${LOOPX_THIRDPARTY_DIR:-/tmp/loopx-thirdparty}
asyncpg_version=${ASYNCPG_VERSION:-0.32.0}
anyio_version=${ANYIO_VERSION:-4.16.0}
out="$work/reports"   # JUnit reports, written by pytest (as loopx-pg too)
mkdir -p "$out"
chmod a+rx "$work"
chmod a+rwx "$out"
base=$("$py" -c 'import sys; print(sys._base_executable)')
"$py" -c 'import loopx' || { echo "loopx is not built for $py" >&2; exit 2; }

# venv NAME PACKAGES...: the suite's own venv, with PACKAGES.
venv() {
    local dir="$work/venv-$1"
    shift
    [ -x "$dir/bin/python" ] || "$base" -m venv "$dir"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@"
    echo "$dir/bin/python"
}

# tests_copy NAME VERSION LOOP: a directory holding the suite's tests and
# its pytest configuration from its source distribution (wheels have no
# tests), for the run on LOOP.  Not the unpacked source tree itself: its
# uncompiled package would shadow the installed one.
tests_copy() {
    local src="$work/$1-$2" dir="$work/$1-tests-$3"
    if [ ! -d "$src/tests" ]; then
        # Without build isolation: pip would install the package's whole
        # build environment just to read its name and version.  What the
        # two suites' metadata steps import instead:
        "$vpy" -m pip install -q --disable-pip-version-check "setuptools>=77" \
            setuptools_scm "Cython>=3.2" packaging wheel
        "$vpy" -m pip download -q --disable-pip-version-check --no-deps \
            --no-binary :all: --no-build-isolation -d "$work" "$1==$2"
        tar -xzf "$work/$1-$2.tar.gz" -C "$work"
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    cp -r "$src/tests" "$src/pyproject.toml" "$dir"
    chmod -R a+rX "$dir"
    echo "$dir"
}

# run SUITE LOOP DIR PYTEST_ARGS...: pytest in DIR (as the user in
# ${as_user[@]}, if any), its report in $out/SUITE-LOOP.xml.
run() {
    local suite=$1 loop=$2 dir=$3
    shift 3
    (cd "$dir" && "${as_user[@]}" env PATH="$PATH" HOME=/tmp PYTHONPATH="$repo" \
        "$vpy" -m pytest -p no:cacheprovider -q "$@" --junitxml="$out/$suite-$loop.xml" \
        > "$work/$suite-$loop.log" 2>&1) || true
    echo "$loop: $(tail -n 1 "$work/$suite-$loop.log")"
}

# compare SUITE: the two runs' outcomes, test by test.
compare() {
    "$vpy" - "$1" "$out/$1-asyncio.xml" "$out/$1-loopx.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET

def outcomes(path):
    out = {}
    for case in ET.parse(path).iter("testcase"):
        kinds = {child.tag for child in case}
        out[f'{case.get("classname")}.{case.get("name")}'] = (
            "fail" if kinds & {"failure", "error"} else "skip" if "skipped" in kinds else "pass")
    return out

suite, std_xml, lx_xml = sys.argv[1:]
std, lx = outcomes(std_xml), outcomes(lx_xml)
def tally(d):
    n = lambda what: sum(v == what for v in d.values())
    return f"{n('pass')} passed, {n('fail')} failed, {n('skip')} skipped"

print(f"{suite}: loopx {tally(lx)}; the standard loop {tally(std)}")
both = sorted(k for k in lx if lx[k] == "fail" and std.get(k) == "fail")
if both:
    print(f"  {len(both)} fail on both loops, e.g. {both[0]}")
for k in sorted(k for k in std if std[k] == "fail" and lx.get(k) != "fail"):
    print(f"  fails on the standard loop only: {k}")
one_sided = sorted(set(std) ^ set(lx))
for k in one_sided:
    print(f"  RAN ON ONE LOOP ONLY: {k}")
bugs = sorted(k for k in lx if lx[k] == "fail" and std.get(k) != "fail")
for k in bugs:
    print(f"  FAILS ON LOOPX ONLY: {k}")
sys.exit(1 if bugs or one_sided else 0)
EOF
}

status=0
for suite in $suites; do
    as_user=()
    case $suite in
    asyncpg)
        echo "=== asyncpg $asyncpg_version's tests (each run starts a PostgreSQL server)"
        if ! command -v pg_config >/dev/null; then
            for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_config" ] && PATH="$d:$PATH"; done
        fi
        if ! command -v pg_config >/dev/null; then
            echo "asyncpg: skipped, no PostgreSQL server binaries (pg_config) found"
            continue
        fi
        vpy=$(venv asyncpg "asyncpg==$asyncpg_version" pytest pytest-timeout distro)
        if [ "$(id -u)" -eq 0 ]; then
            id loopx-pg >/dev/null 2>&1 || useradd --system --create-home loopx-pg
            if ! runuser -u loopx-pg -- "$vpy" -c 'import sys; sys.path.insert(0, sys.argv[1]); import loopx' "$repo"; then
                echo "asyncpg: skipped, user loopx-pg cannot run $vpy with loopx (see the top of this script)"
                continue
            fi
            as_user=(runuser -u loopx-pg --)
        fi
        for loop in asyncio loopx; do
            dir=$(tests_copy asyncpg "$asyncpg_version" $loop)
            # The suite makes its loops with asyncio.new_event_loop(), which
            # gives loopx loops once loopx.install() has run.
            [ $loop = asyncio ] || echo 'import loopx; loopx.install()' > "$dir/tests/conftest.py"
            run asyncpg $loop "$dir" --timeout 300 --ignore=tests/test__sourcecode.py
        done
        ;;
    anyio)
        echo "=== anyio $anyio_version's tests, asyncio backend"
        vpy=$(venv anyio "anyio==$anyio_version" blockbuster hypothesis psutil "pytest>=9" \
              pytest-mock pytest-timeout trustme truststore)
        for loop in asyncio loopx; do
            dir=$(tests_copy anyio "$anyio_version" $loop)
            # Its conftest gives tests the backend parameter "asyncio" (and
            # uvloop and eager tasks, not run here).  For loopx, that
            # parameter gets loopx's loop factory, and loopx.install() makes
            # loopx loops for the tests that start the backend themselves.
            if [ $loop = loopx ]; then
                "$vpy" - "$dir/tests/conftest.py" <<'EOF'
import sys
path = sys.argv[1]
src = open(path).read()
old = 'pytest.param(("asyncio", {"debug": True}), id="asyncio")'
new = ('pytest.param(("asyncio", {"debug": True, "loop_factory": __import__("loopx").new_event_loop}),'
       ' id="asyncio")')
if old not in src:
    sys.exit("anyio's conftest no longer has the asyncio parameter this script replaces")
# (At the end: the file starts with a __future__ import.)
open(path, "w").write(src.replace(old, new) + "\nimport loopx\nloopx.install()\n")
EOF
            fi
            run anyio $loop "$dir" -k "asyncio and not uvloop and not eager" -m "not network" \
                -W ignore::pytest.PytestUnraisableExceptionWarning
        done
        ;;
    *)
        echo "unknown suite: $suite (asyncpg, anyio)" >&2
        exit 2
        ;;
    esac
    compare "$suite" || status=1
done
exit $status
