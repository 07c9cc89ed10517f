# Sourced by the scripts that build loopx in a scratch copy of the tree, so
# that the in-place build scripts/test.sh made is left alone.
#
#   source scripts/build_copy.sh PYTHON NAME
# sets $py to PYTHON made absolute (a path, or a command on PATH), copies the
# working tree as it is (committed or not, less builds, venvs and .git) into a
# fresh temporary directory removed on exit, and cd's there.

case "$1" in
    */*) py="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")" ;;
    *) py=$(command -v "$1") ;;
esac
work=$(mktemp -d "${TMPDIR:-/tmp}/loopx-$2.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar --exclude=./.venv --exclude=./build --exclude='*.so' --exclude=./.git \
    --exclude='./loopx/_loop.c' --exclude='./loopx/_proactor.c' -cf - . | tar -xf - -C "$work"
cd "$work"
