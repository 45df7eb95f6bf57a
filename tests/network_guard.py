"""Refuse any network connection the tests make that is not to this machine.

Installed by the root conftest for the whole session: `socket.socket.connect` and
`connect_ex` raise for an address outside the loopback range (127.0.0.0/8, ::1), so a
test that would reach a real provider or any other host fails at once instead of sending
traffic. Unix sockets pass. Connections made in C (grpc's core, libuv) and by child
processes are not seen here; those only ever get loopback addresses from the fixtures.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


class NonLoopbackConnectionError(ConnectionRefusedError):
    """A test tried to connect somewhere other than this machine."""


def check_address(family: int, address: Any) -> None:
    """Raise unless `address` (of a socket of `family`) is on this machine."""
    if family not in (socket.AF_INET, socket.AF_INET6):
        return
    host = address[0]
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        loopback = False  # a host name: resolving it would already reach out
    if not loopback:
        raise NonLoopbackConnectionError(f"tests may only connect to loopback, not {host!r}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    check_address(self.family, address)
    _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    check_address(self.family, address)
    return _connect_ex(self, address)


def install() -> None:
    """Guard every socket of this process."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
