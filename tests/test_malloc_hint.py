"""The malloc hint (csrc/malloc_hint.h): loopx's first large read tells
glibc's malloc that this process moves large buffers, so that it stops
handing the heap's top back to the kernel after every large message.

Each case runs in a fresh interpreter, where malloc still has its start-up
thresholds, and reads them back through their effect: an 800 KiB block comes
from mmap while the thresholds are lower and from the heap once the hint has
raised them to 1 MiB (mallinfo2() counts mmapped bytes).  (Python 3.13's
`import asyncio` already raises them a little, to about 256 KiB.)
"""
import ctypes
import platform
import sys

import pytest

import helpers

pytestmark = [
    pytest.mark.skipif(
        not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
        reason="the hint is for glibc's malloc (elsewhere it is a no-op)"),
    pytest.mark.skipif(
        sys.platform.startswith("linux") and not hasattr(ctypes.CDLL(None), "mallinfo2"),
        reason="the probe reads mallinfo2(), new in glibc 2.33"),
]

PROBE = r"""
import asyncio, ctypes, os, socket, sys

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
        "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2

def is_mmapped(size):
    before = libc.mallinfo2().hblkhd
    block = bytearray(size)
    mmapped = libc.mallinfo2().hblkhd - before >= size
    del block
    return mmapped

class Echo(asyncio.Protocol):
    def __init__(self, done, size):
        self.done, self.size, self.got = done, size, 0
    def data_received(self, data):
        self.got += len(data)
        if self.got >= self.size and not self.done.done():
            self.done.set_result(None)

async def protocol_read(loop, size):
    a, b = socket.socketpair()
    done = loop.create_future()
    transport, _ = await loop.connect_accepted_socket(lambda: Echo(done, size), a)
    b.sendall(b"x" * size)
    await done
    transport.close()
    b.close()

async def streams_read(loop, size):
    a, b = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=a)
    b.sendall(b"x" * size)
    assert await reader.readexactly(size) == b"x" * size
    writer.close()
    b.close()

async def sock_recv(loop, size):
    a, b = socket.socketpair()
    a.setblocking(False)
    b.sendall(b"x" * size)
    got = b""
    while len(got) < size:
        got += await loop.sock_recv(a, 65536)
    assert got == b"x" * size
    a.close()
    b.close()

async def pipe_read(loop, size):
    r, w = os.pipe()
    done = loop.create_future()
    transport, _ = await loop.connect_read_pipe(lambda: Echo(done, size), os.fdopen(r, "rb", 0))
    os.write(w, b"x" * size)
    await done
    transport.close()
    os.close(w)

import loopx
how, size = os.environ["PROBE_HOW"], int(os.environ["PROBE_SIZE"])
# Freeing a block that came from mmap tunes malloc by its size: probe with
# a smaller block first, so that only the hint can change the second probe.
print("before", is_mmapped(600 * 1024))
loop = loopx.new_event_loop()
loop.run_until_complete(asyncio.wait_for(globals()[how](loop, size), 30))
loop.close()
print("after", is_mmapped(800 * 1024))
"""


def probe(how, size, env=None):
    """(mmapped before, mmapped after) the reads, in a fresh interpreter."""
    env = {"PROBE_HOW": how, "PROBE_SIZE": str(size), **(env or {})}
    out = helpers.python_subprocess(PROBE, env=env).split()
    before, after = out[1] == "True", out[3] == "True"
    if not before:
        # A fresh glibc process mmaps 600 KiB: this one's malloc is not
        # glibc's own (the sanitizer run's ASan replaces it).
        pytest.skip("malloc here does not mmap a 600 KiB block before any read: not "
                    "glibc's malloc (e.g. ASan's), which the hint is not for")
    return before, after


@pytest.mark.parametrize("how", ["protocol_read", "streams_read", "sock_recv", "pipe_read"])
def test_a_large_read_raises_mallocs_thresholds(how):
    # 64 KiB in one write: at least one read of 32 KiB or more.
    assert probe(how, 64 * 1024) == (True, False)


@pytest.mark.parametrize("how", ["protocol_read", "streams_read", "sock_recv"])
def test_small_reads_leave_malloc_alone(how):
    # Below the large-read size, so the process keeps glibc's defaults.
    assert probe(how, 8 * 1024) == (True, True)


def test_thresholds_the_program_chose_stand():
    # Setting a threshold switches glibc's self-tuning off; the hint then
    # changes nothing (here: the default trim threshold, set explicitly).
    assert probe("streams_read", 64 * 1024,
                 env={"MALLOC_TRIM_THRESHOLD_": "131072"}) == (True, True)
