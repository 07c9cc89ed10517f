#!/usr/bin/env bash
# Run loopx's unit tests with the kqueue poller (csrc/poll_kqueue.h) on Linux,
# over the kqueue emulation in tests/kqueue_emu: this machine has no BSD
# kernel, and this way every line of the kqueue backend and of the loop's
# kqueue paths (EVFILT_USER wakeup, EVFILT_PROC child exit) runs under the
# same tests as epoll.  The emulation's own C tests run first.
#
# Usage: scripts/test_kqueue_emu.sh PYTHON [pytest args...]
# PYTHON needs Cython, setuptools and the test dependencies (scripts/test.sh
# makes such venvs).  The build happens in a copy of the tree, so the epoll
# build in place is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
py=$1
shift
bash tests/kqueue_emu/run_tests.sh
source scripts/build_copy.sh "$py" kqueue
status=0
# Built like macOS, without recvmmsg(), so that the portable
# datagram code in csrc/dgram_batch.h runs under the tests too.
export CFLAGS="${CFLAGS:-} -DLX_NO_MMSG"
LOOPX_POLLER=kqueue "$py" setup.py -q build_ext --inplace
LOOPX_EXPECT_POLLER=kqueue "$py" -m pytest -p no:cacheprovider "$@" || status=1

# Again with the pipe wakeup that kernels without EVFILT_USER get, on the
# tests that wake the loop from other threads and signals.
echo "=== kqueue poller with the pipe wakeup (no EVFILT_USER)"
rm -rf build loopx/_loop.c loopx/*.so
CFLAGS="$CFLAGS -DLX_KQUEUE_PIPE_WAKEUP" LOOPX_POLLER=kqueue "$py" setup.py -q build_ext --inplace
LOOPX_EXPECT_POLLER=kqueue "$py" -m pytest -p no:cacheprovider -q \
    tests/test_threadsafe.py tests/test_signals.py tests/test_executor.py \
    tests/test_lifecycle.py tests/test_api.py || status=1
exit $status
