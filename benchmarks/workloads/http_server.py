"""HTTP/1.1 keep-alive server on ``httptools``, the parser uvicorn uses.

Each response's body is the request's path, so the load generator (which
pipelines requests on keep-alive connections) can check that every response
answers the right request, in order.
"""
import asyncio

import httptools

from .base import describe_address


class HttpProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""

    # httptools callbacks; on_url may deliver the URL in pieces.
    def on_url(self, url):
        self.url += url

    def on_message_complete(self):
        body = self.url
        self.url = b""
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n\r\n%s"
            % (len(body), body)
        )

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()
            raise


async def start(loop):
    server = await loop.create_server(HttpProtocol, "127.0.0.1", 0, backlog=4096)
    return describe_address(server.sockets[0]), server.close
