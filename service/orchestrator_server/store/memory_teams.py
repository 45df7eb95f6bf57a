"""The teams of the in-memory store: the team methods of InMemoryStore, on the teams it
keeps with each tenant's agents."""

from __future__ import annotations

import dataclasses
import time
from typing import Protocol

from ..core.quotas import StorageQuotas
from ..core.store_port import MissingAgentsError, already_exists, require
from ..core.types import Agent, Team, TeamSpec


class _TenantRows(Protocol):
    agents: dict[str, Agent]
    teams: dict[str, Team]


class _Host(Protocol):
    """What the team methods use of the store they are part of."""

    _quotas: StorageQuotas

    def _tenant(self, tenant: str) -> _TenantRows: ...


def agents_of(spec: TeamSpec) -> list[str]:
    """The members and the coordinator a team names."""
    return [*spec.members, *([spec.coordinator] if spec.coordinator else [])]


def _check_agents_exist(host: _Host, tenant: str, spec: TeamSpec) -> None:
    missing = [a for a in agents_of(spec) if a not in host._tenant(tenant).agents]
    if missing:
        raise MissingAgentsError(missing)


class TeamsInMemory:
    """The team methods of InMemoryStore."""

    async def create_team(
        self: _Host, tenant: str, team_id: str, spec: TeamSpec, *, if_not_exists: bool
    ) -> tuple[Team, bool]:
        """Insert a team whose agents exist, or return the existing one."""
        teams = self._tenant(tenant).teams
        existing = teams.get(team_id)
        if existing is not None:
            if if_not_exists:
                return existing, False
            raise already_exists("team", team_id)
        self._quotas.check_count(tenant, "teams", len(teams))
        _check_agents_exist(self, tenant, spec)
        now = time.time()
        team = teams[team_id] = Team(team_id, spec, now, now, 1)
        return team, True

    async def get_team(self: _Host, tenant: str, team_id: str) -> Team | None:
        """One team, or None."""
        return self._tenant(tenant).teams.get(team_id)

    async def list_teams(self: _Host, tenant: str, *, after: str | None, limit: int) -> list[Team]:
        """Teams in id order after `after`."""
        teams = self._tenant(tenant).teams
        return [teams[t] for t in sorted(teams) if after is None or t > after][:limit]

    async def update_team(
        self: _Host, tenant: str, team_id: str, spec: TeamSpec, *, expected_revision: int | None
    ) -> Team:
        """Replace a team's spec (its agents must exist), bumping the revision."""
        teams = self._tenant(tenant).teams
        current = require("team", team_id, teams.get(team_id), expected_revision)
        _check_agents_exist(self, tenant, spec)
        updated = dataclasses.replace(
            current, spec=spec, update_time=time.time(), revision=current.revision + 1
        )
        teams[team_id] = updated
        return updated

    async def delete_team(
        self: _Host, tenant: str, team_id: str, *, expected_revision: int | None
    ) -> None:
        """Delete a team."""
        teams = self._tenant(tenant).teams
        require("team", team_id, teams.get(team_id), expected_revision)
        del teams[team_id]
