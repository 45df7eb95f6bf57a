"""Who is calling and what they may do: principals, roles, the caller of a call, and the
access rules of agents and sessions.

The API layer authenticates a call, turns the principal into a `Caller` for one tenant
and sets it for the call (`acting_as`); the core reads it with `current_caller()` where a
rule depends on who asks (an agent's access list, a session's owner). Tasks a call starts
inherit it (asyncio copies context variables into new tasks), so a turn, its child runs
and a team's members act for the caller that started them. Work with no call behind it
(start-up, tests of the core) acts as `SYSTEM`, which may do everything.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from .errors import InvalidArgumentError, NotFoundError, PermissionDeniedError, Reason
from .store_port import not_found
from .types import Agent, AgentAccess

# A membership in this tenant applies to every tenant (an operator's identity).
ANY_TENANT = "*"
# The principal of calls to a server without authentication (on loopback only).
ANONYMOUS = "anonymous"


class AccessRole(enum.StrEnum):
    """A principal's role in a tenant; each includes the ones below it."""

    ADMIN = "admin"
    EDITOR = "editor"
    RUNNER = "runner"
    VIEWER = "viewer"


class Permission(enum.StrEnum):
    """What an RPC needs (the table from RPC to permission is `api/permissions.py`)."""

    # Read agents, teams and tools; read one's own sessions and runs.
    READ = "read"
    # Start turns, pipelines and team runs; cancel one's runs; delete one's sessions.
    RUN = "run"
    # Create, change and delete agents and teams; set the default agent.
    WRITE = "write"
    # API keys and the audit trail; every session and run of the tenant.
    ADMINISTER = "administer"


ROLE_PERMISSIONS: Mapping[AccessRole, frozenset[Permission]] = {
    AccessRole.VIEWER: frozenset({Permission.READ}),
    AccessRole.RUNNER: frozenset({Permission.READ, Permission.RUN}),
    AccessRole.EDITOR: frozenset({Permission.READ, Permission.RUN, Permission.WRITE}),
    AccessRole.ADMIN: frozenset(Permission),
}


def parse_roles(names: object, where: str) -> frozenset[AccessRole]:
    """Roles from their names; INVALID_ARGUMENT naming `where` for an unknown one."""
    if not isinstance(names, list | tuple | frozenset | set) or not names:
        raise InvalidArgumentError.for_field(where, "name at least one role")
    roles = set()
    for name in names:
        try:
            roles.add(AccessRole(str(name)))
        except ValueError:
            raise InvalidArgumentError.for_field(
                where, f"'{str(name)[:40]}' is not a role (admin, editor, runner, viewer)"
            ) from None
    return frozenset(roles)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated identity: its id, its roles per tenant and its groups."""

    principal_id: str
    memberships: Mapping[str, frozenset[AccessRole]]
    groups: frozenset[str] = frozenset()
    # How it was authenticated: mtls, jwt, api_key, proxy or none.
    authentication: str = "none"

    def caller_for(self, named_tenant: str | None, default_tenant: str, peer: str = "") -> Caller:
        """The caller (seen from `peer`) acting in the tenant the call named (or, naming
        none, the one tenant the principal belongs to). TENANT_ACCESS_DENIED for a tenant
        it does not belong to, and for a principal of several tenants that named none."""
        tenant = named_tenant or self._only_tenant(default_tenant)
        roles = self.memberships.get(tenant) or self.memberships.get(ANY_TENANT)
        if not roles:
            raise PermissionDeniedError(
                f"the caller is not a member of tenant '{tenant}'",
                reason=Reason.TENANT_ACCESS_DENIED,
                metadata={"tenant": tenant},
            )
        return Caller(self.principal_id, tenant, roles, self.groups, self.authentication, peer)

    def _only_tenant(self, default_tenant: str) -> str:
        tenants = [t for t in self.memberships if t != ANY_TENANT]
        if len(tenants) == 1:
            return tenants[0]
        if not tenants:
            return default_tenant
        raise PermissionDeniedError(
            "the caller belongs to several tenants: name one in x-tenant-id",
            reason=Reason.TENANT_ACCESS_DENIED,
            metadata={"tenant": ""},
        )


@dataclass(frozen=True, slots=True)
class Caller:
    """A principal acting in one tenant, with its roles there."""

    principal: str
    tenant: str
    roles: frozenset[AccessRole]
    groups: frozenset[str] = field(default_factory=frozenset)
    authentication: str = "none"
    # The network address of the call (for the audit trail).
    peer: str = ""

    def may(self, permission: Permission) -> bool:
        """Whether one of the caller's roles grants `permission`."""
        return any(permission in ROLE_PERMISSIONS[role] for role in self.roles)

    @property
    def sees_every_session(self) -> bool:
        """Admins see (and may act on) every session and run of their tenant."""
        return self.may(Permission.ADMINISTER)

    def require(self, permission: Permission) -> None:
        """PERMISSION_DENIED unless the caller's roles grant `permission`."""
        if not self.may(permission):
            raise PermissionDeniedError(
                f"the caller's roles in tenant '{self.tenant}' do not allow this "
                f"(it needs the '{permission}' permission)",
                metadata={"permission": permission.value},
            )

    def named_by(self, entries: tuple[str, ...]) -> bool:
        """Whether an access list entry (principal:, group:, role:) names the caller."""
        for entry in entries:
            kind, _, value = entry.partition(":")
            if kind == "principal" and value == self.principal:
                return True
            if kind == "group" and value in self.groups:
                return True
            if kind == "role" and value in self.roles:
                return True
        return False


SYSTEM = Caller("system", "", frozenset({AccessRole.ADMIN}))
_CURRENT: ContextVar[Caller] = ContextVar("orchestrator_caller", default=SYSTEM)


def current_caller() -> Caller:
    """The caller of the call being served (SYSTEM outside of one)."""
    return _CURRENT.get()


def bind_caller(caller: Caller) -> None:
    """Set the caller for the rest of the current task: the API layer does this at the
    start of each call, which runs in a task of its own."""
    _CURRENT.set(caller)


@contextmanager
def acting_as(caller: Caller) -> Iterator[Caller]:
    """Serve the enclosed work for `caller` (and the tasks it starts)."""
    token = _CURRENT.set(caller)
    try:
        yield caller
    finally:
        _CURRENT.reset(token)


def _trusted_with_agents(caller: Caller) -> bool:
    # Editors and admins could rewrite the access list anyway.
    return caller.may(Permission.WRITE)


def may_read_agent(caller: Caller, access: AgentAccess) -> bool:
    """Whether the caller sees the agent at all (else it is NOT_FOUND for it)."""
    if _trusted_with_agents(caller) or not (access.readers or access.runners):
        return True
    return caller.named_by(access.readers) or caller.named_by(access.runners)


def may_run_agent(caller: Caller, access: AgentAccess) -> bool:
    """Whether the caller may start turns of the agent."""
    if not caller.may(Permission.RUN):
        return False
    return _trusted_with_agents(caller) or not access.runners or caller.named_by(access.runners)


def require_visible(agent: Agent) -> Agent:
    """The agent, or AGENT_NOT_FOUND when the current caller may not read it."""
    if not may_read_agent(current_caller(), agent.spec.access):
        # The same answer as for an agent that does not exist.
        raise not_found("agent", agent.agent_id)
    return agent


def require_runnable(agent: Agent) -> Agent:
    """The agent, if the current caller may run it: AGENT_NOT_FOUND when it may not even
    read it, PERMISSION_DENIED when it may read but not run it."""
    require_visible(agent)
    caller = current_caller()
    if not may_run_agent(caller, agent.spec.access):
        raise PermissionDeniedError(
            f"the caller may not run agent '{agent.agent_id}'",
            metadata={"agent_id": agent.agent_id},
        )
    return agent


def session_owner_for_new_turn(existing_owner: str | None) -> str:
    """The owner a new turn's run is recorded for: the session's owner when the current
    caller may use it, the caller itself for a new session. SESSION_NOT_FOUND when the
    session belongs to another principal and the caller is not an admin."""
    caller = current_caller()
    if existing_owner is None or existing_owner == caller.principal:
        return caller.principal
    if caller.sees_every_session:
        return existing_owner
    raise session_not_found()


def session_not_found() -> NotFoundError:
    """The answer for a session that does not exist or belongs to someone else."""
    return NotFoundError("session not found", reason=Reason.SESSION_NOT_FOUND)


def visible_owner() -> str | None:
    """The owner whose sessions and runs the current caller sees; None for all."""
    caller = current_caller()
    return None if caller.sees_every_session else caller.principal


def sees_owner(owner: str) -> bool:
    """Whether the current caller sees the sessions and runs of `owner`."""
    return visible_owner() in (None, owner)
