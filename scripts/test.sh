#!/usr/bin/env bash
# Build loopx and run its whole test suite (unit tests and CPython conformance).
#
# For each interpreter (default: python3; set LOOPX_TEST_PYTHONS="python3.11
# python3.12 ..." for more) a venv under .venv/ gets the build and test
# dependencies from PyPI, the extension is built in place, and pytest runs.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

pythons=${LOOPX_TEST_PYTHONS:-python3}
status=0
for py in $pythons; do
    ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    venv=".venv/py$ver"
    echo "=== loopx tests on $("$py" -c 'import sys; print(sys.version.split()[0])') ($venv)"
    [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        "Cython>=3.0.10" "setuptools>=68" wheel \
        "pytest>=8" pytest-timeout hypothesis trustme
    "$venv/bin/python" setup.py -q build_ext --inplace
    "$venv/bin/python" -m pytest "$@" || status=1
done
exit $status
