#!/usr/bin/env bash
# Build loopx and run its whole test suite (unit tests and CPython conformance)
# on every supported CPython (3.11+) this machine has, one per minor version:
# python3 on PATH plus any pyenv-installed ones.  LOOPX_TEST_PYTHONS="py1 py2"
# picks interpreters explicitly.
#
# For each interpreter a venv under .venv/ gets the build and test
# dependencies from PyPI, the extension is built in place, and pytest runs.
# Extra arguments go to pytest.
#
# On Linux, more runs with the newest Python: the unit tests under
# `python -X dev` with PYTHONMALLOC=debug; against a build instrumented with
# ASan and UBSan (scripts/test_sanitizers.sh); and, to cover
# the other platforms' code as far as this machine can, the test suite again
# with the kqueue poller over the kqueue emulation in tests/kqueue_emu
# (scripts/test_kqueue_emu.sh); the Windows proactor (loopx/_proactor.pyx)
# and asyncio's proactor loop over it, built over the IOCP emulation in
# tests/iocp_emu, with tests/test_proactor.py and CPython's socket/stream
# modules (scripts/test_proactor_emu.sh); and the Windows IOCP core's C tests
# under Wine (scripts/test_iocp_wine.sh, which installs mingw-w64 and Wine if
# missing; LOOPX_SKIP_WINE=1 skips it).
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

# The benchmark harness's tests build its C load generator, which links the
# system OpenSSL for its TLS client.
if [ "$(uname -s)" = Linux ] && [ ! -e /usr/include/openssl/ssl.h ] && command -v apt-get >/dev/null 2>&1; then
    sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "=== installing libssl-dev (apt-get)"
    $sudo apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libssl-dev
fi

pythons=${LOOPX_TEST_PYTHONS:-$(find_pythons)}
[ -n "$pythons" ] || { echo "no CPython >= 3.11 found" >&2; exit 1; }
status=0
for py in $pythons; do
    ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    venv=".venv/py$ver"
    echo "=== loopx tests on $("$py" -c 'import sys; print(sys.version.split()[0])') ($venv)"
    vpy="$venv/bin/python"
    [ -x "$venv/Scripts/python.exe" ] && vpy="$venv/Scripts/python.exe"  # Windows (Git Bash)
    [ -x "$vpy" ] || { "$py" -m venv "$venv"; [ -x "$vpy" ] || vpy="$venv/Scripts/python.exe"; }
    "$vpy" -m pip install -q --disable-pip-version-check \
        "Cython>=3.0.10" "setuptools>=77" wheel \
        "pytest>=8" pytest-timeout hypothesis trustme
    "$vpy" setup.py -q build_ext --inplace
    "$vpy" -m pytest "$@" || status=1
done

if [ "$(uname -s)" = Linux ]; then
    # Python's debug allocator catches what ASan cannot see through pymalloc
    # (over- and underruns of PyMem/PyObject blocks, frees with the wrong
    # allocator, allocation without the GIL); dev mode turns asyncio's debug
    # checks and every warning on.  On the in-place build just made.
    echo "=== loopx unit tests under python -X dev, PYTHONMALLOC=debug ($venv)"
    PYTHONMALLOC=debug "$vpy" -X dev -m pytest -p no:cacheprovider --ignore=tests/conformance "$@" || status=1
    echo "=== loopx unit tests under ASan and UBSan ($venv)"
    bash scripts/test_sanitizers.sh "$vpy" -q "$@" || status=1
    echo "=== loopx tests with the kqueue poller over tests/kqueue_emu ($venv)"
    bash scripts/test_kqueue_emu.sh "$vpy" "$@" || status=1
    echo "=== loopx's Windows proactor over tests/iocp_emu ($venv)"
    bash scripts/test_proactor_emu.sh "$vpy" "$@" || status=1
    if [ "${LOOPX_SKIP_WINE:-0}" = 1 ]; then
        echo "=== IOCP core under Wine: skipped (LOOPX_SKIP_WINE=1)"
    else
        echo "=== IOCP core (csrc/iocp.c) C tests under Wine"
        bash scripts/test_iocp_wine.sh || status=1
    fi
fi
exit $status
