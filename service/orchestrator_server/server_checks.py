"""Checks of where the server listens (shared by start-up decisions)."""

from __future__ import annotations

import ipaddress


def listens_on_loopback(address: str) -> bool:
    """Whether a host:port listen address is reachable from this machine only."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name or a wildcard address (0.0.0.0, [::])
