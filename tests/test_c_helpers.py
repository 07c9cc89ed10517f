"""C tests of loopx's header-only helpers in csrc/ that the extension's own
tests cannot drive to every branch: csrc/tests/test_dgram_batch.c exercises
lx_recv_datagrams with cut datagrams and a pending error;
csrc/tests/test_compat.c the portable accept that macOS takes.  Built with
the C compiler the extension is built with, once per code path the platform
can take (recvmmsg() or accept4(), and the portable code)."""
import os
import shutil
import subprocess
import sysconfig

import pytest

import helpers

helpers.skip_module_on_windows("the helpers are POSIX C; Windows builds the IOCP core instead")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _compiler():
    cc = os.environ.get("CC") or (sysconfig.get_config_var("CC") or "cc").split()[0]
    path = shutil.which(cc)
    assert path, f"no C compiler ({cc}): the extension could not have been built either"
    return path


def _build_and_run(tmp_path, name, variant):
    exe = tmp_path / name
    subprocess.run(
        [_compiler(), "-D_GNU_SOURCE", "-O2", "-Wall", "-Wextra", "-Werror", *variant,
         "-I", os.path.join(ROOT, "csrc"), "-o", str(exe),
         os.path.join(ROOT, "csrc", "tests", name + ".c")],
        check=True)
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert result.stdout.strip().endswith("ok")


@pytest.mark.parametrize("variant", [[], ["-DLX_NO_MMSG"]], ids=["native", "portable"])
def test_dgram_batch(tmp_path, variant):
    _build_and_run(tmp_path, "test_dgram_batch", variant)


@pytest.mark.parametrize("variant", [[], ["-DLX_NO_ACCEPT4"]], ids=["accept4", "portable"])
def test_compat_accept(tmp_path, variant):
    _build_and_run(tmp_path, "test_compat", variant)
