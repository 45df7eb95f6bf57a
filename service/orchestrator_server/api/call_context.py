"""What a call carries besides its request: the tenant it acts for and its deadline.

The tenant is decided by the access gate (`access_gate.py`) from the caller's identity;
`x-tenant-id` only chooses among the tenants the identity belongs to (without
authentication, any tenant).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import grpc

from ..core.access import current_caller
from ..core.errors import InvalidArgumentError, Reason

TENANT_HEADER = "x-tenant-id"
_TENANT = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


def tenant_of(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The tenant the call acts for (set by the access gate)."""
    return current_caller().tenant


def named_tenant(metadata: Sequence[tuple[str, str | bytes]]) -> str | None:
    """The tenant named by the call's metadata, if any. Named twice is refused: behind a
    proxy that appends the header instead of replacing it, the first would be the
    client's."""
    named = [value for key, value in metadata if key == TENANT_HEADER]
    if not named:
        return None
    if len(named) > 1:
        raise InvalidArgumentError.for_field(
            TENANT_HEADER, "must be given once", reason=Reason.INVALID_TENANT
        )
    value = named[0]
    tenant = value if isinstance(value, str) else value.decode("utf-8", "replace")
    if not _TENANT.fullmatch(tenant):
        raise InvalidArgumentError.for_field(
            TENANT_HEADER,
            "must be 1-63 lowercase letters, digits, '.', '_' or '-'",
            reason=Reason.INVALID_TENANT,
        )
    return tenant


def deadline_of(context: grpc.aio.ServicerContext[Any, Any]) -> float | None:
    """The caller's deadline as a time.monotonic() instant (None without one)."""
    remaining = context.time_remaining()
    return time.monotonic() + remaining if remaining is not None else None
