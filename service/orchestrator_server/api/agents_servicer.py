"""Agent management RPCs: parse, call the core, convert (errors are mapped by the
method handlers, `handlers.py`)."""

from __future__ import annotations

from typing import Any

import grpc

from orchestrator.v1 import orchestrator_service_pb2 as pb

from ..core.agents import AgentRegistry
from .call_context import tenant_of
from .convert.agents import agent_spec_from_pb, agent_to_pb

Context = grpc.aio.ServicerContext[Any, Any]


class AgentRpcs:
    """The agent-management half of OrchestratorService."""

    def __init__(self, agents: AgentRegistry) -> None:
        self._agents = agents

    async def CreateAgent(
        self, request: pb.CreateAgentRequest, context: Context
    ) -> pb.CreateAgentResponse:
        """Create an agent (or get it, with if_not_exists)."""
        agent, created = await self._agents.create(
            tenant_of(context),
            request.agent.agent_id,
            agent_spec_from_pb(request.agent),
            set_as_default=request.set_as_default,
            if_not_exists=request.if_not_exists,
        )
        return pb.CreateAgentResponse(agent=agent_to_pb(agent), created=created)

    async def GetAgent(self, request: pb.GetAgentRequest, context: Context) -> pb.GetAgentResponse:
        """Return one agent."""
        agent = await self._agents.get(tenant_of(context), request.agent_id)
        return pb.GetAgentResponse(agent=agent_to_pb(agent))

    async def ListAgents(
        self, request: pb.ListAgentsRequest, context: Context
    ) -> pb.ListAgentsResponse:
        """List a page of agents."""
        page = await self._agents.list(
            tenant_of(context),
            page_size=request.page_size,
            page_token=request.page_token,
            label_filter=dict(request.label_filter),
        )
        return pb.ListAgentsResponse(
            agents=[agent_to_pb(a) for a in page.items],
            next_page_token=page.next_page_token,
        )

    async def UpdateAgent(
        self, request: pb.UpdateAgentRequest, context: Context
    ) -> pb.UpdateAgentResponse:
        """Apply an update mask."""
        agent = await self._agents.update(
            tenant_of(context),
            request.agent.agent_id,
            agent_spec_from_pb(request.agent),
            list(request.update_mask.paths),
            request.agent.etag,
        )
        return pb.UpdateAgentResponse(agent=agent_to_pb(agent))

    async def DeleteAgent(
        self, request: pb.DeleteAgentRequest, context: Context
    ) -> pb.DeleteAgentResponse:
        """Delete an agent with its conversations."""
        await self._agents.delete(tenant_of(context), request.agent_id, request.etag)
        return pb.DeleteAgentResponse()

    async def SetDefaultAgent(
        self, request: pb.SetDefaultAgentRequest, context: Context
    ) -> pb.SetDefaultAgentResponse:
        """Make an agent the default."""
        agent = await self._agents.set_default(tenant_of(context), request.agent_id)
        return pb.SetDefaultAgentResponse(agent=agent_to_pb(agent))

    async def GetDefaultAgent(
        self, request: pb.GetDefaultAgentRequest, context: Context
    ) -> pb.GetDefaultAgentResponse:
        """Return the default agent."""
        agent = await self._agents.get_default(tenant_of(context))
        return pb.GetDefaultAgentResponse(agent=agent_to_pb(agent))
