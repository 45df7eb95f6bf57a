"""Usage accounting on PostgreSQL (`core/usage.py`): runs, model calls and tokens per
tenant, agent and hour, added by finish_run in the run's end transaction.

The rows are sharded like the stored-bytes counters: concurrent run ends of one agent
in one hour (hundreds a second under load) would otherwise queue on one row lock until
each transaction commits; each connection adds to its own shard and a read sums them.
"""

from __future__ import annotations

from typing import Any

from ..core.usage import UsageQuery

# Version 4's tables; its finish_run overload is built in pg_schema from version 1's.
V4_USAGE_TABLES = """
ALTER TABLE runs ADD COLUMN model_calls BIGINT NOT NULL DEFAULT 0;
CREATE TABLE usage_hourly (
    tenant TEXT NOT NULL, hour BIGINT NOT NULL, agent_id TEXT NOT NULL, shard INTEGER NOT NULL,
    runs BIGINT NOT NULL, model_calls BIGINT NOT NULL, prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL, PRIMARY KEY (tenant, hour, agent_id, shard));
"""

# Added to finish_run before its end: the run's usage, unless it is a pipeline's or a
# team's own record (no agent).
RECORD_USAGE = """
    IF p_agent_id <> '' THEN
        INSERT INTO usage_hourly AS h (tenant, hour, agent_id, shard, runs, model_calls,
            prompt_tokens, completion_tokens)
            VALUES (p_tenant, (floor(p_end_time / 3600) * 3600)::bigint, p_agent_id,
                pg_backend_pid() % p_shards, 1, p_model_calls, p_prompt_tokens,
                p_completion_tokens)
            ON CONFLICT (tenant, hour, agent_id, shard) DO UPDATE
            SET runs = h.runs + 1, model_calls = h.model_calls + p_model_calls,
                prompt_tokens = h.prompt_tokens + p_prompt_tokens,
                completion_tokens = h.completion_tokens + p_completion_tokens;
    END IF;
"""


def list_usage_query(tenant: str, query: UsageQuery) -> tuple[str, list[Any]]:
    """The SELECT of a page of usage rows: hours (and shards) summed into the query's
    periods, newest first, then by agent id (UsageRow's fields). The page's start is a
    condition on the hours read, so a later page reads only the hours not served yet."""
    params: list[Any] = [tenant, query.start, query.end, query.period]
    where = "tenant = $1 AND hour >= $2 AND hour < $3"
    if query.agent_id:
        params.append(query.agent_id)
        where += f" AND agent_id = ${len(params)}"
    if query.after is not None:
        last, agent = query.after
        params += [last, last + query.period, agent]
        n = len(params)
        where += f" AND (hour < ${n - 2} OR (hour < ${n - 1} AND agent_id > ${n}))"
    params.append(query.limit)
    sql = (
        "SELECT agent_id, (hour / $4) * $4 AS period, sum(runs)::bigint, "
        "sum(model_calls)::bigint, sum(prompt_tokens)::bigint, sum(completion_tokens)::bigint "
        f"FROM usage_hourly WHERE {where} GROUP BY 2, agent_id "
        f"ORDER BY 2 DESC, agent_id LIMIT ${len(params)}"
    )
    return sql, params
