#!/usr/bin/env bash
# Run loopx's unit tests against a build instrumented with AddressSanitizer
# and UndefinedBehaviorSanitizer (gcc's): any out-of-bounds access,
# use-after-free or undefined behaviour in the native code aborts the run.
#
# Usage: scripts/test_sanitizers.sh PYTHON [pytest args...]
# PYTHON needs Cython, setuptools and the test dependencies (scripts/test.sh
# makes such venvs).  LOOPX_POLLER=kqueue sanitizes the kqueue build (over
# tests/kqueue_emu) instead.  The build happens in a copy of the tree.
#
# The interpreter itself is not instrumented, so the ASan runtime is
# preloaded, Python's allocator is plain malloc (so ASan sees every object),
# and leak checking is off (the interpreter keeps memory until exit).
set -euo pipefail
cd "$(dirname "$0")/.."
py=$1
shift
asan=$(gcc -print-file-name=libasan.so)
ubsan=$(gcc -print-file-name=libubsan.so)
[ -f "$asan" ] && [ -f "$ubsan" ] || { echo "gcc's libasan/libubsan not found" >&2; exit 1; }

source scripts/build_copy.sh "$py" sanitizers
CFLAGS="${CFLAGS:-} -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1" \
LDFLAGS="${LDFLAGS:-} -fsanitize=address,undefined" \
    "$py" setup.py -q build_ext --inplace
[ -z "${LOOPX_POLLER:-}" ] || export LOOPX_EXPECT_POLLER=$LOOPX_POLLER
LD_PRELOAD="$asan:$ubsan" ASAN_OPTIONS=detect_leaks=0 PYTHONMALLOC=malloc \
    "$py" -m pytest -p no:cacheprovider --ignore=tests/conformance "$@"
