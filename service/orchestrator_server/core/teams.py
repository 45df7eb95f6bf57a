"""Team management: the registry of teams per tenant, with their validation rules.

Defaults (templates, concurrency, timeout) are resolved when a team is written, so a
stored team shows the values its runs use. That members and the coordinator exist is
checked by the store in the same transaction that writes the team, and the store refuses
to delete an agent a team names (AGENT_IN_USE): a check here, before the write, could
race with a concurrent DeleteAgent and leave a team naming a deleted agent.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

from .errors import InvalidArgumentError, Reason
from .pagination import PageTokens, scope_of
from .revisions import parse_etag, update_with_retry
from .store_port import MissingAgentsError, Store, require
from .templates import parse_template
from .types import Page, Team, TeamSpec
from .validation import MAX_DESCRIPTION_CHARS, check_agent_id, check_session_id

DEFAULT_MEMBER_TEMPLATE = "Task for {agent}: {task}"
DEFAULT_SYNTHESIS_TEMPLATE = "Synthesize the following team outputs for task '{task}':\n\n{results}"
DEFAULT_SYNTHESIS_ITEM_TEMPLATE = "=== {agent} ===\n{output}\n\n"
DEFAULT_MAX_CONCURRENCY = 8
DEFAULT_MEMBER_TIMEOUT_SECONDS = 300.0
MAX_MEMBERS = 64
MAX_CONCURRENCY = 64
MAX_MEMBER_TIMEOUT_SECONDS = 3600.0
MEMBER_PLACEHOLDERS = frozenset({"agent", "task"})
SYNTHESIS_PLACEHOLDERS = frozenset({"task", "results"})
SYNTHESIS_ITEM_PLACEHOLDERS = frozenset({"agent", "output"})
UPDATABLE_PATHS = frozenset(f.name for f in dataclasses.fields(TeamSpec))


def check_team_id(team_id: str, field: str = "team_id") -> str:
    """Team ids follow the agent id rules."""
    if not team_id:
        raise InvalidArgumentError.for_field(field, "is required")
    return check_session_id(team_id, field)


def resolve_team_spec(spec: TeamSpec, prefix: str = "team") -> TeamSpec:
    """Validate a spec and fill in the defaults of its empty fields."""
    if len(spec.description) > MAX_DESCRIPTION_CHARS:
        raise InvalidArgumentError.for_field(
            f"{prefix}.description", f"must be at most {MAX_DESCRIPTION_CHARS} characters"
        )
    if not spec.members:
        raise InvalidArgumentError.for_field(f"{prefix}.members", "needs at least one agent")
    if len(spec.members) > MAX_MEMBERS:
        raise InvalidArgumentError.for_field(f"{prefix}.members", f"at most {MAX_MEMBERS} agents")
    seen: set[str] = set()
    for i, member in enumerate(spec.members):
        check_agent_id(member, f"{prefix}.members[{i}]")
        if member in seen:
            raise InvalidArgumentError.for_field(
                f"{prefix}.members[{i}]", f"'{member}' is listed twice"
            )
        seen.add(member)
    if spec.coordinator:
        check_agent_id(spec.coordinator, f"{prefix}.coordinator")
    resolved = dataclasses.replace(
        spec,
        member_template=spec.member_template or DEFAULT_MEMBER_TEMPLATE,
        synthesis_template=spec.synthesis_template or DEFAULT_SYNTHESIS_TEMPLATE,
        synthesis_item_template=spec.synthesis_item_template or DEFAULT_SYNTHESIS_ITEM_TEMPLATE,
        max_concurrency=spec.max_concurrency or DEFAULT_MAX_CONCURRENCY,
        member_timeout_seconds=spec.member_timeout_seconds or DEFAULT_MEMBER_TIMEOUT_SECONDS,
    )
    parse_template(resolved.member_template, MEMBER_PLACEHOLDERS, f"{prefix}.member_template")
    parse_template(
        resolved.synthesis_template, SYNTHESIS_PLACEHOLDERS, f"{prefix}.synthesis_template"
    )
    parse_template(
        resolved.synthesis_item_template,
        SYNTHESIS_ITEM_PLACEHOLDERS,
        f"{prefix}.synthesis_item_template",
    )
    if not 1 <= resolved.max_concurrency <= MAX_CONCURRENCY:
        raise InvalidArgumentError.for_field(
            f"{prefix}.max_concurrency", f"must be between 0 and {MAX_CONCURRENCY}"
        )
    timeout = resolved.member_timeout_seconds
    if not math.isfinite(timeout) or not 0 < timeout <= MAX_MEMBER_TIMEOUT_SECONDS:
        raise InvalidArgumentError.for_field(
            f"{prefix}.member_timeout_seconds",
            f"must be between 0 and {MAX_MEMBER_TIMEOUT_SECONDS:.0f}",
        )
    return resolved


def _unknown_agent(spec: TeamSpec, missing: Iterable[str], prefix: str) -> InvalidArgumentError:
    """The field violation for the first agent a team names that does not exist."""
    absent = set(missing)
    for i, member in enumerate(spec.members):
        if member in absent:
            field, agent_id = f"{prefix}.members[{i}]", member
            break
    else:
        field, agent_id = f"{prefix}.coordinator", spec.coordinator
    return InvalidArgumentError.for_field(
        field, f"agent '{agent_id}' does not exist", metadata={"agent_id": agent_id}
    )


def apply_team_mask(current: TeamSpec, patch: TeamSpec, paths: Iterable[str]) -> TeamSpec:
    """A copy of `current` with the masked fields taken from `patch`."""
    paths = list(paths)
    if not paths:
        raise InvalidArgumentError.for_field(
            "update_mask", "must name at least one field", reason=Reason.INVALID_UPDATE_MASK
        )
    changes: dict[str, object] = {}
    for path in paths:
        if path not in UPDATABLE_PATHS:
            raise InvalidArgumentError.for_field(
                "update_mask",
                f"'{path[:100]}' is not an updatable field of Team",
                reason=Reason.INVALID_UPDATE_MASK,
                metadata={"path": path[:100]},
            )
        changes[path] = getattr(patch, path)
    return dataclasses.replace(current, **changes)  # type: ignore[arg-type]


class TeamRegistry:
    """Creates, reads, lists, updates and deletes teams."""

    def __init__(self, store: Store, tokens: PageTokens) -> None:
        self._store = store
        self._tokens = tokens

    async def create(
        self, tenant: str, team_id: str, spec: TeamSpec, *, if_not_exists: bool = False
    ) -> tuple[Team, bool]:
        """Create a team; with if_not_exists, return an existing one unchanged."""
        check_team_id(team_id, "team.team_id")
        resolved = resolve_team_spec(spec)
        try:
            return await self._store.create_team(
                tenant, team_id, resolved, if_not_exists=if_not_exists
            )
        except MissingAgentsError as missing:
            raise _unknown_agent(resolved, missing.agent_ids, "team") from None

    async def get(self, tenant: str, team_id: str) -> Team:
        """One team, or TEAM_NOT_FOUND."""
        check_team_id(team_id)
        found = await self._store.get_team(tenant, team_id)
        return require("team", team_id, found)

    async def list(self, tenant: str, *, page_size: int = 0, page_token: str = "") -> Page[Team]:
        """A page of teams in id order."""
        return await self._tokens.fetch_page(
            scope_of("teams", tenant),
            page_size,
            page_token,
            lambda after, limit: self._store.list_teams(
                tenant, after=str(after[0]) if after else None, limit=limit
            ),
            lambda t: [t.team_id],
        )

    async def update(
        self, tenant: str, team_id: str, patch: TeamSpec, paths: Iterable[str], etag: str = ""
    ) -> Team:
        """Apply the masked fields of `patch`; conditional on `etag` when given."""
        check_team_id(team_id, "team.team_id")
        expected = parse_etag(etag, "team.etag")
        paths = list(paths)

        async def write(current: Team, revision: int) -> Team:
            # Masked fields left empty return to their defaults, hence the merge onto the
            # stored (resolved) spec is resolved again.
            updated = resolve_team_spec(apply_team_mask(current.spec, patch, paths))
            try:
                return await self._store.update_team(
                    tenant, team_id, updated, expected_revision=revision
                )
            except MissingAgentsError as missing:
                raise _unknown_agent(updated, missing.agent_ids, "team") from None

        return await update_with_retry(
            "team", team_id, expected, lambda: self.get(tenant, team_id), write
        )

    async def delete(self, tenant: str, team_id: str, etag: str = "") -> None:
        """Delete a team (its past runs stay)."""
        check_team_id(team_id)
        await self._store.delete_team(tenant, team_id, expected_revision=parse_etag(etag))
