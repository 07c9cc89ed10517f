"""Pipe throughput through a child: ``cat`` with stdin and stdout on pipes.

Each unit starts ``cat`` with ``asyncio.create_subprocess_exec`` (streams,
as users write it) and, concurrently, writes ``mib`` MiB to its stdin in
``chunk``-byte writes (``write`` + ``drain``) while reading its stdout with
``read(read_size)``, then closes stdin and waits for the exit status. One
operation is one MiB through the child and back, so the metric is MiB/s:
the loop's write and read pipe transports, flow control both ways, and one
spawn per ``mib`` MiB. When the harness pins, ``cat`` runs on the load
generator's CPU, the loop alone on its own.

Verified: every byte that comes back, in order, and nothing more. The stream
cycles through ``_BLOCKS`` random blocks of ``chunk`` bytes, written as the
same prebuilt ``bytes`` objects (no copy per write); each piece read is
compared in place (``bytes.startswith`` at an offset: a memcmp, no copy, no
second 64 MiB buffer) with the pattern at the running offset, so a flipped,
lost, duplicated or reordered byte fails the run with its offset. Then the
total length and ``cat``'s exit status 0.
"""
import asyncio
import random
import shutil

from .base import VerificationError, pin_peer

_CAT = shutil.which("cat") or "/bin/cat"
_MIB = 1 << 20
# Distinct blocks in the pattern's period: a prime, so losing or repeating a
# few whole chunks shifts the stream off the pattern too.
_BLOCKS = 7
_patterns = {}


def _pattern(chunk, read_size):
    """(blocks to write, the period extended by read_size for in-place compares)."""
    key = (chunk, read_size)
    if key not in _patterns:
        rng = random.Random(chunk)
        blocks = [rng.randbytes(chunk) for _ in range(_BLOCKS)]
        period = b"".join(blocks)
        _patterns[key] = blocks, period + (period * (read_size // len(period) + 1))[:read_size]
    return _patterns[key]


def _first_difference(data, expected):
    return next(i for i, (a, b) in enumerate(zip(data, expected)) if a != b)


async def unit(loop, mib=64, chunk=64 * 1024, read_size=64 * 1024):
    total = mib * _MIB
    if total % chunk:
        raise ValueError(f"mib={mib} is not a whole number of {chunk}-byte chunks")
    blocks, expected = _pattern(chunk, read_size)
    period = _BLOCKS * chunk

    proc = await asyncio.create_subprocess_exec(
        _CAT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    # cat is this workload's load generator: on the other CPU (it would
    # inherit the loop's), like benchmarks/bin/loadgen for the echo servers.
    pin_peer(proc.pid)

    async def writer():
        stdin = proc.stdin
        for i in range(total // chunk):
            stdin.write(blocks[i % _BLOCKS])
            await stdin.drain()
        stdin.close()

    async def reader():
        stdout = proc.stdout
        received = 0
        while True:
            data = await stdout.read(read_size)
            if not data:
                return received
            at = received % period
            if not expected.startswith(data, at):
                offset = received + _first_difference(data, expected[at:at + len(data)])
                raise VerificationError(
                    f"cat returned a wrong byte at offset {offset} of {total}")
            received += len(data)
            if received > total:
                raise VerificationError(f"cat returned {received} bytes, more than {total}")

    tasks = [loop.create_task(writer()), loop.create_task(reader())]
    try:
        _, received = await asyncio.gather(*tasks)
    except BaseException:
        # Leave no child behind: kill it, then read its stdout to EOF, since
        # wait() also waits for the pipes to close.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if proc.returncode is None:
            proc.kill()
        while await proc.stdout.read(_MIB):
            pass
        await proc.wait()
        raise
    status = await proc.wait()
    if received != total or status != 0:
        raise VerificationError(
            f"cat returned {received} of {total} bytes and exited {status}")
    return mib
