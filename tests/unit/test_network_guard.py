"""The suite refuses connections that leave this machine (tests/network_guard.py)."""

from __future__ import annotations

import socket

import pytest
from network_guard import NonLoopbackConnectionError


@pytest.mark.parametrize("host", ["10.0.0.1", "192.168.1.1", "8.8.8.8", "example.com"])
def test_a_connection_off_this_machine_is_refused(host: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        with pytest.raises(NonLoopbackConnectionError):
            sock.connect((host, 443))


def test_a_connection_over_ipv6_off_this_machine_is_refused() -> None:
    with (
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock,
        pytest.raises(NonLoopbackConnectionError),
    ):
        sock.connect_ex(("2001:db8::1", 443))


async def test_asyncio_connections_are_guarded_too() -> None:
    import asyncio

    with pytest.raises(NonLoopbackConnectionError):
        await asyncio.open_connection("10.1.2.3", 80)


def test_loopback_connections_pass() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
