"""The team and pipeline calls of AsyncOrchestrator: teams, and running agents together."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from . import _convert, _updates
from . import types as t
from ._collaboration import CollaborationStream, collect_pipeline, collect_team
from ._connection import Connection
from ._signatures import same_parameters
from ._updates import UNSET, _Unset
from .errors import TeamNotFound
from .v1 import collaboration_pb2
from .v1 import orchestrator_service_pb2 as pb


class TeamCalls(Connection):
    """The calls about teams and pipelines (see AsyncOrchestrator)."""

    async def create_team(
        self,
        team_id: str,
        members: Iterable[str],
        *,
        coordinator: str | None = None,
        description: str = "",
        member_template: str = "",
        synthesis_template: str = "",
        synthesis_item_template: str = "",
        max_concurrency: int = 0,
        member_timeout_seconds: float = 0.0,
        if_not_exists: bool = False,
    ) -> t.Team:
        """Create a team of existing agents (TeamAlreadyExists if the id is taken, unless
        `if_not_exists`, which returns the existing team unchanged).

        Empty templates and zero limits mean the server's defaults: members get
        "Task for {agent}: {task}", the coordinator a synthesis message listing each
        member's output under its name; 8 members at once, 300 s each.
        """
        team = collaboration_pb2.Team(
            team_id=team_id,
            members=list(members),
            coordinator=coordinator or "",
            description=description,
            member_template=member_template,
            synthesis_template=synthesis_template,
            synthesis_item_template=synthesis_item_template,
            max_concurrency=max_concurrency,
            member_timeout_seconds=member_timeout_seconds,
        )
        request = pb.CreateTeamRequest(team=team, if_not_exists=if_not_exists)
        response = await self._unary(self._stub.CreateTeam, request)
        return _convert.team_from_pb(response.team)

    async def get_team(self, team_id: str) -> t.Team:
        """One team (TeamNotFound if there is none)."""
        response = await self._unary(self._stub.GetTeam, pb.GetTeamRequest(team_id=team_id))
        return _convert.team_from_pb(response.team)

    async def has_team(self, team_id: str) -> bool:
        """Whether a team with this id exists."""
        return await self._exists(self.get_team(team_id), TeamNotFound)

    async def iter_teams(self, *, page_size: int = 0) -> AsyncIterator[t.Team]:
        """Every team in id order, page by page."""
        request = pb.ListTeamsRequest(page_size=page_size)
        pages = self._paginate(
            self._stub.ListTeams, request, lambda r: map(_convert.team_from_pb, r.teams)
        )
        async for team in pages:
            yield team

    async def list_teams(self) -> list[t.Team]:
        """All teams, in id order."""
        return [team async for team in self.iter_teams()]

    async def update_team(
        self,
        team_id: str,
        *,
        etag: str | None = None,
        members: Iterable[str] | _Unset = UNSET,
        coordinator: str | _Unset | None = UNSET,
        description: str | _Unset = UNSET,
        member_template: str | _Unset = UNSET,
        synthesis_template: str | _Unset = UNSET,
        synthesis_item_template: str | _Unset = UNSET,
        max_concurrency: int | _Unset = UNSET,
        member_timeout_seconds: float | _Unset = UNSET,
    ) -> t.Team:
        """Change the fields passed, and only those; returns the updated team.

        An empty template, a zero limit or `coordinator=None` returns the field to its
        default. With `etag` the update applies only to that revision (EtagMismatch).
        """
        request = pb.UpdateTeamRequest(
            team=collaboration_pb2.Team(team_id=team_id, etag=etag or "")
        )
        changes: dict[str, object] = {
            "members": members,
            "coordinator": _updates.unless_unset(coordinator, lambda name: name or ""),
            "description": description,
            "member_template": member_template,
            "synthesis_template": synthesis_template,
            "synthesis_item_template": synthesis_item_template,
            "max_concurrency": max_concurrency,
            "member_timeout_seconds": member_timeout_seconds,
        }
        _updates.apply_changes(request.team, request.update_mask, changes)
        response = await self._unary(self._stub.UpdateTeam, request)
        return _convert.team_from_pb(response.team)

    async def delete_team(self, team_id: str, etag: str | None = None) -> None:
        """Delete a team (its past runs are kept); only that revision, with `etag`."""
        await self._unary(
            self._stub.DeleteTeam, pb.DeleteTeamRequest(team_id=team_id, etag=etag or "")
        )

    def stream_team(
        self, team_id: str, task: str, *, timeout: float | None = None
    ) -> CollaborationStream:
        """Run a team on a task and stream its typed collaboration events.

        Members run in parallel; their run events arrive as ParticipantEvent, tagged with
        the member. The stream ends after CollaborationCompleted; a failed team run (the
        coordinator failed, or every member did) raises its typed error.
        """
        request = collaboration_pb2.RunTeamRequest(team_id=team_id, task=task)
        return self._collaboration(self._stub.RunTeam, request, timeout)

    async def run_team(
        self,
        team_id: str,
        task: str,
        *,
        # A gRPC deadline for the whole run, enforced by the server too (not a local wait).
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> t.TeamResult:
        """Run a team on a task: the final output and every member's result.

        Failed and timed-out members are reported in `members` (and named in the
        coordinator's input); the call raises only when the team run itself fails.
        """
        async with self.stream_team(team_id, task, timeout=timeout) as events:
            return await collect_team(events, team_id)

    def stream_pipeline(
        self,
        steps: Iterable[_convert.PipelineStepLike],
        input: str,
        *,
        session_id: str | None = None,
        timeout: float | None = None,
    ) -> CollaborationStream:
        """Run agents one after another and stream every step's typed events.

        `steps` are PipelineStep objects, `(agent_id, template)` pairs or agent ids;
        templates use `{input}` and `{previous}`. A failing step stops the pipeline: the
        stream raises that step's typed error, with metadata `step` (0-based) and
        `agent_id`.
        """
        request = collaboration_pb2.RunPipelineRequest(
            steps=[_convert.pipeline_step_to_pb(s) for s in steps],
            input=input,
            session_id=session_id or "",
        )
        return self._collaboration(self._stub.RunPipeline, request, timeout)

    @same_parameters(stream_pipeline)
    async def run_pipeline(self, *args: Any, **kwargs: Any) -> t.PipelineResult:
        """Run a pipeline (the arguments of `stream_pipeline`): the last step's output and
        every step's result.

        `session_id` None runs every step in a new session of its own.
        """
        async with self.stream_pipeline(*args, **kwargs) as events:
            return await collect_pipeline(events)
