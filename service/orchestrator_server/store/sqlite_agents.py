"""The SQL of agents and the default agent in the SQLite store: functions of a
connection (writes run inside the writer's transaction, see sqlite.py)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from ..core.errors import FailedPreconditionError, Reason
from ..core.quotas import StorageQuotas
from ..core.store_port import already_exists, require
from ..core.types import Agent, AgentSpec, NewAgent
from . import sqlite_journal, sqlite_teams, sqlite_usage
from .sqlite_rows import AGENT_COLUMNS, agent_from_row, spec_to_json

_SELECT = f"SELECT {AGENT_COLUMNS} FROM agents a LEFT JOIN tenants t ON t.tenant = a.tenant "


def agent_row(conn: sqlite3.Connection, tenant: str, agent_id: str) -> Agent | None:
    """One agent with its default flag, or None."""
    row = conn.execute(
        _SELECT + "WHERE a.tenant = ? AND a.agent_id = ?", (tenant, agent_id)
    ).fetchone()
    return agent_from_row(row) if row else None


def list_agents_query(
    tenant: str, after: str | None, limit: int, label_filter: dict[str, str]
) -> tuple[str, list[Any]]:
    """The SELECT of a page of agents in id order carrying every filter label."""
    where = ["a.tenant = ?"]
    params: list[Any] = [tenant]
    if after is not None:
        where.append("a.agent_id > ?")
        params.append(after)
    for key, value in sorted(label_filter.items()):
        # Label keys follow the id rules, so quoting them in a JSON path is safe.
        where.append(f"json_extract(a.spec, '$.labels.\"{key}\"') = ?")
        params.append(value)
    params.append(limit)
    return _SELECT + f"WHERE {' AND '.join(where)} ORDER BY a.agent_id LIMIT ?", params


def create_agent(
    conn: sqlite3.Connection, tenant: str, new: NewAgent, quotas: StorageQuotas
) -> tuple[Agent, bool]:
    """Insert an agent, or return the existing one under if_not_exists; QUOTA_EXCEEDED
    if the tenant has as many agents as it may."""
    now = time.time()
    cursor = conn.execute(
        "INSERT OR IGNORE INTO agents(tenant, agent_id, spec, create_time, update_time, "
        "revision) VALUES (?, ?, ?, ?, ?, 1)",
        (tenant, new.agent_id, spec_to_json(new.spec), now, now),
    )
    if cursor.rowcount == 0:
        existing = agent_row(conn, tenant, new.agent_id)
        assert existing is not None
        if new.if_not_exists:
            return existing, False
        raise already_exists("agent", new.agent_id)
    # After the insert (the writer's savepoint undoes it on refusal): an existing agent
    # is still answered under if_not_exists to a tenant at its limit.
    sqlite_usage.take_one(conn, quotas, tenant, "agents")
    if new.set_as_default:
        _set_default(conn, tenant, new.agent_id)
    # Built from what was just inserted: re-reading the row would cost a query.
    return Agent(new.agent_id, new.spec, now, now, 1, is_default=new.set_as_default), True


def update_agent(
    conn: sqlite3.Connection, tenant: str, agent_id: str, spec: AgentSpec, expected: int | None
) -> Agent:
    """Replace the spec, bumping the revision (checked against `expected`)."""
    require("agent", agent_id, agent_row(conn, tenant, agent_id), expected)
    conn.execute(
        "UPDATE agents SET spec = ?, update_time = ?, revision = revision + 1 "
        "WHERE tenant = ? AND agent_id = ?",
        (spec_to_json(spec), time.time(), tenant, agent_id),
    )
    return require("agent", agent_id, agent_row(conn, tenant, agent_id))


def delete_agent(
    conn: sqlite3.Connection, tenant: str, agent_id: str, expected: int | None
) -> None:
    """Delete the agent, its messages, sessions and runs; clear it as default."""
    require("agent", agent_id, agent_row(conn, tenant, agent_id), expected)
    # Checked in the delete's own transaction: a team written concurrently either
    # commits first (and is seen here) or finds the agent gone.
    team_id = sqlite_teams.team_using(conn, tenant, agent_id)
    if team_id is not None:
        raise FailedPreconditionError(
            f"agent '{agent_id}' is used by team '{team_id}'; remove it from the team first",
            reason=Reason.AGENT_IN_USE,
            metadata={"agent_id": agent_id, "team_id": team_id},
        )
    key = (tenant, agent_id)
    sqlite_usage.forget_rows(conn, tenant, "agent_id = ?", (agent_id,))
    sqlite_journal.forget(conn, tenant, "agent_id = ?", (agent_id,))
    for table in ("messages", "sessions", "runs", "agents"):
        conn.execute(f"DELETE FROM {table} WHERE tenant = ? AND agent_id = ?", key)
    sqlite_usage.add(conn, tenant, "agents", -1)
    conn.execute(
        "UPDATE tenants SET default_agent_id = NULL WHERE tenant = ? AND default_agent_id = ?",
        key,
    )


def set_default_agent(conn: sqlite3.Connection, tenant: str, agent_id: str) -> Agent:
    """Make an existing agent the default of its tenant."""
    require("agent", agent_id, agent_row(conn, tenant, agent_id))
    _set_default(conn, tenant, agent_id)
    return require("agent", agent_id, agent_row(conn, tenant, agent_id))


def _set_default(conn: sqlite3.Connection, tenant: str, agent_id: str) -> None:
    conn.execute(
        "INSERT INTO tenants(tenant, default_agent_id) VALUES (?, ?) "
        "ON CONFLICT(tenant) DO UPDATE SET default_agent_id = excluded.default_agent_id",
        (tenant, agent_id),
    )
