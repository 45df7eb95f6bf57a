"""Team management and the collaboration RPCs (RunPipeline, RunTeam): parse, call the
core, convert (errors are mapped by the method handlers, `handlers.py`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import grpc

from orchestrator.v1 import collaboration_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb

from ..core.pipelines import PipelineRunner
from ..core.team_runs import TeamRunner
from ..core.teams import TeamRegistry
from .call_context import deadline_of, tenant_of
from .convert.teams import (
    collaboration_event_to_pb,
    pipeline_steps_from_pb,
    team_spec_from_pb,
    team_to_pb,
)

Context = grpc.aio.ServicerContext[Any, Any]


class CollaborationRpcs:
    """The team and collaboration part of OrchestratorService."""

    def __init__(
        self, teams: TeamRegistry, pipelines: PipelineRunner, team_runs: TeamRunner
    ) -> None:
        self._teams = teams
        self._pipelines = pipelines
        self._team_runs = team_runs

    async def CreateTeam(
        self, request: pb.CreateTeamRequest, context: Context
    ) -> pb.CreateTeamResponse:
        """Create a team (or get it, with if_not_exists)."""
        team, created = await self._teams.create(
            tenant_of(context),
            request.team.team_id,
            team_spec_from_pb(request.team),
            if_not_exists=request.if_not_exists,
        )
        return pb.CreateTeamResponse(team=team_to_pb(team), created=created)

    async def GetTeam(self, request: pb.GetTeamRequest, context: Context) -> pb.GetTeamResponse:
        """Return one team."""
        team = await self._teams.get(tenant_of(context), request.team_id)
        return pb.GetTeamResponse(team=team_to_pb(team))

    async def ListTeams(
        self, request: pb.ListTeamsRequest, context: Context
    ) -> pb.ListTeamsResponse:
        """List a page of teams."""
        page = await self._teams.list(
            tenant_of(context), page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListTeamsResponse(
            teams=[team_to_pb(t) for t in page.items],
            next_page_token=page.next_page_token,
        )

    async def UpdateTeam(
        self, request: pb.UpdateTeamRequest, context: Context
    ) -> pb.UpdateTeamResponse:
        """Apply an update mask."""
        team = await self._teams.update(
            tenant_of(context),
            request.team.team_id,
            team_spec_from_pb(request.team),
            list(request.update_mask.paths),
            request.team.etag,
        )
        return pb.UpdateTeamResponse(team=team_to_pb(team))

    async def DeleteTeam(
        self, request: pb.DeleteTeamRequest, context: Context
    ) -> pb.DeleteTeamResponse:
        """Delete a team."""
        await self._teams.delete(tenant_of(context), request.team_id, request.etag)
        return pb.DeleteTeamResponse()

    async def RunPipeline(
        self, request: collaboration_pb2.RunPipelineRequest, context: Context
    ) -> AsyncGenerator[collaboration_pb2.CollaborationEvent, None]:
        """Run the steps one after another, streaming their events."""
        events = self._pipelines.run(
            tenant_of(context),
            pipeline_steps_from_pb(request.steps),
            request.input,
            request.session_id,
            deadline=deadline_of(context),
        )
        async with aclosing(events):
            async for event in events:
                yield collaboration_event_to_pb(event)

    async def RunTeam(
        self, request: collaboration_pb2.RunTeamRequest, context: Context
    ) -> AsyncGenerator[collaboration_pb2.CollaborationEvent, None]:
        """Run a team on a task, streaming its members' and coordinator's events."""
        events = self._team_runs.run(
            tenant_of(context), request.team_id, request.task, deadline=deadline_of(context)
        )
        async with aclosing(events):
            async for event in events:
                yield collaboration_event_to_pb(event)
