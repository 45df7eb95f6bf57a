"""Usage accounting of the in-memory store: the same hourly rows as the SQLite and
PostgreSQL stores keep, in a dict."""

from __future__ import annotations

from collections import defaultdict

from ..core.types import Run
from ..core.usage import UsageQuery, UsageRow, hour_of, run_counts


class UsageLedger:
    """Runs, model calls and tokens per (tenant, agent, hour)."""

    def __init__(self) -> None:
        self._hours: defaultdict[tuple[str, str, int], list[int]] = defaultdict(
            lambda: [0, 0, 0, 0]
        )

    def record_usage(self, tenant: str, run: Run, end: float) -> None:
        """Add an ended run's usage to its agent's hour."""
        if run_counts(run):
            row = self._hours[(tenant, run.agent_id, hour_of(end))]
            usage = run.usage
            for i, value in enumerate(
                (1, usage.model_calls, usage.prompt_tokens, usage.completion_tokens)
            ):
                row[i] += value

    async def list_usage(self, tenant: str, query: UsageQuery) -> list[UsageRow]:
        """Rows of the query's periods, newest first then by agent id."""
        periods: defaultdict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for (owner, agent_id, hour), values in self._hours.items():
            if owner != tenant or not query.start <= hour < query.end:
                continue
            if query.agent_id and agent_id != query.agent_id:
                continue
            total = periods[(hour // query.period * query.period, agent_id)]
            for i, value in enumerate(values):
                total[i] += value
        keys = sorted(periods, key=lambda key: (-key[0], key[1]))
        if query.after is not None:
            after = (-query.after[0], query.after[1])
            keys = [key for key in keys if (-key[0], key[1]) > after]
        return [UsageRow(agent_id, start, *periods[(start, agent_id)]) for start, agent_id in keys][
            : query.limit
        ]
