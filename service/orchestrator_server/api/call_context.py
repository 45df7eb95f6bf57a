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
from ..core.log_context import TraceContext

TENANT_HEADER = "x-tenant-id"
_TENANT = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
# W3C Trace Context: version-traceid-parentid-flags, lowercase hex (version ff is invalid).
_TRACEPARENT = re.compile(r"^(?!ff)[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


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


def trace_of(metadata: Sequence[tuple[str, str | bytes]]) -> TraceContext | None:
    """The caller's W3C trace (`traceparent`), if it sent a valid one; anything else is
    ignored, as the specification asks (the call is not refused for it)."""
    for key, value in metadata:
        if key != "traceparent" or not isinstance(value, str):
            continue
        match = _TRACEPARENT.match(value)
        if match and match[1] != _ZERO_TRACE and match[2] != _ZERO_SPAN:
            return TraceContext(match[1], match[2], match[3])
        return None
    return None


def deadline_of(context: grpc.aio.ServicerContext[Any, Any]) -> float | None:
    """The caller's deadline as a time.monotonic() instant (None without one)."""
    remaining = context.time_remaining()
    return time.monotonic() + remaining if remaining is not None else None
