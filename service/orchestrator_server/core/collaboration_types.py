"""Domain types of multi-agent collaboration: teams, pipeline steps and the events of a
pipeline or team run (no protobuf; `api/convert.py` maps them).

They live apart from `types.py` so that the store can import them without importing the
collaboration logic (which itself depends on the store).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from . import events as ev
from .types import RunStatus, Usage

DEFAULT_MEMBER_TEMPLATE = "Task for {agent}: {task}"
DEFAULT_SYNTHESIS_TEMPLATE = "Synthesize the following team outputs for task '{task}':\n\n{results}"
DEFAULT_SYNTHESIS_ITEM_TEMPLATE = "=== {agent} ===\n{output}\n\n"
DEFAULT_STEP_TEMPLATE = "{previous}"
DEFAULT_MAX_CONCURRENCY = 8
DEFAULT_MEMBER_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class TeamSpec:
    """The caller-chosen configuration of a team (defaults already resolved when stored)."""

    members: tuple[str, ...] = ()
    description: str = ""
    coordinator: str = ""
    member_template: str = ""
    synthesis_template: str = ""
    synthesis_item_template: str = ""
    max_concurrency: int = 0
    member_timeout_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Team:
    """A stored team: its id, spec and bookkeeping (times are Unix seconds)."""

    team_id: str
    spec: TeamSpec
    create_time: float
    update_time: float
    revision: int

    @property
    def etag(self) -> str:
        """The opaque revision tag clients send back for conditional changes."""
        return f'W/"{self.revision}"'


@dataclass(frozen=True, slots=True)
class PipelineStep:
    """One step of a pipeline: an agent (empty = the default agent) and its template."""

    agent_id: str
    message_template: str = ""


class ParticipantRole(enum.StrEnum):
    """The part an agent plays in a collaboration."""

    STEP = "step"
    MEMBER = "member"
    COORDINATOR = "coordinator"


@dataclass(frozen=True, slots=True)
class Participant:
    """A step (index in the pipeline), a member (index in the team) or the coordinator."""

    role: ParticipantRole
    index: int
    agent_id: str


@dataclass(frozen=True, slots=True)
class CollaborationStarted:
    """The pipeline's or team's own run was created."""

    session_id: str
    participant_count: int
    team_id: str = ""


@dataclass(frozen=True, slots=True)
class ParticipantStarted:
    """A participant is about to run with this message."""

    message: str


@dataclass(frozen=True, slots=True)
class ParticipantResult:
    """How one participant's run ended."""

    participant: Participant
    run_id: str
    status: RunStatus
    output: str = ""
    error_reason: str = ""
    error_message: str = ""
    usage: Usage = field(default_factory=Usage)
    duration_ms: float = 0.0

    @property
    def completed(self) -> bool:
        """True when the participant produced an answer."""
        return self.status is RunStatus.COMPLETED


@dataclass(frozen=True, slots=True)
class CollaborationCompleted:
    """The collaboration's final answer and every participant's result."""

    output: str
    results: tuple[ParticipantResult, ...]
    usage: Usage


CollaborationBody = (
    CollaborationStarted
    | ParticipantStarted
    | ev.RunEvent
    | ParticipantResult
    | CollaborationCompleted
)


@dataclass(frozen=True, slots=True)
class CollaborationEvent:
    """One event of a pipeline or team run; `participant` is None for whole-run events."""

    run_id: str
    sequence: int
    participant: Participant | None
    body: CollaborationBody
