#!/usr/bin/env bash
# Build loopx and run its whole test suite (unit tests and CPython conformance)
# on every supported CPython (3.11+) this machine has, one per minor version:
# python3 on PATH plus any pyenv-installed ones.  LOOPX_TEST_PYTHONS="py1 py2"
# picks interpreters explicitly.
#
# For each interpreter a venv under .venv/ gets the build and test
# dependencies from PyPI, the extension is built in place, and pytest runs.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

find_pythons() {
    local seen=" " py ver
    for py in python3 python3.11 python3.12 python3.13 python3.14 \
              "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.*/bin/python3; do
        ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2] if sys.version_info >= (3, 11) and sys.implementation.name == "cpython" else "")' 2>/dev/null) || continue
        [ -n "$ver" ] || continue
        case "$seen" in *" $ver "*) continue ;; esac
        seen="$seen$ver "
        echo "$py"
    done
}

pythons=${LOOPX_TEST_PYTHONS:-$(find_pythons)}
[ -n "$pythons" ] || { echo "no CPython >= 3.11 found" >&2; exit 1; }
status=0
for py in $pythons; do
    ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    venv=".venv/py$ver"
    echo "=== loopx tests on $("$py" -c 'import sys; print(sys.version.split()[0])') ($venv)"
    [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        "Cython>=3.0.10" "setuptools>=77" wheel \
        "pytest>=8" pytest-timeout hypothesis trustme
    "$venv/bin/python" setup.py -q build_ext --inplace
    "$venv/bin/python" -m pytest "$@" || status=1
done
exit $status
