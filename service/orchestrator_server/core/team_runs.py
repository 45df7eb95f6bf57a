"""Team runs: every member works on the task in parallel, then the coordinator (if any)
synthesizes the outputs that arrived (the original `AgentTeam.run_team_task`, with the
members concurrent instead of one after another).

Members and the coordinator run in a session named after the team run's id: members of
one team run never queue behind each other's or a client's turns, and a team run's
conversations can be read back with ListMessages(agent, session_id=<team run id>).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass

from .collaboration import Collaborations, Outcome, Stage, participant_error, total_usage
from .errors import Reason
from .events import (
    CollaborationCompleted,
    CollaborationEvent,
    CollaborationStarted,
    Participant,
    ParticipantResult,
    ParticipantRole,
)
from .runs import new_run_id
from .teams import (
    MEMBER_PLACEHOLDERS,
    SYNTHESIS_ITEM_PLACEHOLDERS,
    SYNTHESIS_PLACEHOLDERS,
    TeamRegistry,
)
from .templates import Template, parse_template
from .types import Team
from .validation import check_message


def synthesis_output(result: ParticipantResult, timeout: float) -> str:
    """What the synthesis input shows for a member: its answer, or why it has none."""
    if result.completed:
        return result.output
    if result.error_reason == Reason.MEMBER_TIMEOUT:
        return f"[timed out after {timeout:g} s]"
    return f"[failed: {result.error_reason}]"


@dataclass(frozen=True, slots=True)
class _TeamTask:
    """One team run's task and the team's parsed templates."""

    team: Team
    task: str
    member: Template
    synthesis: Template
    item: Template

    @classmethod
    def parse(cls, team: Team, task: str) -> _TeamTask:
        # Stored templates were validated when written; parsing again is cheap and keeps
        # a team written by an older server version from failing half-way.
        spec = team.spec
        return cls(
            team,
            task,
            parse_template(spec.member_template, MEMBER_PLACEHOLDERS, "member_template"),
            parse_template(spec.synthesis_template, SYNTHESIS_PLACEHOLDERS, "synthesis_template"),
            parse_template(
                spec.synthesis_item_template,
                SYNTHESIS_ITEM_PLACEHOLDERS,
                "synthesis_item_template",
            ),
        )

    def results_block(self, results: tuple[ParticipantResult, ...]) -> str:
        """The members' outputs as the synthesis sees them."""
        timeout = self.team.spec.member_timeout_seconds
        return "".join(
            self.item.render(
                {"agent": r.participant.agent_id, "output": synthesis_output(r, timeout)}
            )
            for r in results
        )


class TeamRunner:
    """Runs teams."""

    def __init__(self, teams: TeamRegistry, collaborations: Collaborations) -> None:
        self._teams = teams
        self._collaborations = collaborations

    async def run(
        self, tenant: str, team_id: str, task: str, *, deadline: float | None = None
    ) -> AsyncGenerator[CollaborationEvent, None]:
        """Run the team on `task` and yield its events; raise if the coordinator fails
        or, with a coordinator, no member completed."""
        team = await self._teams.get(tenant, team_id)
        check_message(task, "task")
        work = _TeamTask.parse(team, task)
        longest_id = max(len(agent_id) for agent_id in team.spec.members)
        work.member.check_size({"agent": longest_id, "task": len(task)})
        run_id = new_run_id()

        async def body(stage: Stage) -> CollaborationCompleted:
            return await self._run(stage, work)

        events = self._collaborations.stream(
            tenant, run_id, run_id, task, body, deadline, ("team", team_id)
        )
        async with aclosing(events):
            async for event in events:
                yield event

    async def _run(self, stage: Stage, work: _TeamTask) -> CollaborationCompleted:
        """The members, then the coordinator's synthesis of what they answered."""
        team, spec = work.team, work.team.spec
        stage.emit(None, CollaborationStarted(stage.run_id, len(spec.members), team.team_id))
        outcomes = await self._members(stage, work)
        results = tuple(o.result for o in outcomes)
        block = work.results_block(results)
        if not spec.coordinator:
            return CollaborationCompleted(block, results, total_usage(results))
        context = {"team_id": team.team_id, "team_run_id": stage.run_id}
        if not any(r.completed for r in results):
            first = outcomes[0].result.participant.agent_id
            raise participant_error(
                outcomes[0],
                f"no member of team '{team.team_id}' completed; the first one ('{first}') failed",
                {**context, "agent_id": first, "role": "member"},
            )
        who = Participant(ParticipantRole.COORDINATOR, 0, spec.coordinator)
        message = work.synthesis.render({"task": work.task, "results": block})
        outcome = await self._collaborations.run_participant(stage, who, message)
        if outcome.error is not None:
            raise participant_error(
                outcome,
                f"the coordinator '{spec.coordinator}' of team '{team.team_id}' failed",
                {**context, "agent_id": spec.coordinator, "role": "coordinator"},
            )
        everyone = (*results, outcome.result)
        return CollaborationCompleted(outcome.result.output, everyone, total_usage(everyone))

    async def _members(self, stage: Stage, work: _TeamTask) -> list[Outcome]:
        """Run every member, at most max_concurrency at once; outcomes in member order."""
        spec = work.team.spec
        slots = asyncio.Semaphore(spec.max_concurrency)

        async def one(index: int, agent_id: str) -> Outcome:
            who = Participant(ParticipantRole.MEMBER, index, agent_id)
            # The member timeout starts when the member gets a slot, so a small
            # max_concurrency does not time out the members that wait for one.
            async with slots:
                message = work.member.render({"agent": agent_id, "task": work.task})
                return await self._collaborations.run_participant(
                    stage, who, message, time_limit=spec.member_timeout_seconds
                )

        return list(await asyncio.gather(*(one(i, a) for i, a in enumerate(spec.members))))
