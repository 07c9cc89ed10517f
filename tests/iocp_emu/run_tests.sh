#!/bin/sh
# Build the IOCP emulation and its tests, run them, then once more under
# valgrind when it is installed.  Exit status: non-zero on any failure.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${TMPDIR:-/tmp}/iocp_emu_test.$$
trap 'rm -f "$out"' EXIT

# csrc/iocp.h is included unchanged, over the Windows shims in include/.
${CC:-cc} -O2 -Wall -Wextra -Werror -pthread -I"$here/include" -I"$here/../../csrc" \
    -o "$out" "$here/iocp_emu.c" "$here/test_iocp_emu.c"

echo "== native"
"$out"

if command -v valgrind >/dev/null 2>&1; then
    echo "== valgrind"
    # Leaks count as errors only when definitely lost.
    valgrind -q --error-exitcode=1 --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
        "$out"
else
    echo "== valgrind not installed: skipped"
fi
