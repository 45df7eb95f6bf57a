"""Plain domain types of the orchestrator core (no protobuf, no gRPC).

The protobuf messages are the wire format; these are what the core and the store work
with, so that storage and logic do not depend on generated code (the `api/convert_*.py`
modules map between the two).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Generic, TypeVar

DEFAULT_SESSION_ID = "default"
DEFAULT_TENANT = "default"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Which provider and model an agent uses, and its sampling parameters."""

    provider: str = ""
    model: str = ""
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class MemoryConfig:
    """How many history messages are sent to the model (0 = the server default)."""

    max_messages: int = 0


@dataclass(frozen=True, slots=True)
class AgentAccess:
    """Who of the tenant may run and read an agent (entries `principal:<id>`,
    `group:<name>`, `role:<role>`); empty lists leave it to the callers' roles."""

    runners: tuple[str, ...] = ()
    readers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """The caller-chosen configuration of an agent: everything but its bookkeeping."""

    system_message: str = ""
    description: str = ""
    model: ModelSpec = field(default_factory=ModelSpec)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    tools: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    callable_agents: tuple[str, ...] = ()
    max_model_calls: int = 0
    access: AgentAccess = field(default_factory=AgentAccess)


@dataclass(frozen=True, slots=True)
class Agent:
    """A stored agent: its id, spec and bookkeeping (times are Unix seconds)."""

    agent_id: str
    spec: AgentSpec
    create_time: float
    update_time: float
    revision: int
    is_default: bool = False

    @property
    def etag(self) -> str:
        """The opaque revision tag clients send back for conditional changes."""
        return etag_of(self.revision)


def etag_of(revision: int) -> str:
    """The weak etag of a stored revision (`W/"7"`)."""
    return f'W/"{revision}"'


@dataclass(frozen=True, slots=True)
class NewAgent:
    """An agent to create: its id and spec, whether it becomes the tenant's default, and
    whether an existing agent of that id is returned instead of ALREADY_EXISTS."""

    agent_id: str
    spec: AgentSpec
    set_as_default: bool = False
    if_not_exists: bool = False


class Role(enum.StrEnum):
    """Who wrote a message; the values are the OpenAI chat roles."""

    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call requested by a model."""

    call_id: str
    name: str
    arguments_json: str


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a conversation, as stored."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    run_id: str = ""
    sequence: int = 0
    create_time: float = 0.0


@dataclass(frozen=True, slots=True)
class Session:
    """A conversation of one agent."""

    agent_id: str
    session_id: str
    message_count: int
    create_time: float
    update_time: float
    owner: str = ""


class RunStatus(enum.StrEnum):
    """Lifecycle state of a run (stored as these strings)."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def is_final(self) -> bool:
        """True once the run can no longer change."""
        return self in _FINAL_STATUSES


_FINAL_STATUSES = frozenset(
    {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.INTERRUPTED}
)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of a run's model calls."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_calls: int = 0  # requests sent to the model, answered or not

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.model_calls + other.model_calls,
        )


@dataclass(frozen=True, slots=True)
class Run:
    """A stored run: one turn of one agent in one session."""

    run_id: str
    agent_id: str
    session_id: str
    status: RunStatus
    input: str
    create_time: float
    request_id: str = ""
    parent_run_id: str = ""
    output: str = ""
    usage: Usage = field(default_factory=Usage)
    error_reason: str = ""
    error_message: str = ""
    start_time: float | None = None
    end_time: float | None = None
    # The principal owning the run's session.
    owner: str = ""
    # The W3C trace id of the call that started it ("": none).
    trace_id: str = ""


@dataclass(frozen=True, slots=True)
class RunQuery:
    """Which runs to list, newest first: of one agent (and session) or all, starting
    after the (create_time, run_id) key of the previous page."""

    limit: int
    agent_id: str = ""
    session_id: str = ""
    after: tuple[float, str] | None = None
    # Only runs of sessions this principal owns; None for every run.
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing and the opaque token of the next (empty on the last)."""

    items: list[T]
    next_page_token: str = ""


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
        return etag_of(self.revision)


@dataclass(frozen=True, slots=True)
class PipelineStep:
    """One step of a pipeline: an agent (empty = the default agent) and its template."""

    agent_id: str
    message_template: str = ""


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """What a client asks for when it starts a turn."""

    agent_id: str
    message: str
    session_id: str = ""
    request_id: str = ""
    wait_if_busy: bool = False
    # BusyPolicy INTERRUPT: cancel the session's runs in flight first (then wait as
    # wait_if_busy, which is set too, for the session to be free).
    interrupt_if_busy: bool = False
    # DisconnectPolicy CONTINUE: the run goes on when its caller's stream goes away.
    continue_on_disconnect: bool = False
    # Otherwise: seconds the run goes on after its caller dropped, waiting to be followed
    # again before it is cancelled (0: cancelled at once).
    resume_window: float = 0.0
    parent_run_id: str = ""
    # (name, description, JSON schema text) of tools the client executes itself.
    client_tools: tuple[tuple[str, str, str], ...] = ()
    max_model_calls: int = 0
    client_tool_timeout: float = 0.0
    # Agents already asking, outermost first (agent-to-agent calls): the cycle guard.
    call_chain: tuple[str, ...] = ()
