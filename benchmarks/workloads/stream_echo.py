"""Stream echo servers (TCP or Unix socket), in the three styles of asyncio.

* ``protocol``: ``loop.create_server`` with an ``asyncio.Protocol`` that
  writes back what it receives: the transport layer alone.
* ``streams``: ``asyncio.start_server`` with ``StreamReader``/``StreamWriter``
  and ``drain()``: what most applications use.
* ``sock``: a plain non-blocking socket served with ``loop.sock_accept``,
  ``loop.sock_recv`` and ``loop.sock_sendall``.

The load generator sends a message per connection, waits for all of it to
come back and checks every byte. The same servers back the idle-connections
workload (protocol style).

With ``tls=True`` the protocol and streams servers speak TLS (asyncio's
``ssl=`` argument), with a certificate for 127.0.0.1 issued by a throwaway
``trustme`` CA; the load generator is then a TLS client.
"""
import asyncio
import socket
import ssl

from .base import describe_address

_READ_SIZE = 65536


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def _serve_stream(reader, writer):
    try:
        while data := await reader.read(_READ_SIZE):
            writer.write(data)
            await writer.drain()
    except (ConnectionResetError, BrokenPipeError):
        pass  # the client going away is how every run ends
    finally:
        writer.close()


async def _serve_sock(loop, conn):
    try:
        while data := await loop.sock_recv(conn, _READ_SIZE):
            await loop.sock_sendall(conn, data)
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        conn.close()


def _listening_socket(family, unix_path):
    if family == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(unix_path)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def _server_ssl_context():
    import trustme  # only the TLS workloads need it (Workload.requires)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    return context


async def start(loop, style="protocol", family="tcp", unix_path=None, tls=False):
    if tls and (style == "sock" or family == "unix"):
        raise ValueError("TLS echo is served over TCP by the protocol and streams servers")
    tls_context = _server_ssl_context() if tls else None
    if style == "sock":
        listener = _listening_socket(family, unix_path)
        tasks = set()

        async def accept_forever():
            while True:
                conn, _ = await loop.sock_accept(listener)
                conn.setblocking(False)
                if family == "tcp":
                    # Transports set TCP_NODELAY themselves; a bare socket must.
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                task = loop.create_task(_serve_sock(loop, conn))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        acceptor = loop.create_task(accept_forever())

        def close():
            acceptor.cancel()
            listener.close()

        return describe_address(listener), close

    if style == "streams":
        if family == "unix":
            server = await asyncio.start_unix_server(_serve_stream, unix_path, backlog=4096)
        else:
            server = await asyncio.start_server(_serve_stream, "127.0.0.1", 0, backlog=4096,
                                                ssl=tls_context)
    elif family == "unix":
        server = await loop.create_unix_server(EchoProtocol, unix_path, backlog=4096)
    else:
        server = await loop.create_server(EchoProtocol, "127.0.0.1", 0, backlog=4096,
                                          ssl=tls_context)
    return describe_address(server.sockets[0]), server.close
