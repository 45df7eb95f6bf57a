"""Usage accounting RPCs (admins only, per the permission table): parse, call the core,
convert."""

from __future__ import annotations

from typing import Any

import grpc

from orchestrator.v1 import usage_pb2

from ..core.usage import UsageReports
from .call_context import tenant_of
from .convert.access import seconds_of
from .convert.usage import period_of, usage_record_to_pb

Context = grpc.aio.ServicerContext[Any, Any]


class UsageRpcs:
    """The usage part of OrchestratorService."""

    def __init__(self, usage: UsageReports) -> None:
        self._usage = usage

    async def ListUsage(
        self, request: usage_pb2.ListUsageRequest, context: Context
    ) -> usage_pb2.ListUsageResponse:
        """A page of the tenant's usage per agent and period, newest period first."""
        period = period_of(request.granularity)
        page = await self._usage.list(
            tenant_of(context),
            period=period,
            start=seconds_of(request.start_time, request.HasField("start_time")),
            end=seconds_of(request.end_time, request.HasField("end_time")),
            agent_id=request.agent_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return usage_pb2.ListUsageResponse(
            records=[usage_record_to_pb(row, period) for row in page.items],
            next_page_token=page.next_page_token,
        )
