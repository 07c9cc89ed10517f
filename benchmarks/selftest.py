"""Loops that misbehave on purpose, to prove the harness's verifiers work.

Each is a ``module:factory`` usable with ``--loops``, e.g.

    python -m benchmarks --loops asyncio,benchmarks.selftest:corrupting_loop \\
        --workloads tcp_echo_protocol_1k,subprocess_cat_pipe

and must come out FAILED, never with a number. tests/test_bench_harness.py
runs them; they are in the package (not the tests) so the isolated child
processes can import them.
"""
import asyncio
import itertools


# Counted across transports, so that connection churn (a write or two per
# connection) gets corrupted too.
_writes = itertools.count(1)


def _corrupt_writes(transport):
    write = transport.write

    def corrupting_write(data):
        data = bytes(data)
        if next(_writes) % 10 == 0 and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        write(data)

    transport.write = corrupting_write
    return transport


class _CorruptingLoop(asyncio.SelectorEventLoop):
    """Flips one byte in every 10th write of each socket, TLS and write-pipe
    transport (a subprocess's stdin is one).

    Often enough that even a very short run hits it on every connection.
    """

    def _make_socket_transport(self, *args, **kwargs):
        return _corrupt_writes(super()._make_socket_transport(*args, **kwargs))

    def _make_write_pipe_transport(self, *args, **kwargs):
        return _corrupt_writes(super()._make_write_pipe_transport(*args, **kwargs))

    def _make_ssl_transport(self, *args, **kwargs):
        # The TLS application transport: the flipped byte is encrypted intact.
        return _corrupt_writes(super()._make_ssl_transport(*args, **kwargs))


class _DuplicatingLoop(asyncio.SelectorEventLoop):
    """Runs every 5,000th ``call_soon`` callback twice."""

    _calls = 0

    def call_soon(self, callback, *args, context=None):
        self._calls += 1
        if self._calls % 5000 == 0:
            super().call_soon(callback, *args, context=context)
        return super().call_soon(callback, *args, context=context)


class _UnimplementedLoop(asyncio.SelectorEventLoop):
    """Has no servers yet, as loopx before its transports land."""

    async def create_server(self, *args, **kwargs):
        raise NotImplementedError("create_server: transports have not landed")


def corrupting_loop():
    return _CorruptingLoop()


def duplicating_loop():
    return _DuplicatingLoop()


def unimplemented_loop():
    return _UnimplementedLoop()
