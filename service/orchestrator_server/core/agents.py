"""Agent management: the registry of agents and the default agent, per tenant."""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Callable, Iterable

from .access import current_caller, may_read_agent, require_visible
from .errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    Reason,
)
from .pagination import PageTokens, scope_of, text_bytes
from .policy import TenantPolicies
from .revisions import parse_etag, update_with_retry
from .store_port import Store, require
from .types import Agent, AgentSpec, MemoryConfig, ModelSpec, NewAgent, Page
from .validation import check_agent_id, check_agent_spec, check_labels

# update_mask paths and the AgentSpec attribute (or ModelSpec/MemoryConfig attribute) each
# one replaces. A parent path ("model") replaces the whole sub-message.
_TOP_LEVEL_PATHS = {
    "system_message",
    "description",
    "model",
    "memory",
    "tools",
    "labels",
    "callable_agents",
    "max_model_calls",
    "access",
}
_MODEL_PATHS = {f"model.{f.name}" for f in dataclasses.fields(ModelSpec)}
_MEMORY_PATHS = {f"memory.{f.name}" for f in dataclasses.fields(MemoryConfig)}
UPDATABLE_PATHS = frozenset(_TOP_LEVEL_PATHS | _MODEL_PATHS | _MEMORY_PATHS)

ToolNameCheck = Callable[[Iterable[str]], list[str]]


def _no_unknown_tools(names: Iterable[str]) -> list[str]:
    return []


def apply_mask(current: AgentSpec, patch: AgentSpec, paths: Iterable[str]) -> AgentSpec:
    """A copy of `current` with the masked fields taken from `patch`."""
    paths = list(paths)
    if not paths:
        raise InvalidArgumentError.for_field(
            "update_mask", "must name at least one field", reason=Reason.INVALID_UPDATE_MASK
        )
    top: dict[str, object] = {}
    model: dict[str, object] = {}
    memory: dict[str, object] = {}
    for path in paths:
        if path not in UPDATABLE_PATHS:
            raise InvalidArgumentError.for_field(
                "update_mask",
                f"'{path[:100]}' is not an updatable field of Agent",
                reason=Reason.INVALID_UPDATE_MASK,
                metadata={"path": path[:100]},
            )
        head, _, tail = path.partition(".")
        if not tail:
            top[head] = getattr(patch, head)
        elif head == "model":
            model[tail] = getattr(patch.model, tail)
        else:
            memory[tail] = getattr(patch.memory, tail)
    updated = dataclasses.replace(current, **top)  # type: ignore[arg-type]
    if model:
        updated = dataclasses.replace(
            updated,
            model=dataclasses.replace(updated.model, **model),  # type: ignore[arg-type]
        )
    if memory:
        updated = dataclasses.replace(
            updated,
            memory=dataclasses.replace(updated.memory, **memory),  # type: ignore[arg-type]
        )
    return updated


def no_default_agent() -> FailedPreconditionError:
    """NO_DEFAULT_AGENT: a turn names no agent and the tenant has none (for the caller)."""
    return FailedPreconditionError(
        "no default agent is set; name an agent or call SetDefaultAgent",
        reason=Reason.NO_DEFAULT_AGENT,
    )


class AgentRegistry:
    """Creates, reads, lists, updates and deletes agents; tracks the default agent."""

    def __init__(
        self,
        store: Store,
        tokens: PageTokens,
        unknown_tools: ToolNameCheck = _no_unknown_tools,
        policy: TenantPolicies | None = None,
    ) -> None:
        self._store = store
        self._tokens = tokens
        self._unknown_tools = unknown_tools
        self._policy = policy or TenantPolicies({})

    def _check_tools(self, spec: AgentSpec, prefix: str) -> None:
        unknown = self._unknown_tools(spec.tools)
        if unknown:
            index = spec.tools.index(unknown[0])
            raise InvalidArgumentError.for_field(
                f"{prefix}.tools[{index}]",
                f"unknown tool '{unknown[0]}' (see ListTools)",
                reason=Reason.UNKNOWN_TOOL,
                metadata={"tool": unknown[0]},
            )

    async def create(
        self,
        tenant: str,
        agent_id: str,
        spec: AgentSpec,
        *,
        set_as_default: bool = False,
        if_not_exists: bool = False,
    ) -> tuple[Agent, bool]:
        """Create an agent; with if_not_exists, return an existing one unchanged."""
        check_agent_id(agent_id, "agent.agent_id")
        check_agent_spec(spec)
        self._check_tools(spec, "agent")
        self._policy.check_agent(tenant, spec, "agent")
        new = NewAgent(agent_id, spec, set_as_default, if_not_exists)
        return await self._store.create_agent(tenant, new)

    async def get(self, tenant: str, agent_id: str) -> Agent:
        """One agent, or AGENT_NOT_FOUND (also for one the caller may not read)."""
        check_agent_id(agent_id)
        return self.found(agent_id, await self._store.get_agent(tenant, agent_id))

    def found(self, agent_id: str, agent: Agent | None) -> Agent:
        """An agent as read by the store (None: not found): AGENT_NOT_FOUND as `get`
        answers it, also for one the caller may not read."""
        return require_visible(require("agent", agent_id, agent))

    async def exists(self, tenant: str, agent_id: str) -> bool:
        """Whether the agent exists (for has_agent)."""
        return await self._store.get_agent(tenant, agent_id) is not None

    async def list(
        self,
        tenant: str,
        *,
        page_size: int = 0,
        page_token: str = "",
        label_filter: dict[str, str] | None = None,
    ) -> Page[Agent]:
        """A page of agents in id order."""
        label_filter = label_filter or {}
        check_labels(label_filter, "label_filter")
        return await self._tokens.fetch_page(
            scope_of("agents", tenant, sorted(label_filter.items())),
            page_size,
            page_token,
            lambda after, limit: self._visible_agents(tenant, after, limit, label_filter),
            lambda a: [a.agent_id],
            lambda a: text_bytes(a.spec.system_message, a.spec.description),
        )

    async def _visible_agents(
        self,
        tenant: str,
        after: builtins.list[str | int | float] | None,
        limit: int,
        labels: dict[str, str],
    ) -> builtins.list[Agent]:
        """Up to `limit` agents the caller may read, in id order after `after`: agents it
        may not read are skipped, reading on until the page is full or none are left (at
        most the tenant's agents, which its quota bounds)."""
        caller = current_caller()
        start = str(after[0]) if after else None
        visible: builtins.list[Agent] = []
        while len(visible) < limit:
            agents = await self._store.list_agents(
                tenant, after=start, limit=limit, label_filter=labels
            )
            visible += [a for a in agents if may_read_agent(caller, a.spec.access)]
            if len(agents) < limit:
                break
            start = agents[-1].agent_id
        return visible[:limit]

    async def update(
        self, tenant: str, agent_id: str, patch: AgentSpec, paths: Iterable[str], etag: str = ""
    ) -> Agent:
        """Apply the masked fields of `patch`; conditional on `etag` when given."""
        check_agent_id(agent_id, "agent.agent_id")
        expected = parse_etag(etag, "agent.etag")
        paths = list(paths)

        async def write(current: Agent, revision: int) -> Agent:
            updated = apply_mask(current.spec, patch, paths)
            check_agent_spec(updated)
            self._check_tools(updated, "agent")
            self._policy.check_agent(tenant, updated, "agent")
            return await self._store.update_agent(
                tenant, agent_id, updated, expected_revision=revision
            )

        return await update_with_retry(
            "agent", agent_id, expected, lambda: self.get(tenant, agent_id), write
        )

    async def delete(self, tenant: str, agent_id: str, etag: str = "") -> None:
        """Delete an agent and its conversations and runs."""
        check_agent_id(agent_id)
        await self._store.delete_agent(tenant, agent_id, expected_revision=parse_etag(etag))

    async def set_default(self, tenant: str, agent_id: str) -> Agent:
        """Make the agent the default agent."""
        check_agent_id(agent_id)
        return await self._store.set_default_agent(tenant, agent_id)

    async def get_default(self, tenant: str) -> Agent:
        """The default agent, or NO_DEFAULT_AGENT."""
        agent_id = await self._store.default_agent_id(tenant)
        agent = await self._store.get_agent(tenant, agent_id) if agent_id else None
        return self.found_default(agent)

    def found_default(self, agent: Agent | None) -> Agent:
        """The default agent as read by the store (None: none), or NO_DEFAULT_AGENT."""
        # A default agent the caller may not read is, for it, no default at all.
        if agent is None or not may_read_agent(current_caller(), agent.spec.access):
            raise no_default_agent()
        return agent
