"""Build the native extension modules of loopx.

Everything hot lives in one extension, ``loopx._loop``: the loop, its handles,
the ready queue, the timer heap and the poller are Cython include files of one
module so that calls between them are plain C calls (cross-module cdef calls go
through capsule tables and cannot be inlined).
"""
import os
import sys

from setuptools import Extension, setup
from setuptools.dist import Distribution

KQUEUE_PLATFORMS = ("darwin", "freebsd", "openbsd", "netbsd", "dragonfly")

# LOOPX_POLLER=kqueue on Linux builds the kqueue poller over the emulation in
# tests/kqueue_emu, so the whole test suite exercises it here (see
# scripts/test_kqueue_emu.sh); it is never used for a real install.
poller = os.environ.get("LOOPX_POLLER")
if poller is None:
    if sys.platform.startswith("linux"):
        poller = "epoll"
    elif sys.platform.startswith(KQUEUE_PLATFORMS):
        poller = "kqueue"
include_dirs = ["csrc"]
extra_sources = []
if poller == "epoll":
    poller_macros = [("LOOPX_POLL_EPOLL", "1")]
elif poller == "kqueue":
    poller_macros = [("LOOPX_POLL_KQUEUE", "1")]
    if not sys.platform.startswith(KQUEUE_PLATFORMS):
        include_dirs.append("tests/kqueue_emu/include")
        extra_sources.append("tests/kqueue_emu/kqueue_emu.c")
else:
    # Windows: no poller.  The loop there is asyncio's proactor loop over
    # loopx._proactor (below), which has no _loop extension.
    poller_macros = []

debug = os.environ.get("LOOPX_DEBUG_BUILD") == "1"
extra_compile_args = ["-O0", "-g3", "-UNDEBUG"] if debug else ["-O2"]
if sys.platform != "win32":
    extra_compile_args += ["-fno-strict-aliasing", "-Wno-unused-function"]

extensions = []
if poller_macros:
    extensions.append(
        Extension(
            "loopx._loop",
            ["loopx/_loop.pyx"] + extra_sources,
            include_dirs=include_dirs,
            define_macros=poller_macros,
            extra_compile_args=extra_compile_args,
        )
    )

# loopx._proactor: the IOCP proactor (loopx/_proactor.pyx over csrc/iocp.c).
# On Windows it is the loop's core.  LOOPX_PROACTOR_EMU=1 on Linux also
# builds it over the IOCP emulation in tests/iocp_emu, so that
# tests/test_proactor.py can run it here (scripts/test_proactor_emu.sh); that
# build is for tests only, never for a real install.
if sys.platform == "win32":
    extensions.append(
        Extension(
            "loopx._proactor",
            ["loopx/_proactor.pyx", "csrc/iocp.c"],
            include_dirs=["csrc"],
            # ntdll: RtlNtStatusToDosError (csrc/iocp.c's error mapping).
            libraries=["ws2_32", "mswsock", "ntdll"],
            extra_compile_args=extra_compile_args,
        )
    )
elif os.environ.get("LOOPX_PROACTOR_EMU") == "1" and sys.platform.startswith("linux"):
    extensions.append(
        Extension(
            "loopx._proactor",
            ["loopx/_proactor.pyx", "tests/iocp_emu/iocp_emu.c"],
            # The shims first: csrc/iocp.h includes <winsock2.h> and <windows.h>.
            include_dirs=["tests/iocp_emu/include", "csrc"],
            extra_compile_args=extra_compile_args,
        )
    )

if extensions:
    from Cython.Build import cythonize

    extensions = cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "embedsignature": True,
            "freethreading_compatible": False,
        },
        annotate=os.environ.get("LOOPX_ANNOTATE") == "1",
        force=debug,
    )

class BinaryDistribution(Distribution):
    """Always a platform wheel: wheel tags must say which Python and OS a
    wheel is for."""

    def has_ext_modules(self):
        return True


setup(ext_modules=extensions, distclass=BinaryDistribution)
