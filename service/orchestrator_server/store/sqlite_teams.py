"""The team tables of the SQLite store: statements run inside the store's transactions,
and the store's team methods (`SQLiteTeams`), which run them on its writer connection
(writes) or read connection (reads).

Kept apart from `sqlite.py` so that each module stays about one kind of row.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any, Protocol, TypeVar

from ..core.quotas import StorageQuotas
from ..core.store_port import MissingAgentsError, already_exists, require
from ..core.types import Team, TeamSpec
from . import sqlite_usage
from .sqlite_rows import Row

TEAM_COLUMNS = "team_id, spec, create_time, update_time, revision"
R = TypeVar("R")


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


class _Host(Protocol):
    """What the team methods use of the store they are part of."""

    _quotas: StorageQuotas

    async def _write(self, fn: Callable[..., R], *args: Any) -> R: ...

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...


class SQLiteTeams:
    """The team methods of SQLiteStore."""

    async def create_team(
        self: _Host, tenant: str, team_id: str, spec: TeamSpec, *, if_not_exists: bool
    ) -> tuple[Team, bool]:
        """Insert a team whose agents exist, or return the existing one."""
        return await self._write(create_team, tenant, team_id, spec, if_not_exists, self._quotas)

    async def get_team(self: _Host, tenant: str, team_id: str) -> Team | None:
        """One team, or None."""
        rows = self._read(
            f"SELECT {TEAM_COLUMNS} FROM teams WHERE tenant = ? AND team_id = ?",
            (tenant, team_id),
        )
        return team_from_row(rows[0]) if rows else None

    async def list_teams(self: _Host, tenant: str, *, after: str | None, limit: int) -> list[Team]:
        """A page of teams in id order."""
        rows = self._read(
            f"SELECT {TEAM_COLUMNS} FROM teams WHERE tenant = ? AND team_id > ? "
            "ORDER BY team_id LIMIT ?",
            (tenant, after or "", limit),
        )
        return [team_from_row(r) for r in rows]

    async def update_team(
        self: _Host, tenant: str, team_id: str, spec: TeamSpec, *, expected_revision: int | None
    ) -> Team:
        """Replace a team's spec, bumping the revision."""
        return await self._write(update_team, tenant, team_id, spec, expected_revision)

    async def delete_team(
        self: _Host, tenant: str, team_id: str, *, expected_revision: int | None
    ) -> None:
        """Delete a team."""
        await self._write(delete_team, tenant, team_id, expected_revision)
