"""The team tables of the SQLite store: statements run inside the store's transactions.

Kept apart from `sqlite.py` so that each module stays about one kind of row; the store's
methods call these on its writer connection (writes) or read connection (reads).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict

from ..core.quotas import StorageQuotas
from ..core.store_port import MissingAgentsError, already_exists, require
from ..core.types import Team, TeamSpec
from . import sqlite_usage
from .sqlite_rows import Row

TEAM_COLUMNS = "team_id, spec, create_time, update_time, revision"


def team_spec_to_json(spec: TeamSpec) -> str:
    """Serialise a team spec for the `spec` column."""
    return json.dumps(asdict(spec), separators=(",", ":"), sort_keys=True)


def team_spec_from_json(text: str) -> TeamSpec:
    """Parse the `spec` column; unknown keys from newer versions are ignored."""
    data = json.loads(text)
    return TeamSpec(
        members=tuple(data.get("members") or ()),
        description=data.get("description", ""),
        coordinator=data.get("coordinator", ""),
        member_template=data.get("member_template", ""),
        synthesis_template=data.get("synthesis_template", ""),
        synthesis_item_template=data.get("synthesis_item_template", ""),
        max_concurrency=data.get("max_concurrency", 0),
        member_timeout_seconds=data.get("member_timeout_seconds", 0.0),
    )


def team_from_row(row: Row) -> Team:
    """A Team from a TEAM_COLUMNS row."""
    team_id, spec, create_time, update_time, revision = row
    return Team(team_id, team_spec_from_json(spec), create_time, update_time, revision)


def _team_row(conn: sqlite3.Connection, tenant: str, team_id: str) -> Team | None:
    row = conn.execute(
        f"SELECT {TEAM_COLUMNS} FROM teams WHERE tenant = ? AND team_id = ?", (tenant, team_id)
    ).fetchone()
    return team_from_row(row) if row else None


def _check_agents_exist(conn: sqlite3.Connection, tenant: str, spec: TeamSpec) -> None:
    wanted = [*spec.members, *([spec.coordinator] if spec.coordinator else [])]
    marks = ", ".join("?" for _ in wanted)
    found = {
        r[0]
        for r in conn.execute(
            f"SELECT agent_id FROM agents WHERE tenant = ? AND agent_id IN ({marks})",
            (tenant, *wanted),
        )
    }
    missing = [a for a in wanted if a not in found]
    if missing:
        raise MissingAgentsError(missing)


def create_team(
    conn: sqlite3.Connection,
    tenant: str,
    team_id: str,
    spec: TeamSpec,
    if_not_exists: bool,
    quotas: StorageQuotas,
) -> tuple[Team, bool]:
    """Insert a team whose agents all exist, or return the existing one; QUOTA_EXCEEDED
    if the tenant has as many teams as it may."""
    existing = _team_row(conn, tenant, team_id)
    if existing is not None:
        if if_not_exists:
            return existing, False
        raise already_exists("team", team_id)
    sqlite_usage.take_one(conn, quotas, tenant, "teams")
    _check_agents_exist(conn, tenant, spec)
    now = time.time()
    conn.execute(
        "INSERT INTO teams(tenant, team_id, spec, create_time, update_time, revision) "
        "VALUES (?, ?, ?, ?, ?, 1)",
        (tenant, team_id, team_spec_to_json(spec), now, now),
    )
    return Team(team_id, spec, now, now, 1), True


def _checked_team(
    conn: sqlite3.Connection, tenant: str, team_id: str, expected: int | None
) -> Team:
    return require("team", team_id, _team_row(conn, tenant, team_id), expected)


def update_team(
    conn: sqlite3.Connection, tenant: str, team_id: str, spec: TeamSpec, expected: int | None
) -> Team:
    """Replace the spec of a team (its agents must exist), bumping the revision."""
    current = _checked_team(conn, tenant, team_id, expected)
    _check_agents_exist(conn, tenant, spec)
    now = time.time()
    conn.execute(
        "UPDATE teams SET spec = ?, update_time = ?, revision = revision + 1 "
        "WHERE tenant = ? AND team_id = ?",
        (team_spec_to_json(spec), now, tenant, team_id),
    )
    return Team(team_id, spec, current.create_time, now, current.revision + 1)


def delete_team(conn: sqlite3.Connection, tenant: str, team_id: str, expected: int | None) -> None:
    """Delete a team."""
    _checked_team(conn, tenant, team_id, expected)
    conn.execute("DELETE FROM teams WHERE tenant = ? AND team_id = ?", (tenant, team_id))
    sqlite_usage.add(conn, tenant, "teams", -1)


def team_using(conn: sqlite3.Connection, tenant: str, agent_id: str) -> str | None:
    """The first team (in id order) naming the agent as member or coordinator."""
    row = conn.execute(
        "SELECT t.team_id FROM teams t WHERE t.tenant = ? AND ("
        "json_extract(t.spec, '$.coordinator') = ? OR EXISTS ("
        "SELECT 1 FROM json_each(t.spec, '$.members') m WHERE m.value = ?)) "
        "ORDER BY t.team_id LIMIT 1",
        (tenant, agent_id, agent_id),
    ).fetchone()
    return str(row[0]) if row else None
