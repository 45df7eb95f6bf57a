"""The access-control calls of AsyncOrchestrator (tenant admins): API keys and the audit
trail."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime

from ._connection import Connection
from ._convert import from_fields, timestamp_of
from .v1 import access_pb2


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as the server lists it (never its secret)."""

    key_id: str
    display_name: str
    roles: tuple[str, ...]
    creator: str
    create_time: datetime | None
    expire_time: datetime | None
    revoke_time: datetime | None
    last_use_time: datetime | None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One record of the tenant's audit trail."""

    sequence: int
    time: datetime | None
    principal: str
    tenant: str
    method: str
    resource: str
    outcome: str
    reason: str
    peer: str
    authentication: str


def _key(pb: access_pb2.ApiKey) -> ApiKey:
    return from_fields(pb, ApiKey)


def _event(pb: access_pb2.AuditEvent) -> AuditEvent:
    return from_fields(pb, AuditEvent)


class AccessCalls(Connection):
    """API keys and the audit trail (see AsyncOrchestrator); the caller must be an admin
    of its tenant."""

    async def create_api_key(
        self,
        roles: Iterable[str],
        *,
        display_name: str = "",
        expire_time: datetime | None = None,
    ) -> tuple[ApiKey, str]:
        """Create an API key of the caller's tenant; returns it and its secret, which the
        server shows this once (send it as `token=` or ORCHESTRATOR_TOKEN)."""
        spec = access_pb2.ApiKey(
            display_name=display_name, roles=list(roles), expire_time=timestamp_of(expire_time)
        )
        response = await self._unary(
            self._stub.CreateApiKey, access_pb2.CreateApiKeyRequest(api_key=spec)
        )
        return _key(response.api_key), response.secret

    async def iter_api_keys(self, *, page_size: int = 0) -> AsyncIterator[ApiKey]:
        """Every API key of the tenant in id order, revoked ones included."""
        request = access_pb2.ListApiKeysRequest(page_size=page_size)
        async for key in self._paginate(
            self._stub.ListApiKeys, request, lambda r: map(_key, r.api_keys)
        ):
            yield key

    async def revoke_api_key(self, key_id: str) -> ApiKey:
        """Revoke a key: every replica refuses it within a second."""
        response = await self._unary(
            self._stub.RevokeApiKey, access_pb2.RevokeApiKeyRequest(key_id=key_id)
        )
        return _key(response.api_key)

    async def iter_audit_events(
        self,
        *,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        principal: str = "",
        method: str = "",
        page_size: int = 0,
    ) -> AsyncIterator[AuditEvent]:
        """The tenant's audit trail, newest first, filtered."""
        request = access_pb2.ListAuditEventsRequest(
            page_size=page_size,
            start_time=timestamp_of(start_time),
            end_time=timestamp_of(end_time),
            principal=principal,
            method=method,
        )
        async for event in self._paginate(
            self._stub.ListAuditEvents, request, lambda r: map(_event, r.events)
        ):
            yield event
