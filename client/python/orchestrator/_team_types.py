"""The types of teams, pipelines and collaboration events (re-exported by `orchestrator.types`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias

from ._run_types import EventClass, RunEvent, RunStatus, Usage


@dataclass(frozen=True, slots=True)
class Team:
    """A stored team: members that work on one task in parallel, and an optional
    coordinator that synthesizes their outputs. Empty templates and zero limits mean the
    server's defaults (see collaboration.proto); `etag` makes updates conditional."""

    team_id: str
    members: tuple[str, ...] = ()
    coordinator: str = ""
    description: str = ""
    member_template: str = ""
    synthesis_template: str = ""
    synthesis_item_template: str = ""
    max_concurrency: int = 0
    member_timeout_seconds: float = 0.0
    create_time: datetime | None = None
    update_time: datetime | None = None
    etag: str = ""


@dataclass(frozen=True, slots=True)
class PipelineStep:
    """One step of a pipeline: an agent (empty = the default agent) and its message.

    The template may use `{input}` (the pipeline's input) and `{previous}` (the previous
    step's output, the input for the first step); empty means "{previous}".
    """

    agent_id: str = ""
    message_template: str = ""


class ParticipantRole(enum.StrEnum):
    """The part an agent plays in a collaboration."""

    UNSPECIFIED = "unspecified"
    STEP = "step"
    MEMBER = "member"
    COORDINATOR = "coordinator"


@dataclass(frozen=True, slots=True)
class Participant:
    """A pipeline step, team member or coordinator; `index` is 0-based (0 for the
    coordinator)."""

    role: ParticipantRole
    index: int
    agent_id: str


@dataclass(frozen=True, slots=True)
class ParticipantResult:
    """How one participant's run ended (`status` COMPLETED, FAILED or CANCELLED).

    `error_reason` is the ErrorInfo reason when it did not complete (MEMBER_TIMEOUT for a
    member that ran out of time); `run_id` is empty when no run was created.
    """

    participant: Participant
    status: RunStatus
    output: str = ""
    run_id: str = ""
    error_reason: str = ""
    error_message: str = ""
    usage: Usage = field(default_factory=Usage)
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether it completed."""
        return self.status is RunStatus.COMPLETED


@dataclass(frozen=True, slots=True)
class PipelineResult:
    """A finished pipeline: the last step's output and every step's result, in order."""

    run_id: str
    output: str
    steps: tuple[ParticipantResult, ...] = ()
    session_id: str = ""
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, slots=True)
class TeamResult:
    """A finished team run.

    `output` is the coordinator's synthesis, or (without a coordinator) the members'
    results rendered with the team's item template. `members` are in team order, failed
    and timed-out ones included; `coordinator` is None for a team without one.
    """

    run_id: str
    team_id: str
    output: str
    members: tuple[ParticipantResult, ...] = ()
    coordinator: ParticipantResult | None = None
    session_id: str = ""
    usage: Usage = field(default_factory=Usage)

    def member(self, agent_id: str) -> ParticipantResult:
        """The result of the member with this agent id (KeyError if none)."""
        for result in self.members:
            if result.participant.agent_id == agent_id:
                return result
        raise KeyError(agent_id)


class _CollaborationEventFields(metaclass=EventClass):
    """What every event of a collaboration stream (RunPipeline, RunTeam) carries.

    `run_id` is the pipeline's or team's run, the parent of every participant's run.
    """

    run_id: str
    sequence: int


class _ParticipantEventFields(_CollaborationEventFields):
    """What the events about one participant (a step, member or coordinator) carry."""

    participant: Participant


class CollaborationStarted(_CollaborationEventFields):
    """The collaboration's run was created (the first event)."""

    session_id: str
    participant_count: int
    team_id: str = ""


class ParticipantStarted(_ParticipantEventFields):
    """A step, member or coordinator is about to run with `message` (its template filled)."""

    message: str


class ParticipantEvent(_ParticipantEventFields):
    """An event of a participant's run (`event.run_id` is the participant's own run)."""

    event: RunEvent


class ParticipantFinished(_ParticipantEventFields):
    """A participant finished: completed, failed, cancelled or timed out."""

    result: ParticipantResult


class CollaborationCompleted(_CollaborationEventFields):
    """The collaboration finished successfully (the last event).

    `results` are the steps in order, or the members in team order then the coordinator.
    """

    output: str
    results: tuple[ParticipantResult, ...] = ()
    usage: Usage = field(default_factory=Usage)


CollaborationEvent: TypeAlias = (
    CollaborationStarted
    | ParticipantStarted
    | ParticipantEvent
    | ParticipantFinished
    | CollaborationCompleted
)
"""Any event of a pipeline or team stream."""
