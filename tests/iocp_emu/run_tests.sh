#!/bin/sh
# Build the IOCP emulation and its tests, run them, then once more under
# valgrind when it is installed.  Exit status: non-zero on any failure.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# csrc/iocp.h is included unchanged, over the Windows shims in include/.
exec sh "$here/../../scripts/run_c_tests.sh" iocp_emu_test \
    -I"$here/include" -I"$here/../../csrc" -- "$here/iocp_emu.c" "$here/test_iocp_emu.c"
