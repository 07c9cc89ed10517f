"""Entry point of every child process, run as ``python -I benchmarks/isolated.py``.

Why this file exists: the repository root holds the ``loopx/`` source tree.
A child with the repository root on ``sys.path`` (as ``python -m benchmarks``
run from the root has, since ``-m`` puts the current directory first) would
import *that* ``loopx``, which has no built extension, or a stale one from
an old in-place build, instead of the ``loopx`` installed in the environment. ``-I`` keeps the current directory,
the script's directory and ``PYTHONPATH`` off ``sys.path``; this file then
loads the ``benchmarks`` package from its explicit location, so only the
harness itself comes from the checkout. ``--pythonpath`` adds directories
deliberately (e.g. ``--pythonpath .`` to measure an in-place build).
"""
import importlib.util
import os
import sys


def _load_benchmarks_package():
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(
        "benchmarks", os.path.join(here, "__init__.py"), submodule_search_locations=[here]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules["benchmarks"] = package
    spec.loader.exec_module(package)


if __name__ == "__main__":
    _load_benchmarks_package()
    from benchmarks import child

    sys.exit(child.main(sys.argv[1:]))
