"""Team management and the collaboration RPCs (RunPipeline, RunTeam): parse, call the
core, convert."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from orchestrator.v1 import collaboration_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb

from ..core import collaboration_types as collab
from ..core import events as ev
from ..core.pipelines import PipelineRunner
from ..core.team_runs import TeamRunner
from ..core.teams import TeamRegistry
from . import convert
from .error_mapping import abort, unary_errors
from .handlers import MalformedRequest, malformed_error
from .runs_servicer import event_to_pb
from .tenancy import tenant_of

Context = grpc.aio.ServicerContext[Any, Any]


def collaboration_event_to_pb(
    event: collab.CollaborationEvent,
) -> collaboration_pb2.CollaborationEvent:
    """A domain collaboration event as a CollaborationEvent message.

    Lives beside its servicer rather than in `convert.py` because it embeds run events,
    whose conversion is the Run servicer's (`event_to_pb`).
    """
    pb_event = collaboration_pb2.CollaborationEvent(run_id=event.run_id, sequence=event.sequence)
    if event.participant is not None:
        pb_event.participant.CopyFrom(convert.participant_to_pb(event.participant))
    body = event.body
    if isinstance(body, ev.RunEvent):
        pb_event.run_event.CopyFrom(event_to_pb(body))
    elif isinstance(body, collab.ParticipantStarted):
        pb_event.participant_started.message = body.message
    elif isinstance(body, collab.ParticipantResult):
        pb_event.participant_finished.CopyFrom(convert.participant_result_to_pb(body))
    elif isinstance(body, collab.CollaborationStarted):
        pb_event.started.CopyFrom(
            collaboration_pb2.CollaborationStarted(
                session_id=body.session_id,
                participant_count=body.participant_count,
                team_id=body.team_id,
            )
        )
    elif isinstance(body, collab.CollaborationCompleted):
        pb_event.completed.CopyFrom(
            collaboration_pb2.CollaborationCompleted(
                output=body.output,
                results=[convert.participant_result_to_pb(r) for r in body.results],
                usage=convert.usage_to_pb(body.usage),
            )
        )
    return pb_event


def _deadline(context: Context) -> float | None:
    remaining = context.time_remaining()
    return time.monotonic() + remaining if remaining is not None else None


class CollaborationRpcs:
    """The team and collaboration part of OrchestratorService."""

    def __init__(
        self, teams: TeamRegistry, pipelines: PipelineRunner, team_runs: TeamRunner
    ) -> None:
        self._teams = teams
        self._pipelines = pipelines
        self._team_runs = team_runs

    @unary_errors
    async def CreateTeam(
        self, request: pb.CreateTeamRequest, context: Context
    ) -> pb.CreateTeamResponse:
        """Create a team (or get it, with if_not_exists)."""
        team, created = await self._teams.create(
            tenant_of(context),
            request.team.team_id,
            convert.team_spec_from_pb(request.team),
            if_not_exists=request.if_not_exists,
        )
        return pb.CreateTeamResponse(team=convert.team_to_pb(team), created=created)

    @unary_errors
    async def GetTeam(self, request: pb.GetTeamRequest, context: Context) -> pb.GetTeamResponse:
        """Return one team."""
        team = await self._teams.get(tenant_of(context), request.team_id)
        return pb.GetTeamResponse(team=convert.team_to_pb(team))

    @unary_errors
    async def ListTeams(
        self, request: pb.ListTeamsRequest, context: Context
    ) -> pb.ListTeamsResponse:
        """List a page of teams."""
        page = await self._teams.list(
            tenant_of(context), page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListTeamsResponse(
            teams=[convert.team_to_pb(t) for t in page.items],
            next_page_token=page.next_page_token,
        )

    @unary_errors
    async def UpdateTeam(
        self, request: pb.UpdateTeamRequest, context: Context
    ) -> pb.UpdateTeamResponse:
        """Apply an update mask."""
        team = await self._teams.update(
            tenant_of(context),
            request.team.team_id,
            convert.team_spec_from_pb(request.team),
            list(request.update_mask.paths),
            request.team.etag,
        )
        return pb.UpdateTeamResponse(team=convert.team_to_pb(team))

    @unary_errors
    async def DeleteTeam(
        self, request: pb.DeleteTeamRequest, context: Context
    ) -> pb.DeleteTeamResponse:
        """Delete a team."""
        await self._teams.delete(tenant_of(context), request.team_id, request.etag)
        return pb.DeleteTeamResponse()

    async def RunPipeline(
        self, request: collaboration_pb2.RunPipelineRequest, context: Context
    ) -> AsyncIterator[collaboration_pb2.CollaborationEvent]:
        """Run the steps one after another, streaming their events."""
        try:
            if isinstance(request, MalformedRequest):
                raise malformed_error(request)
            events = self._pipelines.run(
                tenant_of(context),
                convert.pipeline_steps_from_pb(request.steps),
                request.input,
                request.session_id,
                deadline=_deadline(context),
            )
            async for event in events:
                yield collaboration_event_to_pb(event)
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await abort(context, error)

    async def RunTeam(
        self, request: collaboration_pb2.RunTeamRequest, context: Context
    ) -> AsyncIterator[collaboration_pb2.CollaborationEvent]:
        """Run a team on a task, streaming its members' and coordinator's events."""
        try:
            if isinstance(request, MalformedRequest):
                raise malformed_error(request)
            events = self._team_runs.run(
                tenant_of(context), request.team_id, request.task, deadline=_deadline(context)
            )
            async for event in events:
                yield collaboration_event_to_pb(event)
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await abort(context, error)
