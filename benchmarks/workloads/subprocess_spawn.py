"""Subprocess spawn rate: ``asyncio.create_subprocess_exec`` + ``communicate``.

Each operation starts ``echo N`` with its stdout on a pipe, reads the output
to EOF and waits for the exit status: process creation, pipe transports and
child reaping, which is the loop's subprocess machinery end to end.
Verified: every child prints exactly its own number and exits 0.
"""
import asyncio
import shutil

from .base import VerificationError

_ECHO = shutil.which("echo") or "/bin/echo"


async def unit(loop, spawns=10):
    for i in range(spawns):
        proc = await asyncio.create_subprocess_exec(
            _ECHO, str(i), stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0 or out != b"%d\n" % i:
            raise VerificationError(f"echo {i} printed {out!r} and exited {proc.returncode}")
    return spawns
