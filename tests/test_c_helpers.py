"""C tests of loopx's header-only helpers in csrc/ that the extension's own
tests cannot drive to every branch: csrc/tests/test_dgram_batch.c exercises
lx_send_datagrams with a socket that fills up (EAGAIN part-way through a
batch), which UDP over loopback never does, and lx_recv_datagrams with cut
datagrams and a pending error.  Built with the C compiler the extension is
built with, once per code path the platform can take (sendmmsg()/recvmmsg()
and the portable loop)."""
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


@pytest.mark.parametrize("variant", [[], ["-DLX_NO_MMSG"]], ids=["native", "portable"])
def test_dgram_batch(tmp_path, variant):
    exe = tmp_path / "test_dgram_batch"
    subprocess.run(
        [_compiler(), "-D_GNU_SOURCE", "-O2", "-Wall", "-Wextra", "-Werror", *variant,
         "-I", os.path.join(ROOT, "csrc"), "-o", str(exe),
         os.path.join(ROOT, "csrc", "tests", "test_dgram_batch.c")],
        check=True)
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert result.stdout.strip().endswith("ok")
