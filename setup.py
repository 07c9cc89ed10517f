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

if sys.platform.startswith("linux"):
    poller_macros = [("LOOPX_POLL_EPOLL", "1")]
else:
    # kqueue and IOCP pollers are tracked in their own issue; until they land
    # the package still installs and loopx/__init__ explains what is missing.
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
            ["loopx/_loop.pyx"],
            include_dirs=["csrc"],
            define_macros=poller_macros,
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
    """A platform wheel even where no poller (so no extension) is built yet:
    wheel tags must say which Python and OS a wheel is for."""

    def has_ext_modules(self):
        return True


setup(ext_modules=extensions, distclass=BinaryDistribution)
