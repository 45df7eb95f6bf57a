"""The client's domain types: plain frozen dataclasses, never protobuf messages.

The generated `orchestrator.v1` messages are the wire format; these are what callers
work with (`_convert.py` is the one module that maps between the two), so user code does
not depend on generated classes and reads like the original in-process Orchestrator.

Run events share `run_id`, `sequence`, `agent_id` and `parent_run_id` (set on the events
of a child run: an agent this run's agent asked for help); `RunEvent` is their union, so
a `match` statement over an event stream can be exhaustive. Collaboration events
(pipelines and teams) share `run_id` and `sequence`; `CollaborationEvent` is their union.

The definitions live in `_run_types` (agents, sessions, runs) and `_team_types` (teams,
pipelines); this module is where they are imported from.
"""

from __future__ import annotations

from ._run_types import (
    TERMINAL_EVENTS,
    Agent,
    AgentSettings,
    BufferMemory,
    Message,
    MessageCompleted,
    MessageRole,
    Model,
    Run,
    RunCancelled,
    RunCompleted,
    RunEvent,
    RunStarted,
    RunStatus,
    ServerTool,
    Session,
    TextDelta,
    ToolCall,
    ToolCallFinished,
    ToolCallStarted,
    ToolLocation,
    Usage,
)
from ._team_types import (
    CollaborationCompleted,
    CollaborationEvent,
    CollaborationStarted,
    Participant,
    ParticipantEvent,
    ParticipantFinished,
    ParticipantResult,
    ParticipantRole,
    ParticipantStarted,
    PipelineResult,
    PipelineStep,
    Team,
    TeamResult,
)

__all__ = [
    "TERMINAL_EVENTS",
    "Agent",
    "AgentSettings",
    "BufferMemory",
    "CollaborationCompleted",
    "CollaborationEvent",
    "CollaborationStarted",
    "Message",
    "MessageCompleted",
    "MessageRole",
    "Model",
    "Participant",
    "ParticipantEvent",
    "ParticipantFinished",
    "ParticipantResult",
    "ParticipantRole",
    "ParticipantStarted",
    "PipelineResult",
    "PipelineStep",
    "Run",
    "RunCancelled",
    "RunCompleted",
    "RunEvent",
    "RunStarted",
    "RunStatus",
    "ServerTool",
    "Session",
    "Team",
    "TeamResult",
    "TextDelta",
    "ToolCall",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolLocation",
    "Usage",
]
