"""The loopx loop on Windows: asyncio's proactor loop over loopx's proactor.

asyncio's ``ProactorEventLoop`` takes its proactor as an argument; all of its
Windows orchestration (socket and pipe transports, named pipe servers,
subprocesses through ``wait_for_handle``, Ctrl-C through the self-pipe and
``signal.set_wakeup_fd``) then runs over loopx's IOCP completion core
(csrc/iocp.c, through loopx/_proactor.pyx) instead of ``_overlapped``.
"""
import asyncio
from asyncio import windows_events

try:
    from ._proactor import Proactor
except ImportError as exc:  # pragma: no cover - a broken or partial install
    raise ImportError(
        "loopx's Windows extension loopx._proactor (the IOCP proactor over "
        "csrc/iocp.c) is not built or failed to load"
    ) from exc


class Loop(windows_events.ProactorEventLoop):
    """The loopx event loop on Windows."""

    def __init__(self):
        super().__init__(proactor=Proactor())


# The standard Windows proactor policy (3.14 renamed it with an underscore
# while deprecating policies); its loop factory is replaced by loopx's.
_BasePolicy = (getattr(windows_events, "_WindowsProactorEventLoopPolicy", None)
               or getattr(windows_events, "WindowsProactorEventLoopPolicy", None)
               or asyncio.events.BaseDefaultEventLoopPolicy)
