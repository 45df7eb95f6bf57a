"""The agent calls of AsyncOrchestrator: create, read, list, update, delete, the default."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Unpack

from . import _convert, _updates
from . import types as t
from ._connection import Connection
from ._updates import UNSET, _Unset
from .errors import AgentNotFound, InvalidAgentId
from .v1 import agent_pb2
from .v1 import orchestrator_service_pb2 as pb


class AgentCalls(Connection):
    """The calls about agents (see AsyncOrchestrator)."""

    async def create_agent(
        self, agent_id: str, *, if_not_exists: bool = False, **settings: Unpack[t.AgentSettings]
    ) -> t.Agent:
        """Create an agent (AgentAlreadyExists if the id is taken, unless `if_not_exists`).

        `settings` are the keywords of `AgentSettings`: `model` (a Model, a bare model
        name of the server's default provider, or None for the server's defaults),
        `system_message`, `description`, `tools` (server tool names), `buffer_memory`,
        `labels`, `callable_agents`, `max_model_calls` and `set_as_default`.

        The agent's `created` says whether this call created it: False when
        `if_not_exists` returned an existing agent, unchanged and not made the default
        (and also when a retried call's lost first attempt had created it).
        """
        request = pb.CreateAgentRequest(
            agent=_convert.agent_to_pb(agent_id, settings),
            set_as_default=settings.get("set_as_default", False),
            if_not_exists=if_not_exists,
        )
        # Only get-or-create is idempotent, so only it is retried after UNAVAILABLE.
        call = self._unary_retrying if if_not_exists else self._unary
        response = await call(self._stub.CreateAgent, request)
        return _convert.agent_from_pb(response.agent, created=response.created)

    async def get_or_create_agent(
        self, agent_id: str, **settings: Unpack[t.AgentSettings]
    ) -> t.Agent:
        """The agent with this id, created with these settings if it does not exist yet.

        An existing agent is returned unchanged (and `set_as_default` is not applied);
        the agent's `created` says which happened.
        """
        return await self.create_agent(agent_id, if_not_exists=True, **settings)

    async def get_agent(self, agent_id: str) -> t.Agent:
        """One agent (AgentNotFound if there is none)."""
        response = await self._unary(self._stub.GetAgent, pb.GetAgentRequest(agent_id=agent_id))
        return _convert.agent_from_pb(response.agent)

    async def has_agent(self, agent_id: str) -> bool:
        """Whether an agent with this id exists (an id no agent could have is False)."""
        return await self._exists(self.get_agent(agent_id), AgentNotFound, InvalidAgentId)

    async def iter_agents(
        self, *, labels: Mapping[str, str] | None = None, page_size: int = 0
    ) -> AsyncIterator[t.Agent]:
        """Every agent in id order (only those carrying all `labels`), page by page."""
        request = pb.ListAgentsRequest(page_size=page_size, label_filter=dict(labels or {}))
        pages = self._paginate(
            self._stub.ListAgents, request, lambda r: map(_convert.agent_from_pb, r.agents)
        )
        async for agent in pages:
            yield agent

    async def list_agents(self, *, labels: Mapping[str, str] | None = None) -> list[str]:
        """The ids of all agents, in id order (like the original `list_agents`)."""
        return [agent.agent_id async for agent in self.iter_agents(labels=labels)]

    async def update_agent(
        self,
        agent_id: str,
        *,
        etag: str | None = None,
        system_message: str | _Unset = UNSET,
        description: str | _Unset = UNSET,
        model: t.Model | str | _Unset = UNSET,
        buffer_memory: t.BufferMemory | _Unset = UNSET,
        tools: Iterable[str | t.ServerTool] | _Unset = UNSET,
        labels: Mapping[str, str] | _Unset = UNSET,
        callable_agents: Iterable[str] | _Unset = UNSET,
        max_model_calls: int | _Unset = UNSET,
    ) -> t.Agent:
        """Change the fields passed, and only those; returns the updated agent.

        A Model replaces the whole model; a str changes only the model name. With `etag`
        the update applies only to that revision (EtagMismatch otherwise).
        """
        request = pb.UpdateAgentRequest(agent=agent_pb2.Agent(agent_id=agent_id, etag=etag or ""))
        _updates.apply_changes(
            request.agent,
            request.update_mask,
            {
                "system_message": system_message,
                "description": description,
                **_updates.model_change(model),
                "memory": _updates.unless_unset(buffer_memory, _convert.memory_to_pb),
                "tools": _updates.unless_unset(tools, _convert.tool_names),
                "labels": labels,
                "callable_agents": callable_agents,
                "max_model_calls": max_model_calls,
            },
        )
        response = await self._unary(self._stub.UpdateAgent, request)
        return _convert.agent_from_pb(response.agent)

    async def delete_agent(self, agent_id: str, etag: str | None = None) -> None:
        """Delete an agent with its sessions and runs (only that revision, with `etag`)."""
        await self._unary(
            self._stub.DeleteAgent, pb.DeleteAgentRequest(agent_id=agent_id, etag=etag or "")
        )

    async def set_default_agent(self, agent_id: str) -> t.Agent:
        """Make an agent the default: runs that name no agent go to it."""
        response = await self._unary(
            self._stub.SetDefaultAgent, pb.SetDefaultAgentRequest(agent_id=agent_id)
        )
        return _convert.agent_from_pb(response.agent)

    async def get_default_agent(self) -> t.Agent:
        """The default agent (NoDefaultAgent if none is set)."""
        response = await self._unary(self._stub.GetDefaultAgent, pb.GetDefaultAgentRequest())
        return _convert.agent_from_pb(response.agent)
