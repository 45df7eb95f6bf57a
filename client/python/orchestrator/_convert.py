"""The one module that converts between protobuf messages and the client's domain types."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from . import types as t
from .v1 import agent_pb2, collaboration_pb2, run_pb2, session_pb2

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


def _time(message: Any, name: str) -> datetime | None:
    if not message.HasField(name):
        return None
    ts: Timestamp = getattr(message, name)
    return ts.ToDatetime(tzinfo=UTC)


def model_from_pb(pb: agent_pb2.ModelSpec) -> t.Model:
    """A Model; unset proto3 optionals become None."""
    return t.Model(
        model=pb.model,
        provider=pb.provider,
        temperature=pb.temperature if pb.HasField("temperature") else None,
        max_tokens=pb.max_tokens if pb.HasField("max_tokens") else None,
        top_p=pb.top_p if pb.HasField("top_p") else None,
        stop=tuple(pb.stop),
        seed=pb.seed if pb.HasField("seed") else None,
    )


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


def agent_from_pb(pb: agent_pb2.Agent) -> t.Agent:
    """An Agent with its bookkeeping fields."""
    return t.Agent(
        agent_id=pb.agent_id,
        system_message=pb.system_message,
        description=pb.description,
        model=model_from_pb(pb.model),
        buffer_memory=t.BufferMemory(max_messages=pb.memory.max_messages),
        tools=tuple(pb.tools),
        labels=dict(pb.labels),
        callable_agents=tuple(pb.callable_agents),
        max_model_calls=pb.max_model_calls,
        is_default=pb.is_default,
        create_time=_time(pb, "create_time"),
        update_time=_time(pb, "update_time"),
        etag=pb.etag,
    )


def message_from_pb(pb: session_pb2.Message) -> t.Message:
    """A stored message."""
    return t.Message(
        sequence=pb.sequence,
        role=_ROLE.get(pb.role, t.MessageRole.UNSPECIFIED),
        content=pb.content,
        tool_calls=tuple(
            t.ToolCall(call_id=c.call_id, name=c.name, arguments_json=c.arguments_json)
            for c in pb.tool_calls
        ),
        tool_call_id=pb.tool_call_id,
        run_id=pb.run_id,
        create_time=_time(pb, "create_time"),
    )


def session_from_pb(pb: session_pb2.Session) -> t.Session:
    """A session summary."""
    return t.Session(
        agent_id=pb.agent_id,
        session_id=pb.session_id,
        message_count=pb.message_count,
        create_time=_time(pb, "create_time"),
        update_time=_time(pb, "update_time"),
    )


def usage_from_pb(pb: run_pb2.Usage) -> t.Usage:
    """Token usage."""
    return t.Usage(pb.prompt_tokens, pb.completion_tokens, pb.total_tokens)


def run_status_from_pb(value: int) -> t.RunStatus:
    """A RunStatus (unknown future values read as UNSPECIFIED)."""
    return _RUN_STATUS.get(value, t.RunStatus.UNSPECIFIED)  # type: ignore[call-overload, no-any-return]


def run_from_pb(pb: run_pb2.Run) -> t.Run:
    """A run record."""
    return t.Run(
        run_id=pb.run_id,
        agent_id=pb.agent_id,
        session_id=pb.session_id,
        status=run_status_from_pb(pb.status),
        input=pb.input,
        output=pb.output,
        request_id=pb.request_id,
        parent_run_id=pb.parent_run_id,
        usage=usage_from_pb(pb.usage),
        error_reason=pb.error_reason,
        error_message=pb.error_message,
        create_time=_time(pb, "create_time"),
        start_time=_time(pb, "start_time"),
        end_time=_time(pb, "end_time"),
    )


def event_from_pb(pb: run_pb2.RunEvent) -> t.RunEvent | None:
    """A typed run event; None for an event kind this client does not know yet."""
    run_id, sequence, agent_id, parent = pb.run_id, pb.sequence, pb.agent_id, pb.parent_run_id
    kind = pb.WhichOneof("event")
    if kind == "run_started":
        started = pb.run_started
        return t.RunStarted(
            run_id=run_id,
            sequence=sequence,
            agent_id=agent_id,
            parent_run_id=parent,
            session_id=started.session_id,
            status=run_status_from_pb(started.status),
            replayed=started.replayed,
        )
    if kind == "text_delta":
        return t.TextDelta(
            run_id=run_id,
            sequence=sequence,
            agent_id=agent_id,
            parent_run_id=parent,
            text=pb.text_delta.text,
        )
    if kind == "message_completed":
        return t.MessageCompleted(
            run_id=run_id,
            sequence=sequence,
            agent_id=agent_id,
            parent_run_id=parent,
            message=message_from_pb(pb.message_completed.message),
        )
    if kind == "run_completed":
        done = pb.run_completed
        return t.RunCompleted(
            run_id=run_id,
            sequence=sequence,
            agent_id=agent_id,
            parent_run_id=parent,
            output=done.output,
            usage=usage_from_pb(done.usage),
            time_to_first_delta_ms=done.time_to_first_delta_ms,
            duration_ms=done.duration_ms,
        )
    if kind == "run_cancelled":
        cancelled = pb.run_cancelled
        return t.RunCancelled(
            run_id=run_id,
            sequence=sequence,
            agent_id=agent_id,
            parent_run_id=parent,
            reason=cancelled.reason,
            message=cancelled.message,
        )
    if kind == "tool_call":
        call = pb.tool_call.call
        return t.ToolCallStarted(
            run_id=run_id,
            sequence=sequence,
            agent_id=agent_id,
            parent_run_id=parent,
            call=t.ToolCall(call.call_id, call.name, call.arguments_json),
            location=_LOCATION.get(pb.tool_call.location, t.ToolLocation.UNSPECIFIED),
        )
    if kind == "tool_result":
        result = pb.tool_result
        return t.ToolCallFinished(
            run_id=run_id,
            sequence=sequence,
            agent_id=agent_id,
            parent_run_id=parent,
            call_id=result.call_id,
            name=result.name,
            output=result.output,
            error=result.error,
            duration_ms=result.duration_ms,
        )
    return None


# -- teams and pipelines ------------------------------------------------------------------

_PARTICIPANT_ROLE = {
    collaboration_pb2.PARTICIPANT_ROLE_STEP: t.ParticipantRole.STEP,
    collaboration_pb2.PARTICIPANT_ROLE_MEMBER: t.ParticipantRole.MEMBER,
    collaboration_pb2.PARTICIPANT_ROLE_COORDINATOR: t.ParticipantRole.COORDINATOR,
}


def team_from_pb(pb: collaboration_pb2.Team) -> t.Team:
    """A Team with its bookkeeping fields."""
    return t.Team(
        team_id=pb.team_id,
        members=tuple(pb.members),
        coordinator=pb.coordinator,
        description=pb.description,
        member_template=pb.member_template,
        synthesis_template=pb.synthesis_template,
        synthesis_item_template=pb.synthesis_item_template,
        max_concurrency=pb.max_concurrency,
        member_timeout_seconds=pb.member_timeout_seconds,
        create_time=_time(pb, "create_time"),
        update_time=_time(pb, "update_time"),
        etag=pb.etag,
    )


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
    return t.Participant(
        role=_PARTICIPANT_ROLE.get(pb.role, t.ParticipantRole.UNSPECIFIED),
        index=pb.index,
        agent_id=pb.agent_id,
    )


def participant_result_from_pb(pb: collaboration_pb2.ParticipantResult) -> t.ParticipantResult:
    """How one participant's run ended."""
    return t.ParticipantResult(
        participant=participant_from_pb(pb.participant),
        status=run_status_from_pb(pb.status),
        output=pb.output,
        run_id=pb.run_id,
        error_reason=pb.error_reason,
        error_message=pb.error_message,
        usage=usage_from_pb(pb.usage),
        duration_ms=pb.duration_ms,
    )


def collaboration_event_from_pb(
    pb: collaboration_pb2.CollaborationEvent,
) -> t.CollaborationEvent | None:
    """A typed collaboration event; None for a kind this client does not know yet (or a
    participant's run event of such a kind)."""
    run_id, sequence = pb.run_id, pb.sequence
    participant = participant_from_pb(pb.participant)
    kind = pb.WhichOneof("event")
    if kind == "started":
        return t.CollaborationStarted(
            run_id=run_id,
            sequence=sequence,
            session_id=pb.started.session_id,
            participant_count=pb.started.participant_count,
            team_id=pb.started.team_id,
        )
    if kind == "participant_started":
        return t.ParticipantStarted(
            run_id=run_id,
            sequence=sequence,
            participant=participant,
            message=pb.participant_started.message,
        )
    if kind == "run_event":
        event = event_from_pb(pb.run_event)
        if event is None:
            return None
        return t.ParticipantEvent(
            run_id=run_id, sequence=sequence, participant=participant, event=event
        )
    if kind == "participant_finished":
        result = participant_result_from_pb(pb.participant_finished)
        return t.ParticipantFinished(
            run_id=run_id,
            sequence=sequence,
            participant=participant if pb.HasField("participant") else result.participant,
            result=result,
        )
    if kind == "completed":
        done = pb.completed
        return t.CollaborationCompleted(
            run_id=run_id,
            sequence=sequence,
            output=done.output,
            results=tuple(participant_result_from_pb(r) for r in done.results),
            usage=usage_from_pb(done.usage),
        )
    return None
