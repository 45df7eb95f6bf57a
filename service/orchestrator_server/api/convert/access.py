"""API key and audit event messages <-> domain types."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from orchestrator.v1 import access_pb2

from ...core.access_port import ApiKey, AuditEvent
from ...core.api_keys import roles_of
from .common import timestamp


def seconds_of(ts: Timestamp, present: bool) -> float | None:
    """Unix seconds of a Timestamp field, None when it is unset."""
    return ts.ToNanoseconds() / 1e9 if present else None


def api_key_to_pb(key: ApiKey) -> access_pb2.ApiKey:
    """An ApiKey message; never the secret or its hash."""
    return access_pb2.ApiKey(
        key_id=key.key_id,
        display_name=key.display_name,
        roles=roles_of(key),
        expire_time=timestamp(key.expire_time),
        create_time=timestamp(key.create_time),
        creator=key.creator,
        revoke_time=timestamp(key.revoke_time),
        last_use_time=timestamp(key.last_use_time),
    )


def audit_event_to_pb(event: AuditEvent) -> access_pb2.AuditEvent:
    """An AuditEvent message."""
    return access_pb2.AuditEvent(
        sequence=event.sequence,
        time=timestamp(event.time),
        principal=event.principal,
        tenant=event.tenant,
        method=event.method,
        resource=event.resource,
        outcome=event.outcome,
        reason=event.reason,
        peer=event.peer,
        authentication=event.authentication,
    )
