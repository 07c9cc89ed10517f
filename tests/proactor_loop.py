"""ProactorLoop: asyncio's proactor event loop over loopx's Proactor, on Linux.

On Windows, loopx.Loop is asyncio.windows_events.ProactorEventLoop built with
loopx._proactor.Proactor (loopx/_windows.py).  windows_events cannot be
imported elsewhere, so the tests (tests/test_proactor.py and the CPython
conformance run in scripts/test_proactor_emu.sh) use its base,
proactor_events.BaseProactorEventLoop, plus the one thing the Windows class
adds that matters here: the self-pipe read runs while the loop runs (the
call_soon_threadsafe and signal wakeup).  The Proactor comes from a build with
LOOPX_PROACTOR_EMU=1, over the IOCP emulation in tests/iocp_emu.
"""
import errno
import socket
from asyncio import proactor_events

from loopx._proactor import Proactor


class _WinsockShutdown(socket.socket):
    """A socket whose shutdown() behaves as Winsock's on a connection the
    peer has already closed, or on an unconnected UDP socket: it succeeds,
    where Linux raises ENOTCONN.  The
    proactor transports shut down every socket they close and do not expect
    that error; this is the socket layer, not the IOCP core, so it is
    adapted here rather than emulated in tests/iocp_emu."""

    __slots__ = ()

    def shutdown(self, how):
        try:
            super().shutdown(how)
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:
                raise


def _winsock(sock):
    if type(sock) is socket.socket:
        sock.__class__ = _WinsockShutdown  # same layout: __slots__ = ()
    return sock


class ProactorLoop(proactor_events.BaseProactorEventLoop):

    def __init__(self):
        super().__init__(Proactor())

    def _make_socket_transport(self, sock, *args, **kwargs):
        return super()._make_socket_transport(_winsock(sock), *args, **kwargs)

    def _make_ssl_transport(self, rawsock, *args, **kwargs):
        return super()._make_ssl_transport(_winsock(rawsock), *args, **kwargs)

    def _make_datagram_transport(self, sock, *args, **kwargs):
        return super()._make_datagram_transport(_winsock(sock), *args, **kwargs)

    # windows_events.ProactorEventLoop.run_forever as of 3.11 (3.12+ split it
    # into _run_forever_setup/_cleanup; this shape works on all of them).
    def run_forever(self):
        try:
            assert self._self_reading_future is None
            self.call_soon(self._loop_self_reading)
            super().run_forever()
        finally:
            reading = self._self_reading_future
            if reading is not None:
                op = reading._ov
                reading.cancel()
                if op is not None and not op.pending:
                    self._proactor._unregister(op)
                self._self_reading_future = None
