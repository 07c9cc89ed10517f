"""UDP ping-pong server: ``create_datagram_endpoint`` echoing each datagram.

The load generator keeps one datagram in flight per client socket and checks
each reply's size and every byte; a lost datagram fails the run.
"""
import asyncio

from .base import describe_address


class EchoDatagramProtocol(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


async def start(loop):
    transport, _ = await loop.create_datagram_endpoint(
        EchoDatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    return describe_address(transport.get_extra_info("socket")), transport.close
