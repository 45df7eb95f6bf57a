"""Usage accounting: the runs, model calls and tokens of each agent of a tenant, per hour
or per day (UTC), for charging usage back to the teams that caused it.

The store adds a run's usage to its agent's hour in the transaction that records the
run's end, so the figures always equal the sum of the ended runs' recorded usage. What
counts: every run of an agent whose end the server recorded (completed, failed,
cancelled), with the tokens its model calls reported, including the calls of a run
that did not complete. Pipeline and team runs are not counted themselves: their steps
and members are runs of agents, counted under those agents.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from .errors import InvalidArgumentError
from .pagination import PageTokens, scope_of
from .types import Page, Run
from .validation import check_agent_id

HOUR = 3600
DAY = 86400
# The longest range one listing may cover: a year of days, or 31 days of hours (the
# rows a page may have to group stay bounded).
MAX_RANGE_SECONDS = {HOUR: 31 * DAY, DAY: 366 * DAY}


def hour_of(timestamp: float) -> int:
    """The start (Unix seconds, UTC) of the hour `timestamp` falls in."""
    return int(timestamp // HOUR) * HOUR


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """Which usage to list: [start, end) in Unix seconds, periods of `period` seconds
    (HOUR or DAY), optionally of one agent, newest period first, after `after`
    ((period start, agent id) of the last row served)."""

    start: int
    end: int
    period: int
    limit: int
    agent_id: str = ""
    after: tuple[int, str] | None = None


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One agent's usage in one period."""

    agent_id: str
    period_start: int
    runs: int
    model_calls: int
    prompt_tokens: int
    completion_tokens: int


class UsageStore(Protocol):
    """What usage accounting needs of the store."""

    async def list_usage(self, tenant: str, query: UsageQuery) -> list[UsageRow]:
        """Rows of the query's periods, newest first then by agent id, at most
        `query.limit`."""


def run_counts(run: Run) -> bool:
    """Whether a run's end adds to usage: runs of agents, not the parent records of
    pipelines and teams (whose participants are counted)."""
    return bool(run.agent_id)


class UsageReports:
    """ListUsage: a tenant's usage, checked and paginated."""

    def __init__(self, store: UsageStore, tokens: PageTokens) -> None:
        self._store = store
        self._tokens = tokens

    async def list(
        self,
        tenant: str,
        *,
        period: int,
        start: float | None,
        end: float | None,
        agent_id: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[UsageRow]:
        """The usage of the tenant's agents per period, newest period first. Without a
        range: the last 30 days (days) or 48 hours (hours), up to now."""
        if agent_id:
            check_agent_id(agent_id)
        # The range is resolved (against the clock) for the first page; later pages keep
        # it, from their token, so that a listing crossing an hour goes on where it was.
        window = _range(period, start, end)

        def fetch(after: list[str | int | float] | None, limit: int) -> Awaitable[list[UsageRow]]:
            nonlocal window
            key = None
            if after:
                window = (int(after[0]), int(after[1]))
                key = (int(after[2]), str(after[3]))
            query = UsageQuery(*window, period, limit, agent_id, key)
            return self._store.list_usage(tenant, query)

        scope = scope_of("usage", tenant, period, start, end, agent_id)
        return await self._tokens.fetch_page(
            scope, page_size, page_token, fetch, lambda r: [*window, r.period_start, r.agent_id]
        )


def _range(period: int, start: float | None, end: float | None) -> tuple[int, int]:
    """[first, last) aligned to whole periods (a period is listed whole or not at all)."""
    now = time.time()
    last = _align_up(end if end is not None else now, period)
    default_span = 30 * DAY if period == DAY else 48 * HOUR
    first = int((start if start is not None else last - default_span) // period) * period
    if last <= first:
        raise InvalidArgumentError.for_field("end_time", "must be after start_time")
    if last - first > MAX_RANGE_SECONDS[period]:
        days = MAX_RANGE_SECONDS[period] // DAY
        raise InvalidArgumentError.for_field(
            "start_time", f"the range may cover at most {days} days at this granularity"
        )
    return first, last


def _align_up(timestamp: float, period: int) -> int:
    whole = int(timestamp // period) * period
    return whole if whole == timestamp else whole + period
