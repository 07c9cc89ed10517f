"""getaddrinfo / getnameinfo (numeric and local names only: no network)."""
import asyncio
import socket

import pytest

import helpers


def test_getaddrinfo_numeric_matches_the_socket_module(loop):
    expected = socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
    got = helpers.run(loop, loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM))
    assert got == expected


def test_getaddrinfo_keyword_arguments(loop):
    got = helpers.run(
        loop,
        loop.getaddrinfo(
            "127.0.0.1", "8080", family=socket.AF_INET, type=socket.SOCK_DGRAM,
            proto=socket.IPPROTO_UDP, flags=socket.AI_NUMERICHOST,
        ),
    )
    assert got == [(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP, "", ("127.0.0.1", 8080))]


def test_getaddrinfo_localhost(loop):
    expected = socket.getaddrinfo("localhost", 0, family=socket.AF_INET)
    got = helpers.run(loop, loop.getaddrinfo("localhost", 0, family=socket.AF_INET))
    assert sorted(got) == sorted(expected)
    assert all(addr[4][0].startswith("127.") for addr in got)


def test_getaddrinfo_ipv6_literal(loop):
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6 support")
    got = helpers.run(loop, loop.getaddrinfo("::1", 443, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST))
    assert got[0][0] == socket.AF_INET6
    assert got[0][4][:2] == ("::1", 443)


def test_getaddrinfo_error_is_gaierror(loop):
    async def main():
        with pytest.raises(socket.gaierror):
            await loop.getaddrinfo("not-a-number", 80, flags=socket.AI_NUMERICHOST)

    helpers.run(loop, main())


def test_getaddrinfo_none_host_and_port(loop):
    got = helpers.run(loop, loop.getaddrinfo(None, 0, family=socket.AF_INET, type=socket.SOCK_STREAM,
                                             flags=socket.AI_PASSIVE))
    assert got == socket.getaddrinfo(None, 0, family=socket.AF_INET, type=socket.SOCK_STREAM,
                                     flags=socket.AI_PASSIVE)


def test_getnameinfo_numeric(loop):
    flags = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
    got = helpers.run(loop, loop.getnameinfo(("127.0.0.1", 8080), flags))
    assert got == ("127.0.0.1", "8080")


def test_getnameinfo_matches_the_socket_module(loop):
    expected = socket.getnameinfo(("127.0.0.1", 80), 0)
    assert helpers.run(loop, loop.getnameinfo(("127.0.0.1", 80))) == expected


def test_concurrent_lookups(loop):
    async def main():
        return await asyncio.gather(*(loop.getaddrinfo("127.0.0.1", port, type=socket.SOCK_STREAM)
                                      for port in range(1000, 1050)))

    results = helpers.run(loop, main())
    assert [r[0][4][1] for r in results] == list(range(1000, 1050))
