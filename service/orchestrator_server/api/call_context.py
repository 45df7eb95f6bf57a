"""What a call carries besides its request: the tenant it acts for and its deadline.

The tenant is the `x-tenant-id` request metadata (default "default").

The service trusts the header as set by the mesh in front of it (an authenticating proxy
or interceptor maps credentials to a tenant); it only checks that the value is well formed.
"""

from __future__ import annotations

import re
import time
from typing import Any

import grpc

from ..core.errors import InvalidArgumentError, Reason
from ..core.types import DEFAULT_TENANT

TENANT_HEADER = "x-tenant-id"
_TENANT = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


def tenant_of(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The tenant named by the call's metadata. Named twice is refused: behind a proxy
    that appends the header instead of replacing it, the first would be the client's."""
    named = [value for key, value in context.invocation_metadata() or () if key == TENANT_HEADER]
    if not named:
        return DEFAULT_TENANT
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
