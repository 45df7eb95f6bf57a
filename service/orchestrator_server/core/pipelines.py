"""Pipelines: agents run one after another, each given the input and the previous output
(the original's research -> analysis -> summary hand-offs, as one call).

Everything a request can get wrong (templates, agents, session id) is checked before the
pipeline's run is recorded, so a bad request fails with no run and no model call.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing

from .agents import AgentRegistry
from .collaboration import Collaborations, Outcome, Stage, participant_error, total_usage
from .errors import InvalidArgumentError, OrchestratorError
from .events import (
    CollaborationCompleted,
    CollaborationEvent,
    CollaborationStarted,
    Participant,
    ParticipantRole,
)
from .runs import new_run_id
from .templates import Template, parse_template
from .types import PipelineStep
from .validation import check_message, check_session_id

DEFAULT_STEP_TEMPLATE = "{previous}"
MAX_STEPS = 32
STEP_PLACEHOLDERS = frozenset({"input", "previous"})


class PipelineRunner:
    """Validates and runs pipelines."""

    def __init__(self, agents: AgentRegistry, collaborations: Collaborations) -> None:
        self._agents = agents
        self._collaborations = collaborations

    async def _plan(self, tenant: str, steps: Sequence[PipelineStep]) -> list[tuple[str, Template]]:
        """Each step's resolved agent id and parsed template, or the request's error."""
        if not steps:
            raise InvalidArgumentError.for_field("steps", "needs at least one step")
        if len(steps) > MAX_STEPS:
            raise InvalidArgumentError.for_field("steps", f"at most {MAX_STEPS} steps")
        plan: list[tuple[str, Template]] = []
        for i, step in enumerate(steps):
            template = parse_template(
                step.message_template or DEFAULT_STEP_TEMPLATE,
                STEP_PLACEHOLDERS,
                f"steps[{i}].message_template",
            )
            try:
                agent = await (
                    self._agents.get(tenant, step.agent_id)
                    if step.agent_id
                    else self._agents.get_default(tenant)
                )
            except OrchestratorError as error:
                error.metadata["step"] = str(i)
                raise
            plan.append((agent.agent_id, template))
        return plan

    async def run(
        self,
        tenant: str,
        steps: Sequence[PipelineStep],
        task_input: str,
        session_id: str = "",
        *,
        deadline: float | None = None,
    ) -> AsyncGenerator[CollaborationEvent, None]:
        """Run the steps in order and yield the pipeline's events; raise the error of the
        step that failed (with metadata step, agent_id, run_id, pipeline_run_id)."""
        check_message(task_input, "input")
        if session_id:
            check_session_id(session_id)
        plan = await self._plan(tenant, steps)
        # The first step's size is known now (its {previous} is the input): refuse it
        # before anything is recorded; later steps are checked before they are rendered.
        plan[0][1].check_size({"input": len(task_input), "previous": len(task_input)})
        run_id = new_run_id()
        # A fresh session per pipeline run by default: steps see no unrelated history,
        # and concurrent pipelines through the same agents never wait on each other.
        session = session_id or run_id

        async def body(stage: Stage) -> CollaborationCompleted:
            stage.emit(None, CollaborationStarted(session, len(plan)))
            previous = task_input
            outcomes: list[Outcome] = []
            for i, (agent_id, template) in enumerate(plan):
                who = Participant(ParticipantRole.STEP, i, agent_id)
                message = template.render({"input": task_input, "previous": previous})
                # A named session may be in use by a client: the step waits rather than
                # failing the pipeline half-way through.
                outcome = await self._collaborations.run_participant(stage, who, message)
                outcomes.append(outcome)
                if outcome.error is not None:
                    raise participant_error(
                        outcome,
                        f"pipeline step steps[{i}] (agent '{agent_id}') failed",
                        {"step": str(i), "agent_id": agent_id, "pipeline_run_id": run_id},
                    )
                previous = outcome.result.output
            results = tuple(o.result for o in outcomes)
            return CollaborationCompleted(previous, results, total_usage(results))

        events = self._collaborations.stream(
            tenant, run_id, session, task_input, body, deadline, ("pipeline", "pipeline")
        )
        async with aclosing(events):
            async for event in events:
                yield event
