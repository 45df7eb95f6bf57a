"""A bounded LRU cache of agents by (tenant, agent_id)."""

from __future__ import annotations

from collections import OrderedDict

from ..core.types import Agent

AgentKey = tuple[str, str]


class AgentCache:
    """Least-recently-used agents, at most `max_entries` of them."""

    def __init__(self, max_entries: int) -> None:
        self._entries: OrderedDict[AgentKey, Agent] = OrderedDict()
        self._max = max_entries

    def get(self, key: AgentKey) -> Agent | None:
        """The cached agent, marking it recently used."""
        agent = self._entries.get(key)
        if agent is not None:
            self._entries.move_to_end(key)
        return agent

    def put(self, key: AgentKey, agent: Agent) -> None:
        """Remember an agent, evicting the least recently used beyond the bound."""
        self._entries[key] = agent
        self._entries.move_to_end(key)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def forget(self, key: AgentKey) -> None:
        """Drop one agent (after it was written)."""
        self._entries.pop(key, None)

    def forget_tenant(self, tenant: str) -> None:
        """Drop a tenant's agents (after its default agent changed)."""
        for key in [k for k in self._entries if k[0] == tenant]:
            del self._entries[key]
