#!/usr/bin/env bash
# Build the Windows IOCP core (csrc/iocp.c) and its C unit tests with
# mingw-w64, then run them under Wine, so the completion logic really runs
# on Linux.  Installs Debian's gcc-mingw-w64-x86-64 and wine64 if missing
# (as root, or through sudo).  Needs no display.  Exits with the tests'
# status; their last line is "N passed, N failed".
#
# LOOPX_WINEPREFIX  Wine prefix to use (default: ~/.cache/loopx/wine64-prefix;
#                   made on first use, which takes a few seconds)
# LOOPX_WINE_TIMEOUT  seconds before a hung Wine run is killed (default 600)
set -euo pipefail
cd "$(dirname "$0")/.."

find_wine() {
    # Debian 12's wine64 package ships the loader outside PATH; other
    # releases and distributions put wine64 on PATH.
    if command -v wine64 >/dev/null 2>&1; then
        command -v wine64
    elif [ -x /usr/lib/wine/wine64 ]; then
        echo /usr/lib/wine/wine64
    fi
}

if ! command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || [ -z "$(find_wine)" ]; then
    sudo=
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "need root (or sudo) to install mingw-w64 and wine64" >&2; exit 1; }
        sudo=sudo
    fi
    echo "=== installing gcc-mingw-w64-x86-64 and wine64 (apt-get)"
    $sudo apt-get update -q
    # No recommends: fonts, GL and the rest are not needed for a console test.
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        gcc-mingw-w64-x86-64 wine64 wine
fi
WINE=$(find_wine)
[ -n "$WINE" ] || { echo "wine64 not found after install" >&2; exit 1; }

out=build/iocp-wine
mkdir -p "$out"
echo "=== building $out/test_iocp.exe"
x86_64-w64-mingw32-gcc -O2 -Wall -Wextra -Werror \
    -o "$out/test_iocp.exe" csrc/iocp.c csrc/tests/test_iocp.c \
    -lws2_32 -lmswsock -lntdll

export WINEPREFIX="${LOOPX_WINEPREFIX:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/loopx/wine64-prefix}"
export WINELOADER="$WINE"
export WINEARCH=win64
export WINEDEBUG=-all
# No Mono/Gecko install prompts, and no window even if a display exists.
export WINEDLLOVERRIDES="mscoree,mshtml="
unset DISPLAY WAYLAND_DISPLAY
limit=${LOOPX_WINE_TIMEOUT:-600}

# Stop the wineserver this run started (it otherwise lingers a few seconds).
stop_wineserver() {
    local ws
    for ws in "$(dirname "$WINE")/wineserver64" "$(dirname "$WINE")/wineserver" wineserver; do
        if command -v "$ws" >/dev/null 2>&1; then
            timeout 30 "$ws" -k >/dev/null 2>&1 || true
            return
        fi
    done
}
trap stop_wineserver EXIT

if [ ! -f "$WINEPREFIX/system.reg" ]; then
    echo "=== creating Wine prefix $WINEPREFIX"
    mkdir -p "$(dirname "$WINEPREFIX")"
    # wineboot complains about the missing 32-bit side; only its status counts.
    if ! timeout -k 10 "$limit" "$WINE" wineboot --init >"$out/wineboot.log" 2>&1; then
        cat "$out/wineboot.log" >&2
        echo "wineboot failed" >&2
        exit 1
    fi
    timeout 60 "$WINE" wineboot --shutdown >/dev/null 2>&1 || true
fi

echo "=== running under $WINE ($($WINE --version 2>/dev/null || echo wine))"
status=0
timeout -k 10 "$limit" "$WINE" "$out/test_iocp.exe" || status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "test_iocp.exe did not finish within ${limit}s" >&2
fi
exit "$status"
