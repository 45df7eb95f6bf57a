"""The SQL of agents, the default agent and teams in the PostgreSQL store: functions of
a connection inside one of the store's transactions (see postgres.py)."""

from __future__ import annotations

import time
from typing import Any

from ..core.errors import FailedPreconditionError, Reason
from ..core.quotas import StorageQuotas
from ..core.store_port import MissingAgentsError, already_exists, require
from ..core.types import Agent, AgentSpec, NewAgent, Team, TeamSpec
from . import pg_counters, pg_journal
from .agent_cache import AgentCache
from .pg_runs import CHANNEL, Conn, agent_notice
from .sqlite_rows import Row, spec_from_json, spec_to_json
from .sqlite_teams import TEAM_COLUMNS, team_from_row, team_spec_to_json

_SELECT = (
    "SELECT a.agent_id, a.spec, a.create_time, a.update_time, a.revision, t.default_agent_id "
    "FROM agents a LEFT JOIN tenants t ON t.tenant = a.tenant "
)
# The current bookkeeping of an agent, and its spec only when it differs from the
# cached version ($3 revision, $4 update time: a recreated agent restarts at revision 1).
REVISION_CHECKED_READ = (
    "SELECT a.revision, a.create_time, a.update_time, t.default_agent_id, "
    "CASE WHEN a.revision = $3 AND a.update_time = $4 THEN NULL ELSE a.spec END "
    "FROM agents a LEFT JOIN tenants t ON t.tenant = a.tenant "
    "WHERE a.tenant = $1 AND a.agent_id = $2"
)


def checked_agent(cache: AgentCache, key: tuple[str, str], cached: Agent | None, row: Row) -> Agent:
    """The agent of a REVISION_CHECKED_READ row (the cached spec when it came back NULL),
    cached."""
    revision, create_time, update_time, default_id, spec = row
    agent_spec = cached.spec if spec is None and cached is not None else spec_from_json(spec)
    agent_id = key[1]
    agent = Agent(agent_id, agent_spec, create_time, update_time, revision, default_id == agent_id)
    cache.put(key, agent)
    return agent


def agent_from_record(row: Row) -> Agent:
    """An agent from a row of _SELECT."""
    agent_id, spec, create_time, update_time, revision, default_id = row
    return Agent(
        agent_id, spec_from_json(spec), create_time, update_time, revision, default_id == agent_id
    )


async def agent_row(conn: Conn, tenant: str, agent_id: str) -> Agent | None:
    """One agent with its default flag, or None."""
    row = await conn.fetchrow(_SELECT + "WHERE a.tenant = $1 AND a.agent_id = $2", tenant, agent_id)
    return None if row is None else agent_from_record(row)


def list_agents_query(
    tenant: str, after: str | None, limit: int, label_filter: dict[str, str]
) -> tuple[str, list[Any]]:
    """The SELECT of a page of agents in id order carrying every filter label."""
    where = ["a.tenant = $1", "a.agent_id > $2"]
    params: list[Any] = [tenant, after or ""]
    for key, value in sorted(label_filter.items()):
        where.append(f"(a.spec::jsonb -> 'labels' ->> ${len(params) + 1}) = ${len(params) + 2}")
        params.extend((key, value))
    params.append(limit)
    return _SELECT + f"WHERE {' AND '.join(where)} ORDER BY a.agent_id LIMIT ${len(params)}", params


async def create_agent(
    conn: Conn, tenant: str, new: NewAgent, quotas: StorageQuotas
) -> tuple[Agent, bool]:
    """Insert an agent, or return the existing one under if_not_exists; QUOTA_EXCEEDED
    at the tenant's limit."""
    now = time.time()
    inserted = await conn.execute(
        "INSERT INTO agents(tenant, agent_id, spec, create_time, update_time, revision) "
        "VALUES ($1, $2, $3, $4, $4, 1) ON CONFLICT DO NOTHING",
        tenant,
        new.agent_id,
        spec_to_json(new.spec),
        now,
    )
    if inserted == "INSERT 0 0":
        existing = await agent_row(conn, tenant, new.agent_id)
        if existing is not None and new.if_not_exists:
            return existing, False
        raise already_exists("agent", new.agent_id)
    quotas.check_count(tenant, "agents", await pg_counters.usage(conn, tenant, "agents"))
    await pg_counters.add_usage(conn, tenant, "agents", 1)
    if new.set_as_default:
        await _set_default(conn, tenant, new.agent_id)
    return Agent(new.agent_id, new.spec, now, now, 1, is_default=new.set_as_default), True


async def update_agent(
    conn: Conn, tenant: str, agent_id: str, spec: AgentSpec, expected: int | None
) -> Agent:
    """Replace the spec, bumping the revision (checked against `expected`)."""
    # NO KEY UPDATE: turns starting or ending meanwhile (FOR KEY SHARE) need not wait.
    await conn.execute(
        "SELECT 1 FROM agents WHERE tenant = $1 AND agent_id = $2 FOR NO KEY UPDATE",
        tenant,
        agent_id,
    )
    require("agent", agent_id, await agent_row(conn, tenant, agent_id), expected)
    await conn.execute(
        "UPDATE agents SET spec = $3, update_time = $4, revision = revision + 1 "
        "WHERE tenant = $1 AND agent_id = $2",
        tenant,
        agent_id,
        spec_to_json(spec),
        time.time(),
    )
    await agent_changed(conn, tenant, agent_id)
    return require("agent", agent_id, await agent_row(conn, tenant, agent_id))


async def agent_changed(conn: Conn, tenant: str, agent_id: str) -> None:
    """Tell every replica, at commit, to drop its cached copy of the agent: a replica
    guesses turn starts with its cached agents (see turn_guesses)."""
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, agent_notice(tenant, agent_id))


async def delete_agent(conn: Conn, tenant: str, agent_id: str, expected: int | None) -> None:
    """Delete the agent, its messages, sessions and runs; clear it as default."""
    await conn.execute(
        "SELECT 1 FROM agents WHERE tenant = $1 AND agent_id = $2 FOR UPDATE", tenant, agent_id
    )
    require("agent", agent_id, await agent_row(conn, tenant, agent_id), expected)
    team_id = await conn.fetchval(
        "SELECT team_id FROM teams WHERE tenant = $1 AND (spec::jsonb ->> 'coordinator' = $2 "
        "OR spec::jsonb -> 'members' ? $2) ORDER BY team_id LIMIT 1",
        tenant,
        agent_id,
    )
    if team_id is not None:
        raise FailedPreconditionError(
            f"agent '{agent_id}' is used by team '{team_id}'; remove it from the team first",
            reason=Reason.AGENT_IN_USE,
            metadata={"agent_id": agent_id, "team_id": team_id},
        )
    # The usage shard is locked last, as every write of a run does (no lock cycle).
    stored = await pg_counters.stored_bytes(conn, tenant, "agent_id = $2", agent_id)
    await pg_journal.forget_events(conn, tenant, "agent_id = $2", agent_id)
    for table in ("messages", "sessions", "runs", "agents"):
        await conn.execute(
            f"DELETE FROM {table} WHERE tenant = $1 AND agent_id = $2", tenant, agent_id
        )
    await pg_counters.add_usage(conn, tenant, "message_bytes", -stored)
    await pg_counters.add_usage(conn, tenant, "agents", -1)
    await agent_changed(conn, tenant, agent_id)
    await conn.execute(
        "UPDATE tenants SET default_agent_id = NULL WHERE tenant = $1 AND default_agent_id = $2",
        tenant,
        agent_id,
    )


async def set_default_agent(conn: Conn, tenant: str, agent_id: str) -> Agent:
    """Make an existing agent the default of its tenant."""
    require("agent", agent_id, await agent_row(conn, tenant, agent_id))
    await _set_default(conn, tenant, agent_id)
    return require("agent", agent_id, await agent_row(conn, tenant, agent_id))


async def _set_default(conn: Conn, tenant: str, agent_id: str) -> None:
    await conn.execute(
        "INSERT INTO tenants(tenant, default_agent_id) VALUES ($1, $2) "
        "ON CONFLICT (tenant) DO UPDATE SET default_agent_id = excluded.default_agent_id",
        tenant,
        agent_id,
    )


# -- teams ------------------------------------------------------------------------------


async def _team_row(conn: Conn, tenant: str, team_id: str, *, lock: bool = False) -> Team | None:
    row = await conn.fetchrow(
        f"SELECT {TEAM_COLUMNS} FROM teams WHERE tenant = $1 AND team_id = $2"
        + (" FOR UPDATE" if lock else ""),
        tenant,
        team_id,
    )
    return None if row is None else team_from_row(row)


async def _check_agents_exist(conn: Conn, tenant: str, spec: TeamSpec) -> None:
    wanted = [*spec.members, *([spec.coordinator] if spec.coordinator else [])]
    # FOR SHARE: an agent cannot be deleted until this team's write commits, and its
    # delete then sees the team (or this write sees the agent gone).
    rows = await conn.fetch(
        "SELECT agent_id FROM agents WHERE tenant = $1 AND agent_id = ANY($2::text[]) FOR SHARE",
        tenant,
        wanted,
    )
    found = {r[0] for r in rows}
    missing = [a for a in wanted if a not in found]
    if missing:
        raise MissingAgentsError(missing)


async def create_team(
    conn: Conn,
    tenant: str,
    team_id: str,
    spec: TeamSpec,
    if_not_exists: bool,
    quotas: StorageQuotas,
) -> tuple[Team, bool]:
    """Insert a team whose agents exist, or return the existing one; QUOTA_EXCEEDED at
    the tenant's limit."""
    existing = await _team_row(conn, tenant, team_id)
    if existing is not None:
        if if_not_exists:
            return existing, False
        raise already_exists("team", team_id)
    quotas.check_count(tenant, "teams", await pg_counters.usage(conn, tenant, "teams"))
    await _check_agents_exist(conn, tenant, spec)
    now = time.time()
    inserted = await conn.execute(
        "INSERT INTO teams(tenant, team_id, spec, create_time, update_time, revision) "
        "VALUES ($1, $2, $3, $4, $4, 1) ON CONFLICT DO NOTHING",
        tenant,
        team_id,
        team_spec_to_json(spec),
        now,
    )
    if inserted == "INSERT 0 0":
        raise already_exists("team", team_id)
    await pg_counters.add_usage(conn, tenant, "teams", 1)
    return Team(team_id, spec, now, now, 1), True


async def update_team(
    conn: Conn, tenant: str, team_id: str, spec: TeamSpec, expected: int | None
) -> Team:
    """Replace a team's spec (its agents must exist), bumping the revision."""
    current = require("team", team_id, await _team_row(conn, tenant, team_id, lock=True), expected)
    await _check_agents_exist(conn, tenant, spec)
    now = time.time()
    await conn.execute(
        "UPDATE teams SET spec = $3, update_time = $4, revision = revision + 1 "
        "WHERE tenant = $1 AND team_id = $2",
        tenant,
        team_id,
        team_spec_to_json(spec),
        now,
    )
    return Team(team_id, spec, current.create_time, now, current.revision + 1)


async def delete_team(conn: Conn, tenant: str, team_id: str, expected: int | None) -> None:
    """Delete a team."""
    require("team", team_id, await _team_row(conn, tenant, team_id, lock=True), expected)
    await conn.execute("DELETE FROM teams WHERE tenant = $1 AND team_id = $2", tenant, team_id)
    await pg_counters.add_usage(conn, tenant, "teams", -1)
