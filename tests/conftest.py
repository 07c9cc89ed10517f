"""Fixtures shared by the loop-core unit tests.

Every test that takes ``loop`` (or ``new_loop``) runs twice: once on asyncio's
standard selector loop and once on a loopx loop.  The asyncio run is the
reference: a test body that fails there asserts something asyncio does not do
and is a wrong test; a body that passes there and fails on loopx is a loopx bug.

If ``import loopx`` fails, the loopx runs ERROR (the import happens inside the
fixture, so the ImportError surfaces as a setup error).  They are never
skipped: CI must not go green without having tested loopx.
"""
import asyncio
import gc

import pytest

import helpers


@pytest.fixture(params=helpers.IMPLS)
def impl(request):
    """Which loop implementation this run tests: "asyncio" or "loopx".

    A test that only makes sense for one of them narrows it with
    ``@helpers.only("loopx")`` (a direct parametrization of ``impl``).
    """
    return request.param


@pytest.fixture
def new_loop(impl):
    """A factory of fresh loops of the implementation under test.

    Loops it made are closed at teardown, after which the process must hold
    exactly the file descriptors it held before the first loop was created.
    """
    factory = helpers.loop_factory(impl)  # imports loopx: an error, never a skip
    before = helpers.open_fds()
    made = []

    def make():
        created = factory()
        made.append(created)
        return created

    yield make

    for each in made:
        if each.is_running():
            each.stop()
        if not each.is_closed():
            each.close()
    made.clear()
    leaked = helpers.open_fds().keys() - before.keys()
    if leaked:  # maybe only garbage not yet collected; collecting is slow, so only now
        gc.collect()
        leaked = helpers.open_fds().keys() - before.keys()
    if leaked:
        now = helpers.open_fds()
        described = ", ".join(f"{fd} -> {now.get(fd, '?')}" for fd in sorted(leaked))
        pytest.fail(f"file descriptors leaked by the test on {impl}: {described}")


@pytest.fixture
def loop(new_loop):
    """A fresh loop of the implementation under test; closed afterwards, fds checked."""
    return new_loop()


@pytest.fixture
def policy_guard():
    """Restore asyncio's event loop policy (and this thread's loop) after a test."""
    with helpers.quiet_policy_warnings():
        saved = asyncio.get_event_loop_policy()
    yield
    with helpers.quiet_policy_warnings():
        asyncio.set_event_loop_policy(saved)
