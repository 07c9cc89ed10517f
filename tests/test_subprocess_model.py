"""Child processes with asyncio's streams, in any mix of writes, on both loops.

loopx hands a subprocess pipe's data straight to the StreamReader (the
_subprocess_reader path of stream_feed.pxi), one loop iteration sooner than
asyncio's chain of protocol calls.  Here hypothesis writes a child's program
-- writes of any size to stdout and stderr, in any order, some ending in a
newline, stdout closed early or not, stdin echoed back or not, an exit code
-- and the parent reads both pipes at once with a mix of reader calls, or
with communicate().  On both loops the parent must get exactly the bytes the
child wrote to each pipe, each stream's EOF, and the exit code.
"""
import asyncio
import json
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

import helpers

helpers.skip_module_on_windows("the child's program uses os.write on fds 1 and 2")

# What the child writes: printable (the plan travels as JSON), "\n" only at
# the end of a write that asks for one.  Defined once, for the child and us.
_TEXT = r"""
import hashlib
def text(size, newline, seed):
    data = hashlib.shake_256(b"model-%d" % seed).digest(size).hex()[:size]
    return data[:-1] + "\n" if newline else data
"""
_NAMES = {}
exec(_TEXT, _NAMES)
_text = _NAMES["text"]

_CHILD = _TEXT + r"""
import json, os, sys
plan = json.loads(sys.argv[1])
got = b""
if plan["echo"]:
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            break
        got += chunk
for fd, size, newline, seed in plan["writes"]:
    if fd == 0:
        os.close(1)
        continue
    data = text(size, newline, seed).encode()
    while data:
        data = data[os.write(fd, data):]
if not plan["stdout_closed"]:
    while got:
        got = got[os.write(1, got):]
sys.exit(plan["code"])
"""

_WRITE = st.tuples(st.sampled_from([1, 2]), st.integers(1, 100_000), st.booleans())
_PLAN = st.fixed_dictionaries({
    "writes": st.lists(st.one_of(_WRITE, st.just("close stdout")), max_size=8),
    "echo": st.integers(0, 200_000),
    "code": st.integers(0, 3),
})
# Not readline(): past the limit it drops what it looked at (ValueError).
_READS = st.lists(st.sampled_from(["read", "readexactly", "readuntil"]), min_size=1, max_size=6)


def _child_program(plan):
    """The child's argument and what it will write to stdout and stderr."""
    writes, out, err, closed = [], "", "", False
    for seed, w in enumerate(plan["writes"]):
        if w == "close stdout":
            if not closed:
                writes.append((0, 0, False, seed))   # fd 0: close stdout
                closed = True
            continue
        fd, size, newline = w
        if fd == 1 and closed:
            fd = 2
        writes.append((fd, size, newline, seed))
        if fd == 1:
            out += _text(size, newline, seed)
        else:
            err += _text(size, newline, seed)
    echo = helpers.pattern_bytes(plan["echo"], "stdin")
    out_bytes = out.encode() + (b"" if closed else echo)
    arg = json.dumps({"writes": writes, "echo": bool(echo), "stdout_closed": closed,
                      "code": plan["code"]})
    return arg, echo, out_bytes, err.encode()


async def _read_all(reader, calls):
    """Everything the reader gives, with calls (cycled) until EOF."""
    got = bytearray()
    i = 0
    while True:
        call = calls[i % len(calls)]
        i += 1
        try:
            if call == "read":
                chunk = await reader.read(4096 + 997 * i)
            elif call == "readexactly":
                chunk = await reader.readexactly(1 + 3001 * i % 20000)
            else:
                chunk = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            chunk = exc.partial
        except asyncio.LimitOverrunError:
            chunk = await reader.read(1 << 20)   # past a line over the limit
        got += chunk
        if not chunk and reader.at_eof():
            return bytes(got)


async def _play(plan, reads, use_communicate):
    arg, echo, out, err = _child_program(plan)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, arg,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, limit=1000)
    if use_communicate:
        got_out, got_err = await proc.communicate(echo)
    else:
        async def feed():
            if echo:
                proc.stdin.write(echo)
                try:
                    await proc.stdin.drain()
                except (BrokenPipeError, ConnectionResetError):
                    pass
            proc.stdin.close()
        got_out, got_err, _ = await asyncio.gather(
            _read_all(proc.stdout, reads), _read_all(proc.stderr, reads[::-1]), feed())
    code = await proc.wait()
    assert got_out == out
    assert got_err == err
    return code


@settings(max_examples=helpers.examples(30), deadline=None)
@given(plan=_PLAN, reads=_READS, use_communicate=st.booleans())
def test_property_a_childs_every_byte_reaches_its_reader(plan, reads, use_communicate):
    for impl in helpers.IMPLS:
        loop = helpers.loop_factory(impl)()
        try:
            assert helpers.run(loop, _play(plan, reads, use_communicate)) == plan["code"], impl
        finally:
            loop.close()
