"""Network helpers for development tooling, tests and benchmarks."""

from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    For a server in another process that must be given its port up front (`orchestrator
    serve --address`). The probe socket is closed before returning, so nothing listens on
    the port: connecting to it is refused, which also makes it an address for "no server
    there". Another process may take the port in between; a server that can bind port 0
    itself and report the port it got (like `DevModelServer`) has no such race.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
