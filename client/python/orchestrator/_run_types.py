"""The types of agents, sessions, runs and run events (re-exported by `orchestrator.types`)."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias, TypedDict, dataclass_transform


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
    # What the call that returned the agent did, not a property of the stored agent: it
    # takes no part in equality, repr or the CLI's JSON, so a created agent still equals
    # the same agent read back with get_agent.
    created: bool = field(default=False, compare=False, repr=False)
    """True when the `create_agent` (or `get_or_create_agent`) call that returned this
    agent created it; False when it returned an existing agent, and for every other call."""


class AgentSettings(TypedDict, total=False):
    """The settings `create_agent` and `get_or_create_agent` take as keywords.

    Every key is optional: `model` is a Model, a bare model name of the server's default
    provider, or None for the server's defaults; `tools` names server tools (str or
    ServerTool); `buffer_memory` None is the server's default (50 messages);
    `set_as_default` also makes the new agent the default (never applied to an existing
    one); `callable_agents` are the agents it may ask for help; `max_model_calls` 0 is the
    server's limit.
    """

    model: Model | str | None
    system_message: str
    tools: Iterable[str | ServerTool]
    buffer_memory: BufferMemory | None
    set_as_default: bool
    labels: Mapping[str, str] | None
    description: str
    callable_agents: Iterable[str]
    max_model_calls: int


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
    model_calls: int = 0  # requests sent to the model, answered or not


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
    trace_id: str = ""
    """The W3C trace id of the call that started the run ("" without one)."""


# -- events of a run ----------------------------------------------------------------------


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(field,))
class EventClass(type):
    """The metaclass of the event types: each is a frozen, slotted, keyword-only dataclass.

    The events are many small classes; this says once how they are built, instead of a
    decorator on each (type checkers read it through `dataclass_transform`).
    """

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> Any:
        cls = super().__new__(mcs, name, bases, namespace)
        if "__slots__" in namespace:
            # The class dataclass(slots=True) builds again, with its slots: the final one.
            return cls
        return dataclass(frozen=True, slots=True, kw_only=True)(cls)


class _RunEventFields(metaclass=EventClass):
    """What every run event carries: its run, its place in the stream, and its agent.

    `parent_run_id` is set on the events of a child run (an agent this run's agent asked
    for help); `sequence` orders the events of one run.
    """

    run_id: str
    sequence: int
    agent_id: str
    parent_run_id: str = ""


class RunStarted(_RunEventFields):
    """The run was accepted (`status` QUEUED when it waits behind another turn)."""

    session_id: str
    status: RunStatus
    replayed: bool = False


class TextDelta(_RunEventFields):
    """A piece of the answer; the deltas of a message concatenate to its content."""

    text: str


class MessageCompleted(_RunEventFields):
    """A complete assistant message, as stored in the session."""

    message: Message


class RunCompleted(_RunEventFields):
    """The run ended with its final answer."""

    output: str
    usage: Usage = field(default_factory=Usage)
    time_to_first_delta_ms: float = 0.0
    duration_ms: float = 0.0


class RunCancelled(_RunEventFields):
    """The run was cancelled; `reason` is RUN_CANCELLED, DEADLINE_EXCEEDED or RUN_INTERRUPTED."""

    reason: str
    message: str = ""


class ToolCallStarted(_RunEventFields):
    """The model called a tool (`location` says where it runs)."""

    call: ToolCall
    location: ToolLocation


class ToolCallFinished(_RunEventFields):
    """A tool call finished with an output, or an error the model is told instead."""

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
