"""The client's domain types: plain frozen dataclasses, never protobuf messages.

The generated `orchestrator.v1` messages are the wire format; these are what callers
work with (`_convert.py` is the one module that maps between the two), so user code does
not depend on generated classes and reads like the original in-process Orchestrator.

Run events share `run_id`, `sequence`, `agent_id` and `parent_run_id` (set on the events
of a child run: an agent this run's agent asked for help); `RunEvent` is their union, so
a `match` statement over an event stream can be exhaustive.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias


@dataclass(frozen=True, slots=True)
class Model:
    """Which model an agent uses and how it is sampled.

    Empty `provider` means the server's default provider; empty `model` the provider's
    default model; `None` leaves a sampling parameter to the provider.
    """

    model: str = ""
    provider: str = ""
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class BufferMemory:
    """How many history messages are sent with each model call (0 = server default, 50)."""

    max_messages: int = 0


@dataclass(frozen=True, slots=True)
class ServerTool:
    """A tool that runs on the server, named as `ListTools` lists it."""

    name: str


class RunStatus(enum.StrEnum):
    """The lifecycle state of a run."""

    UNSPECIFIED = "unspecified"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


class ToolLocation(enum.StrEnum):
    """Where a tool call executes."""

    UNSPECIFIED = "unspecified"
    SERVER = "server"
    MCP = "mcp"
    CLIENT = "client"
    AGENT = "agent"


class MessageRole(enum.StrEnum):
    """Who wrote a message."""

    UNSPECIFIED = "unspecified"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


@dataclass(frozen=True, slots=True)
class Agent:
    """A stored agent. `etag` makes `update_agent`/`delete_agent` conditional."""

    agent_id: str
    system_message: str = ""
    description: str = ""
    model: Model = field(default_factory=Model)
    buffer_memory: BufferMemory = field(default_factory=BufferMemory)
    tools: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    callable_agents: tuple[str, ...] = ()
    max_model_calls: int = 0
    is_default: bool = False
    create_time: datetime | None = None
    update_time: datetime | None = None
    etag: str = ""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call requested by a model; `arguments_json` is exactly what it produced."""

    call_id: str
    name: str
    arguments_json: str


@dataclass(frozen=True, slots=True)
class Message:
    """One stored message of a conversation."""

    sequence: int
    role: MessageRole
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    run_id: str = ""
    create_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Session:
    """A conversation of one agent."""

    agent_id: str
    session_id: str
    message_count: int
    create_time: datetime | None = None
    update_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts over a run's model calls."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Run:
    """A run record: one turn of one agent in one session."""

    run_id: str
    agent_id: str
    session_id: str
    status: RunStatus
    input: str = ""
    output: str = ""
    request_id: str = ""
    parent_run_id: str = ""
    usage: Usage = field(default_factory=Usage)
    error_reason: str = ""
    error_message: str = ""
    create_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None


# -- events of a run ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted:
    """The run was accepted (`status` QUEUED when it waits behind another turn)."""

    run_id: str
    sequence: int
    agent_id: str
    parent_run_id: str = ""
    session_id: str
    status: RunStatus
    replayed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TextDelta:
    """A piece of the answer; the deltas of a message concatenate to its content."""

    run_id: str
    sequence: int
    agent_id: str
    parent_run_id: str = ""
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageCompleted:
    """A complete assistant message, as stored in the session."""

    run_id: str
    sequence: int
    agent_id: str
    parent_run_id: str = ""
    message: Message


@dataclass(frozen=True, slots=True, kw_only=True)
class RunCompleted:
    """The run ended with its final answer."""

    run_id: str
    sequence: int
    agent_id: str
    parent_run_id: str = ""
    output: str
    usage: Usage = field(default_factory=Usage)
    time_to_first_delta_ms: float = 0.0
    duration_ms: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RunCancelled:
    """The run was cancelled; `reason` is RUN_CANCELLED, DEADLINE_EXCEEDED or RUN_INTERRUPTED."""

    run_id: str
    sequence: int
    agent_id: str
    parent_run_id: str = ""
    reason: str
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallStarted:
    """The model called a tool (`location` says where it runs)."""

    run_id: str
    sequence: int
    agent_id: str
    parent_run_id: str = ""
    call: ToolCall
    location: ToolLocation


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallFinished:
    """A tool call finished with an output, or an error the model is told instead."""

    run_id: str
    sequence: int
    agent_id: str
    parent_run_id: str = ""
    call_id: str
    name: str
    output: str = ""
    error: str = ""
    duration_ms: float = 0.0


RunEvent: TypeAlias = (
    RunStarted
    | TextDelta
    | MessageCompleted
    | RunCompleted
    | RunCancelled
    | ToolCallStarted
    | ToolCallFinished
)
"""Any event of a run stream."""

TERMINAL_EVENTS = (RunCompleted, RunCancelled)
"""The events that end a turn without an error."""


# -- teams and pipelines ------------------------------------------------------------------


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


# Events of a collaboration stream (RunPipeline, RunTeam). They share `run_id` (the
# pipeline's or team's run, the parent of every participant's run) and `sequence`.


@dataclass(frozen=True, slots=True, kw_only=True)
class CollaborationStarted:
    """The collaboration's run was created (the first event)."""

    run_id: str
    sequence: int
    session_id: str
    participant_count: int
    team_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ParticipantStarted:
    """A step, member or coordinator is about to run with `message` (its template filled)."""

    run_id: str
    sequence: int
    participant: Participant
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ParticipantEvent:
    """An event of a participant's run (`event.run_id` is the participant's own run)."""

    run_id: str
    sequence: int
    participant: Participant
    event: RunEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class ParticipantFinished:
    """A participant finished: completed, failed, cancelled or timed out."""

    run_id: str
    sequence: int
    participant: Participant
    result: ParticipantResult


@dataclass(frozen=True, slots=True, kw_only=True)
class CollaborationCompleted:
    """The collaboration finished successfully (the last event).

    `results` are the steps in order, or the members in team order then the coordinator.
    """

    run_id: str
    sequence: int
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
