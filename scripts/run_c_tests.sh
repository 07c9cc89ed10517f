#!/bin/sh
# Build a C test program from the given sources, run it, then once more under
# valgrind when it is installed.  Shared by the emulations' run_tests.sh.
# Usage: run_c_tests.sh NAME CFLAGS... -- SOURCES...
# Exit status: non-zero on any failure.
set -eu
name=$1; shift
cflags=""
while [ "$1" != "--" ]; do cflags="$cflags $1"; shift; done
shift
out=${TMPDIR:-/tmp}/$name.$$
trap 'rm -f "$out"' EXIT

# shellcheck disable=SC2086  # cflags are separate words on purpose
${CC:-cc} -O2 -Wall -Wextra -Werror -pthread $cflags -o "$out" "$@"

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
