"""Teams in the PostgreSQL store (a part of PostgresStore)."""

from __future__ import annotations

from ..core.quotas import StorageQuotas
from ..core.types import Team, TeamSpec
from . import pg_agents
from .pg_plumbing import PostgresPlumbing
from .sqlite_teams import TEAM_COLUMNS, team_from_row


class PostgresTeams(PostgresPlumbing):
    """Teams: their rows, with the agents they name checked in the same transaction."""

    _quotas: StorageQuotas

    async def create_team(
        self, tenant: str, team_id: str, spec: TeamSpec, *, if_not_exists: bool
    ) -> tuple[Team, bool]:
        """Insert a team whose agents exist, or return the existing one."""
        return await self.transact(
            pg_agents.create_team, tenant, team_id, spec, if_not_exists, self._quotas
        )

    async def get_team(self, tenant: str, team_id: str) -> Team | None:
        """One team, or None."""
        row = await self.fetchrow(
            f"SELECT {TEAM_COLUMNS} FROM teams WHERE tenant = $1 AND team_id = $2",
            tenant,
            team_id,
        )
        return None if row is None else team_from_row(row)

    async def list_teams(self, tenant: str, *, after: str | None, limit: int) -> list[Team]:
        """A page of teams in id order."""
        rows = await self.fetch(
            f"SELECT {TEAM_COLUMNS} FROM teams WHERE tenant = $1 AND team_id > $2 "
            "ORDER BY team_id LIMIT $3",
            tenant,
            after or "",
            limit,
        )
        return [team_from_row(r) for r in rows]

    async def update_team(
        self, tenant: str, team_id: str, spec: TeamSpec, *, expected_revision: int | None
    ) -> Team:
        """Replace a team's spec, bumping the revision."""
        return await self.transact(pg_agents.update_team, tenant, team_id, spec, expected_revision)

    async def delete_team(
        self, tenant: str, team_id: str, *, expected_revision: int | None
    ) -> None:
        """Delete a team."""
        await self.transact(pg_agents.delete_team, tenant, team_id, expected_revision)
