"""API key and audit trail RPCs (admins only, per the permission table): parse, call the
core, convert."""

from __future__ import annotations

from typing import Any

import grpc

from orchestrator.v1 import access_pb2

from ..core.api_keys import ApiKeys
from ..core.audit import AuditTrail
from .call_context import tenant_of
from .convert.access import api_key_to_pb, audit_event_to_pb, seconds_of

Context = grpc.aio.ServicerContext[Any, Any]


class AccessRpcs:
    """The access-control part of OrchestratorService."""

    def __init__(self, api_keys: ApiKeys, audit: AuditTrail) -> None:
        self._api_keys = api_keys
        self._audit = audit

    async def CreateApiKey(
        self, request: access_pb2.CreateApiKeyRequest, context: Context
    ) -> access_pb2.CreateApiKeyResponse:
        """Create a key; its secret is in this response only."""
        spec = request.api_key
        key, secret = await self._api_keys.create(
            tenant_of(context),
            spec.display_name,
            list(spec.roles),
            seconds_of(spec.expire_time, spec.HasField("expire_time")),
        )
        return access_pb2.CreateApiKeyResponse(api_key=api_key_to_pb(key), secret=secret)

    async def ListApiKeys(
        self, request: access_pb2.ListApiKeysRequest, context: Context
    ) -> access_pb2.ListApiKeysResponse:
        """List the tenant's keys without secrets."""
        page = await self._api_keys.list(tenant_of(context), request.page_size, request.page_token)
        return access_pb2.ListApiKeysResponse(
            api_keys=[api_key_to_pb(k) for k in page.items], next_page_token=page.next_page_token
        )

    async def RevokeApiKey(
        self, request: access_pb2.RevokeApiKeyRequest, context: Context
    ) -> access_pb2.RevokeApiKeyResponse:
        """Revoke a key."""
        key = await self._api_keys.revoke(tenant_of(context), request.key_id)
        return access_pb2.RevokeApiKeyResponse(api_key=api_key_to_pb(key))

    async def ListAuditEvents(
        self, request: access_pb2.ListAuditEventsRequest, context: Context
    ) -> access_pb2.ListAuditEventsResponse:
        """A page of the tenant's audit trail, newest first."""
        page = await self._audit.list(
            tenant_of(context),
            page_size=request.page_size,
            page_token=request.page_token,
            start_time=seconds_of(request.start_time, request.HasField("start_time")),
            end_time=seconds_of(request.end_time, request.HasField("end_time")),
            principal=request.principal,
            method=request.method,
        )
        return access_pb2.ListAuditEventsResponse(
            events=[audit_event_to_pb(e) for e in page.items],
            next_page_token=page.next_page_token,
        )
