"""The usage accounting call of AsyncOrchestrator (tenant admins): runs, model calls and
tokens per agent and hour or day."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ._connection import Connection
from ._convert import from_fields, timestamp_of
from .v1 import usage_pb2

_GRANULARITY = {
    "day": usage_pb2.USAGE_GRANULARITY_DAY,
    "hour": usage_pb2.USAGE_GRANULARITY_HOUR,
}


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """What one agent used in one period (an hour or a UTC day): the runs whose end was
    recorded in it, their model requests and the tokens the model reported."""

    agent_id: str
    period_start: datetime | None
    period_end: datetime | None
    runs: int
    model_calls: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class UsageCalls(Connection):
    """Usage accounting (see AsyncOrchestrator); the caller must be an admin of its
    tenant."""

    async def iter_usage(
        self,
        *,
        granularity: Literal["day", "hour"] = "day",
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        agent_id: str = "",
        page_size: int = 0,
    ) -> AsyncIterator[UsageRecord]:
        """The tenant's usage per agent and period, newest period first, then by agent
        id. Without times: the last 30 days (or 48 hours) up to now."""
        request = usage_pb2.ListUsageRequest(
            granularity=_GRANULARITY[granularity],
            start_time=timestamp_of(start_time),
            end_time=timestamp_of(end_time),
            agent_id=agent_id,
            page_size=page_size,
        )
        async for record in self._paginate(
            self._stub.ListUsage,
            request,
            lambda r: (from_fields(pb, UsageRecord) for pb in r.records),
        ):
            yield record
