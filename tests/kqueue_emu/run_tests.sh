#!/bin/sh
# Build the kqueue emulation and its tests, run them, then once more under
# valgrind when it is installed.  Exit status: non-zero on any failure.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec sh "$here/../../scripts/run_c_tests.sh" kqueue_emu_test \
    -I"$here/include" -- "$here/kqueue_emu.c" "$here/test_kqueue_emu.c"
