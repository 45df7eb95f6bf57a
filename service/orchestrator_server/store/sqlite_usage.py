"""Per-tenant usage counters of the SQLite store (stored bytes, agents, teams), kept
inside the writes that change them: functions of a connection in the writer's
transaction, so that concurrent writes cannot overshoot a quota. And usage accounting:
runs, model calls and tokens per tenant, agent and hour (`core/usage.py`)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Literal

from ..core.pagination import text_bytes
from ..core.quotas import StorageQuotas
from ..core.types import Run
from ..core.usage import UsageQuery, UsageRow, hour_of, run_counts

Counter = Literal["message_bytes", "agents", "teams"]
# The bytes a row stores, in SQL: the UTF-8 length of its text columns.
_ROW_BYTES = {
    "messages": "length(CAST(content AS BLOB)) + length(CAST(tool_calls AS BLOB))",
    "runs": "length(CAST(input AS BLOB)) + length(CAST(coalesce(output, '') AS BLOB))",
}


def message_bytes(rows: Sequence[tuple[str, str]]) -> int:
    """What (content, tool_calls JSON) rows add to their tenant's stored bytes."""
    return sum(text_bytes(content, tool_calls) for content, tool_calls in rows)


def usage(conn: sqlite3.Connection, tenant: str, counter: Counter) -> int:
    """One of the tenant's counters."""
    row = conn.execute(f"SELECT {counter} FROM usage WHERE tenant = ?", (tenant,)).fetchone()
    return int(row[0]) if row else 0


def add(conn: sqlite3.Connection, tenant: str, counter: Counter, delta: int) -> None:
    """Change one of the tenant's counters by `delta`."""
    if delta:  # one upsert: the tenant's first write creates its row
        conn.execute(
            "INSERT INTO usage(tenant, message_bytes, agents, teams) "
            "VALUES (:tenant, :message_bytes, :agents, :teams) "
            f"ON CONFLICT(tenant) DO UPDATE SET {counter} = {counter} + excluded.{counter}",
            {"tenant": tenant, "message_bytes": 0, "agents": 0, "teams": 0, counter: delta},
        )


def forget_rows(conn: sqlite3.Connection, tenant: str, where: str, params: tuple[str, ...]) -> None:
    """Before deleting the tenant's messages and runs matching `where`: take their bytes
    off."""
    for table, row_bytes in _ROW_BYTES.items():
        row = conn.execute(
            f"SELECT coalesce(sum({row_bytes}), 0) FROM {table} WHERE tenant = ? AND {where}",
            (tenant, *params),
        ).fetchone()
        add(conn, tenant, "message_bytes", -int(row[0]))


def check_turn(conn: sqlite3.Connection, quotas: StorageQuotas, tenant: str, text: str) -> None:
    """QUOTA_EXCEEDED if a turn whose input is `text` would take the tenant past its
    stored bytes."""
    quotas.check_turn(tenant, usage(conn, tenant, "message_bytes"), text)


def take_one(
    conn: sqlite3.Connection, quotas: StorageQuotas, tenant: str, kind: Literal["agents", "teams"]
) -> None:
    """Count one more agent or team of the tenant, or QUOTA_EXCEEDED at its limit."""
    quotas.check_count(tenant, kind, usage(conn, tenant, kind))
    add(conn, tenant, kind, 1)


def record_run(conn: sqlite3.Connection, tenant: str, run: Run, end: float) -> None:
    """Add an ended run's usage to its agent's hour (in the run's end transaction)."""
    if not run_counts(run):
        return
    usage = run.usage
    conn.execute(
        "INSERT INTO usage_hourly(tenant, agent_id, hour, runs, model_calls, prompt_tokens, "
        "completion_tokens) VALUES (?, ?, ?, 1, ?, ?, ?) "
        "ON CONFLICT(tenant, hour, agent_id) DO UPDATE SET runs = runs + 1, "
        "model_calls = model_calls + excluded.model_calls, "
        "prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
        "completion_tokens = completion_tokens + excluded.completion_tokens",
        (
            tenant,
            run.agent_id,
            hour_of(end),
            usage.model_calls,
            usage.prompt_tokens,
            usage.completion_tokens,
        ),
    )


def list_usage_query(tenant: str, query: UsageQuery) -> tuple[str, list[object]]:
    """The SELECT of a page of usage rows: hours summed into the query's periods, newest
    first, then by agent id (UsageRow's fields). The page's start is a condition on the
    hours read, so a later page reads only the hours not served yet."""
    period = int(query.period)
    where = "tenant = ? AND hour >= ? AND hour < ?"
    params: list[object] = [tenant, query.start, query.end]
    if query.agent_id:
        where += " AND agent_id = ?"
        params.append(query.agent_id)
    if query.after is not None:
        last, agent = query.after
        where += " AND (hour < ? OR (hour < ? AND agent_id > ?))"
        params += [last, last + period, agent]
    sql = (
        f"SELECT agent_id, (hour / {period}) * {period} AS period, sum(runs), "
        "sum(model_calls), sum(prompt_tokens), sum(completion_tokens) "
        f"FROM usage_hourly WHERE {where} GROUP BY period, agent_id "
        "ORDER BY period DESC, agent_id LIMIT ?"
    )
    return sql, [*params, query.limit]


def read_apart(path: str, sql: str, params: Sequence[object]) -> list[Any]:
    """A read on a connection of its own, for a thread: a grouping returns its first row
    only once it has read every row it groups, which must not hold the event loop."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def list_usage(
    path: str, read_here: Callable[[str, list[object]], list[Any]], tenant: str, query: UsageQuery
) -> list[UsageRow]:
    """A page of usage rows, grouped in a thread (`read_here`, the event loop's
    connection, only for an in-memory database, which no other connection sees)."""
    sql, params = list_usage_query(tenant, query)
    if path == ":memory:":
        rows = read_here(sql, params)
    else:
        rows = await asyncio.to_thread(read_apart, path, sql, params)
    return [UsageRow(*row) for row in rows]
