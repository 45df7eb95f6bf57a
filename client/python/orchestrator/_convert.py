"""The one module that converts between protobuf messages and the client's domain types."""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from google.protobuf.message import Message as ProtoMessage
from google.protobuf.timestamp_pb2 import Timestamp

from . import types as t
from ._tools import ClientTool
from .v1 import agent_pb2, collaboration_pb2, run_pb2, session_pb2

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")
V = TypeVar("V")
W = TypeVar("W")

_RUN_STATUS = {
    run_pb2.RUN_STATUS_UNSPECIFIED: t.RunStatus.UNSPECIFIED,
    run_pb2.RUN_STATUS_QUEUED: t.RunStatus.QUEUED,
    run_pb2.RUN_STATUS_RUNNING: t.RunStatus.RUNNING,
    run_pb2.RUN_STATUS_COMPLETED: t.RunStatus.COMPLETED,
    run_pb2.RUN_STATUS_FAILED: t.RunStatus.FAILED,
    run_pb2.RUN_STATUS_CANCELLED: t.RunStatus.CANCELLED,
    run_pb2.RUN_STATUS_INTERRUPTED: t.RunStatus.INTERRUPTED,
}
_ROLE = {
    session_pb2.MESSAGE_ROLE_UNSPECIFIED: t.MessageRole.UNSPECIFIED,
    session_pb2.MESSAGE_ROLE_USER: t.MessageRole.USER,
    session_pb2.MESSAGE_ROLE_ASSISTANT: t.MessageRole.ASSISTANT,
    session_pb2.MESSAGE_ROLE_TOOL: t.MessageRole.TOOL,
}

_LOCATION = {
    run_pb2.TOOL_LOCATION_SERVER: t.ToolLocation.SERVER,
    run_pb2.TOOL_LOCATION_MCP: t.ToolLocation.MCP,
    run_pb2.TOOL_LOCATION_CLIENT: t.ToolLocation.CLIENT,
    run_pb2.TOOL_LOCATION_AGENT: t.ToolLocation.AGENT,
}

ModelLike = t.Model | str | None
"""What `create_agent(model=...)` accepts: a Model, a model name, or None (defaults)."""


def _field_value(pb: Any, name: str, has_presence: bool) -> object:
    """A field's value as plain Python: None when unset (an optional or message field),
    a UTC datetime for a Timestamp, a dict for a map and a tuple for a repeated field."""
    if has_presence and not pb.HasField(name):
        return None
    value = getattr(pb, name)
    if isinstance(value, Timestamp):
        return value.ToDatetime(tzinfo=UTC)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return tuple(value)
    return value


@functools.cache
def _field_names(cls: type[DataclassInstance]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.init)


def from_fields(pb: ProtoMessage, cls: type[D], **given: Any) -> D:
    """A `cls` from the fields of `pb` that have its field names; `given` sets the others.

    The domain types mirror the messages field by field, so only enums, nested messages
    and renamed fields are converted by hand (passed in `given`).
    """
    fields = pb.DESCRIPTOR.fields_by_name
    for name in _field_names(cls):
        if name not in given and name in fields:
            given[name] = _field_value(pb, name, fields[name].has_presence)
    return cls(**given)


def timestamp_of(value: datetime | None) -> Timestamp | None:
    """A Timestamp field's value (None: unset)."""
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def model_from_pb(pb: agent_pb2.ModelSpec) -> t.Model:
    """A Model; unset proto3 optionals become None."""
    return from_fields(pb, t.Model)


def model_to_pb(model: ModelLike) -> agent_pb2.ModelSpec:
    """A ModelSpec message from a Model, a bare model name, or None."""
    if model is None:
        return agent_pb2.ModelSpec()
    if isinstance(model, str):
        return agent_pb2.ModelSpec(model=model)
    pb = agent_pb2.ModelSpec(provider=model.provider, model=model.model, stop=list(model.stop))
    if model.temperature is not None:
        pb.temperature = model.temperature
    if model.max_tokens is not None:
        pb.max_tokens = model.max_tokens
    if model.top_p is not None:
        pb.top_p = model.top_p
    if model.seed is not None:
        pb.seed = model.seed
    return pb


def tool_names(tools: Iterable[object]) -> list[str]:
    """Server tool names from names or objects with a `name` (ServerTool, tool classes)."""
    names: list[str] = []
    for tool in tools:
        if isinstance(tool, str):
            names.append(tool)
            continue
        name = getattr(tool, "name", None)
        if isinstance(name, str) and not callable(tool):
            names.append(name)
            continue
        raise TypeError(
            f"tools takes server tool names (str or ServerTool), not {type(tool).__name__}; "
            "client-side Python functions are passed to run()/stream(), not to agents"
        )
    return names


def memory_to_pb(memory: t.BufferMemory | None) -> agent_pb2.MemoryConfig:
    """A MemoryConfig; None is the server's default."""
    return agent_pb2.MemoryConfig(max_messages=memory.max_messages if memory else 0)


def agent_to_pb(agent_id: str, settings: t.AgentSettings) -> agent_pb2.Agent:
    """The Agent message `create_agent` sends (`set_as_default` belongs to the request)."""
    return agent_pb2.Agent(
        agent_id=agent_id,
        system_message=settings.get("system_message", ""),
        description=settings.get("description", ""),
        model=model_to_pb(settings.get("model")),
        memory=memory_to_pb(settings.get("buffer_memory")),
        tools=tool_names(settings.get("tools", ())),
        labels=dict(settings.get("labels") or {}),
        callable_agents=list(settings.get("callable_agents", ())),
        max_model_calls=settings.get("max_model_calls", 0),
    )


def agent_from_pb(pb: agent_pb2.Agent, *, created: bool = False) -> t.Agent:
    """An Agent with its bookkeeping fields (`created` as the create call reported it)."""
    return from_fields(
        pb,
        t.Agent,
        model=model_from_pb(pb.model),
        buffer_memory=t.BufferMemory(max_messages=pb.memory.max_messages),
        created=created,
    )


def message_from_pb(pb: session_pb2.Message) -> t.Message:
    """A stored message."""
    role = _ROLE.get(pb.role, t.MessageRole.UNSPECIFIED)
    calls = tuple(from_fields(c, t.ToolCall) for c in pb.tool_calls)
    return from_fields(pb, t.Message, role=role, tool_calls=calls)


def session_from_pb(pb: session_pb2.Session) -> t.Session:
    """A session summary."""
    return from_fields(pb, t.Session)


def usage_from_pb(pb: run_pb2.Usage) -> t.Usage:
    """Token usage."""
    return from_fields(pb, t.Usage)


def run_status_from_pb(value: int) -> t.RunStatus:
    """A RunStatus (unknown future values read as UNSPECIFIED)."""
    return _RUN_STATUS.get(value, t.RunStatus.UNSPECIFIED)  # type: ignore[call-overload, no-any-return]


def run_from_pb(pb: run_pb2.Run) -> t.Run:
    """A run record."""
    return from_fields(
        pb, t.Run, status=run_status_from_pb(pb.status), usage=usage_from_pb(pb.usage)
    )


def new_request_id() -> str:
    """A request id for a start that may be sent again (a resumable turn)."""
    return f"resume-{uuid.uuid4().hex}"


def start_turn(
    message: str,
    *,
    agent_id: str,
    session_id: str,
    request_id: str | None,
    wait_if_busy: bool,
    tools: Mapping[str, ClientTool],
    tool_timeout: float | None,
    resume_window: float = 0.0,
    detach: bool = False,
) -> run_pb2.StartTurn:
    """The StartTurn of one turn, for `stream`/`run` and for every turn of a chat. A
    resumable turn (`resume_window` > 0) always carries a request id: sent again after
    a dropped connection, it is run once."""
    if resume_window and not request_id:
        request_id = new_request_id()
    return run_pb2.StartTurn(
        agent_id=agent_id,
        session_id=session_id,
        message=message,
        request_id=request_id or "",
        busy_policy=run_pb2.BUSY_POLICY_ENQUEUE if wait_if_busy else run_pb2.BUSY_POLICY_REJECT,
        client_tools=[tool.definition() for tool in tools.values()],
        client_tool_timeout_seconds=tool_timeout or 0,
        resume_window_seconds=0.0 if detach else resume_window,
        on_disconnect=(
            run_pb2.DISCONNECT_POLICY_CONTINUE if detach else run_pb2.DISCONNECT_POLICY_CANCEL
        ),
    )


def _no_conversion(pb: Any) -> dict[str, object]:
    return {}


# Per `RunEvent.event` case: the event type, and the conversions its fields need.
_RUN_EVENTS: dict[str, tuple[type[Any], Callable[[Any], dict[str, object]]]] = {
    "run_started": (t.RunStarted, lambda pb: {"status": run_status_from_pb(pb.status)}),
    "text_delta": (t.TextDelta, _no_conversion),
    "message_completed": (t.MessageCompleted, lambda pb: {"message": message_from_pb(pb.message)}),
    "run_completed": (t.RunCompleted, lambda pb: {"usage": usage_from_pb(pb.usage)}),
    "run_cancelled": (t.RunCancelled, _no_conversion),
    "tool_call": (
        t.ToolCallStarted,
        lambda pb: {
            "call": from_fields(pb.call, t.ToolCall),
            "location": _LOCATION.get(pb.location, t.ToolLocation.UNSPECIFIED),
        },
    ),
    "tool_result": (t.ToolCallFinished, _no_conversion),
}


def event_from_pb(pb: run_pb2.RunEvent) -> t.RunEvent | None:
    """A typed run event; None for an event kind this client does not know yet."""
    kind = pb.WhichOneof("event")
    if kind is None or kind not in _RUN_EVENTS:
        return None
    cls, convert = _RUN_EVENTS[kind]
    payload = getattr(pb, kind)
    event: t.RunEvent = from_fields(
        payload,
        cls,
        run_id=pb.run_id,
        sequence=pb.sequence,
        agent_id=pb.agent_id,
        parent_run_id=pb.parent_run_id,
        **convert(payload),
    )
    return event


# -- teams and pipelines ------------------------------------------------------------------

_PARTICIPANT_ROLE = {
    collaboration_pb2.PARTICIPANT_ROLE_STEP: t.ParticipantRole.STEP,
    collaboration_pb2.PARTICIPANT_ROLE_MEMBER: t.ParticipantRole.MEMBER,
    collaboration_pb2.PARTICIPANT_ROLE_COORDINATOR: t.ParticipantRole.COORDINATOR,
}


def team_from_pb(pb: collaboration_pb2.Team) -> t.Team:
    """A Team with its bookkeeping fields."""
    return from_fields(pb, t.Team)


PipelineStepLike = t.PipelineStep | tuple[str, str] | str
"""What `run_pipeline(steps=...)` accepts per step: a PipelineStep, an
`(agent_id, template)` pair, or a bare agent id (template "{previous}")."""


def pipeline_step_to_pb(step: PipelineStepLike) -> collaboration_pb2.PipelineStep:
    """A PipelineStep message from any accepted step form."""
    if isinstance(step, t.PipelineStep):
        return collaboration_pb2.PipelineStep(
            agent_id=step.agent_id, message_template=step.message_template
        )
    if isinstance(step, str):
        return collaboration_pb2.PipelineStep(agent_id=step)
    if isinstance(step, tuple) and len(step) == 2:
        agent_id, template = step
        return collaboration_pb2.PipelineStep(agent_id=agent_id, message_template=template)
    raise TypeError(
        "a pipeline step is a PipelineStep, an (agent_id, template) pair or an agent id, "
        f"not {step!r}"
    )


def participant_from_pb(pb: collaboration_pb2.Participant) -> t.Participant:
    """A Participant (unknown roles read as UNSPECIFIED)."""
    role = _PARTICIPANT_ROLE.get(pb.role, t.ParticipantRole.UNSPECIFIED)
    return from_fields(pb, t.Participant, role=role)


def participant_result_from_pb(pb: collaboration_pb2.ParticipantResult) -> t.ParticipantResult:
    """How one participant's run ended."""
    return from_fields(
        pb,
        t.ParticipantResult,
        participant=participant_from_pb(pb.participant),
        status=run_status_from_pb(pb.status),
        usage=usage_from_pb(pb.usage),
    )


class _CollaborationHead(TypedDict):
    run_id: str
    sequence: int


def _participant_event(
    pb: collaboration_pb2.CollaborationEvent, head: _CollaborationHead
) -> t.CollaborationEvent | None:
    participant = participant_from_pb(pb.participant)
    kind = pb.WhichOneof("event")
    if kind == "participant_started":
        return from_fields(
            pb.participant_started, t.ParticipantStarted, **head, participant=participant
        )
    if kind == "run_event":
        event = event_from_pb(pb.run_event)
        if event is None:
            return None
        return t.ParticipantEvent(**head, participant=participant, event=event)
    if kind == "participant_finished":
        result = participant_result_from_pb(pb.participant_finished)
        if not pb.HasField("participant"):
            participant = result.participant
        return t.ParticipantFinished(**head, participant=participant, result=result)
    return None


def collaboration_event_from_pb(
    pb: collaboration_pb2.CollaborationEvent,
) -> t.CollaborationEvent | None:
    """A typed collaboration event; None for a kind this client does not know yet (or a
    participant's run event of such a kind)."""
    head = _CollaborationHead(run_id=pb.run_id, sequence=pb.sequence)
    kind = pb.WhichOneof("event")
    if kind == "started":
        return from_fields(pb.started, t.CollaborationStarted, **head)
    if kind == "completed":
        done = pb.completed
        results = tuple(participant_result_from_pb(r) for r in done.results)
        usage = usage_from_pb(done.usage)
        return from_fields(done, t.CollaborationCompleted, **head, results=results, usage=usage)
    return _participant_event(pb, head)
