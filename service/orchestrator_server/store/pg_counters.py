"""The tenant's counters on PostgreSQL (stored bytes, agents, teams), kept in sharded
rows of the `usage` table: each change lands on the shard of its connection's backend,
and a read sums the shards."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .pg_runs import Conn

USAGE_SHARDS = 16


async def add_usage(conn: Conn, tenant: str, counter: str, delta: int) -> None:
    """Change one of the tenant's counters, on the shard of this connection's backend:
    every change a transaction makes lands on one row, so two transactions never lock
    two shards in opposite orders (a deadlock), and concurrent ones mostly lock
    different rows (see the schema)."""
    if delta:
        await conn.execute(
            f"INSERT INTO usage(tenant, shard, {counter}) VALUES ($1, pg_backend_pid() % "
            f"{USAGE_SHARDS}, $2) ON CONFLICT (tenant, shard) DO UPDATE "
            f"SET {counter} = usage.{counter} + $2",
            tenant,
            delta,
        )


async def usage(conn: Conn, tenant: str, counter: str) -> int:
    """One of the tenant's counters (the sum of its shards)."""
    value = await conn.fetchval(
        f"SELECT coalesce(sum({counter}), 0) FROM usage WHERE tenant = $1", tenant
    )
    return int(value)


async def stored_bytes(conn: Conn, tenant: str, where: str, *params: str) -> int:
    """What the tenant's messages and runs matching `where` ($2, ...) count in its stored
    bytes (read before deleting them, taken off after)."""
    stored = await conn.fetchval(
        "SELECT coalesce((SELECT sum(octet_length(content) + octet_length(tool_calls)) "
        f"FROM messages WHERE tenant = $1 AND {where}), 0) + coalesce((SELECT "
        f"sum(octet_length(input) + octet_length(output)) FROM runs WHERE tenant = $1 "
        f"AND {where}), 0)",
        tenant,
        *params,
    )
    return int(stored)
