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

from .collaboration import Collaborations, Emit, Outcome, participant_error, total_usage
from .events import (
    CollaborationCompleted,
    CollaborationEvent,
    CollaborationStarted,
    Participant,
    ParticipantResult,
    ParticipantRole,
    ParticipantStarted,
)
from .runs import new_run_id
from .teams import (
    MEMBER_PLACEHOLDERS,
    SYNTHESIS_ITEM_PLACEHOLDERS,
    SYNTHESIS_PLACEHOLDERS,
    TeamRegistry,
)
from .templates import Template, parse_template
from .types import Team, TurnRequest
from .validation import check_message


def synthesis_output(result: ParticipantResult, timeout: float) -> str:
    """What the synthesis input shows for a member: its answer, or why it has none."""
    if result.completed:
        return result.output
    if result.error_reason == "MEMBER_TIMEOUT":
        return f"[timed out after {timeout:g} s]"
    return f"[failed: {result.error_reason}]"


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
        spec = team.spec
        # Stored templates were validated when written; parsing again is cheap and keeps
        # a team written by an older server version from failing half-way.
        member = parse_template(spec.member_template, MEMBER_PLACEHOLDERS, "member_template")
        synthesis = parse_template(
            spec.synthesis_template, SYNTHESIS_PLACEHOLDERS, "synthesis_template"
        )
        item = parse_template(
            spec.synthesis_item_template, SYNTHESIS_ITEM_PLACEHOLDERS, "synthesis_item_template"
        )
        run_id = new_run_id()

        async def body(emit: Emit) -> CollaborationCompleted:
            emit(None, CollaborationStarted(run_id, len(spec.members), team.team_id))
            outcomes = await self._members(tenant, team, task, member, run_id, emit, deadline)
            results = tuple(o.result for o in outcomes)
            block = "".join(
                item.render(
                    {
                        "agent": r.participant.agent_id,
                        "output": synthesis_output(r, spec.member_timeout_seconds),
                    }
                )
                for r in results
            )
            if not spec.coordinator:
                return CollaborationCompleted(block, results, total_usage(results))
            context = {"team_id": team.team_id, "team_run_id": run_id}
            if not any(r.completed for r in results):
                first = outcomes[0]
                raise participant_error(
                    first,
                    f"no member of team '{team.team_id}' completed; the first one "
                    f"('{first.result.participant.agent_id}') failed",
                    {**context, "agent_id": first.result.participant.agent_id, "role": "member"},
                )
            who = Participant(ParticipantRole.COORDINATOR, 0, spec.coordinator)
            message = synthesis.render({"task": task, "results": block})
            emit(who, ParticipantStarted(message))
            request = TurnRequest(
                agent_id=spec.coordinator,
                message=message,
                session_id=run_id,
                wait_if_busy=True,
                parent_run_id=run_id,
            )
            outcome = await self._collaborations.run_participant(
                tenant, who, request, emit, deadline=deadline
            )
            emit(who, outcome.result)
            if outcome.error is not None:
                raise participant_error(
                    outcome,
                    f"the coordinator '{spec.coordinator}' of team '{team.team_id}' failed",
                    {**context, "agent_id": spec.coordinator, "role": "coordinator"},
                )
            everyone = (*results, outcome.result)
            return CollaborationCompleted(outcome.result.output, everyone, total_usage(everyone))

        async with aclosing(
            self._collaborations.stream(tenant, run_id, run_id, task, body)
        ) as items:
            async for event in items:
                yield event

    async def _members(
        self,
        tenant: str,
        team: Team,
        task: str,
        template: Template,
        run_id: str,
        emit: Emit,
        deadline: float | None,
    ) -> list[Outcome]:
        """Run every member, at most max_concurrency at once; outcomes in member order."""
        spec = team.spec
        slots = asyncio.Semaphore(spec.max_concurrency)

        async def one(index: int, agent_id: str) -> Outcome:
            who = Participant(ParticipantRole.MEMBER, index, agent_id)
            # The member timeout starts when the member gets a slot, so a small
            # max_concurrency does not time out the members that wait for one.
            async with slots:
                message = template.render({"agent": agent_id, "task": task})
                emit(who, ParticipantStarted(message))
                request = TurnRequest(
                    agent_id=agent_id,
                    message=message,
                    session_id=run_id,
                    wait_if_busy=True,
                    parent_run_id=run_id,
                )
                outcome = await self._collaborations.run_participant(
                    tenant,
                    who,
                    request,
                    emit,
                    deadline=deadline,
                    time_limit=spec.member_timeout_seconds,
                )
                emit(who, outcome.result)
                return outcome

        return list(await asyncio.gather(*(one(i, a) for i, a in enumerate(spec.members))))
