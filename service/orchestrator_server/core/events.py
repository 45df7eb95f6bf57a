"""Events of a run, as the core produces them (the API layer turns them into RunEvent)."""

from __future__ import annotations

from dataclasses import dataclass

from .types import Message, RunStatus, ToolCall, Usage


@dataclass(frozen=True, slots=True)
class RunStarted:
    """The run was accepted (running, or queued behind another turn)."""

    session_id: str
    status: RunStatus
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of assistant text."""

    text: str


@dataclass(frozen=True, slots=True)
class MessageCompleted:
    """A complete assistant message as stored."""

    message: Message


@dataclass(frozen=True, slots=True)
class RunCompleted:
    """The run ended with a final answer."""

    output: str
    usage: Usage
    time_to_first_delta_ms: float
    duration_ms: float


@dataclass(frozen=True, slots=True)
class RunCancelled:
    """The run was cancelled; the stream stays open for further turns."""

    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """The model called a tool; `location` is server, mcp, client, agent or unknown."""

    call: ToolCall
    location: str


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    """A tool call finished with an output or an error."""

    call_id: str
    name: str
    output: str
    error: str
    duration_ms: float


EventBody = (
    RunStarted
    | TextDelta
    | MessageCompleted
    | RunCompleted
    | RunCancelled
    | ToolCallStarted
    | ToolCallFinished
)


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One event of one run, with its per-run sequence number."""

    run_id: str
    agent_id: str
    sequence: int
    body: EventBody
    parent_run_id: str = ""
