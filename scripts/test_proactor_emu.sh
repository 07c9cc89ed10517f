#!/usr/bin/env bash
# Run loopx's Windows proactor (loopx/_proactor.pyx) on Linux, over the IOCP
# emulation in tests/iocp_emu: this machine has no Windows CPython, so this
# is how the Proactor's every line, and asyncio's proactor loop driving it,
# run here.  In order:
#   1. the emulation's own C tests (tests/iocp_emu/run_tests.sh, also under
#      valgrind when installed);
#   2. a build with LOOPX_PROACTOR_EMU=1 (loopx._proactor over the
#      emulation), then tests/test_proactor.py against it;
#   3. CPython's own test_asyncio socket/stream/transport modules against
#      that proactor loop (tests/conformance/run_cpython.py --loop proactor;
#      what the proactor loop lacks is excluded, with reasons, in
#      tests/conformance/exclusions.py).
#
# Usage: scripts/test_proactor_emu.sh PYTHON [pytest args...]
# PYTHON needs Cython, setuptools and the test dependencies (scripts/test.sh
# makes such venvs).  The build happens in a copy of the tree, so the build
# in place is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
py=$1
shift
echo "=== IOCP emulation C tests"
bash tests/iocp_emu/run_tests.sh
source scripts/build_copy.sh "$py" proactor
status=0
LOOPX_PROACTOR_EMU=1 "$py" setup.py -q build_ext --inplace
"$py" -c 'import loopx._proactor' # a missing build must fail here, not skip below
echo "=== tests/test_proactor.py over the emulation"
"$py" -m pytest -p no:cacheprovider tests/test_proactor.py "$@" || status=1
echo "=== CPython test_asyncio modules on the proactor loop over the emulation"
"$py" tests/conformance/run_cpython.py --loop proactor || status=1
exit $status
