"""The one place that converts between protobuf messages and domain types."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.timestamp_pb2 import Timestamp

from orchestrator.v1 import agent_pb2, collaboration_pb2, run_pb2, session_pb2

from ..core import collaboration_types as collab
from ..core import types

_ROLE_TO_PB = {
    types.Role.USER: session_pb2.MESSAGE_ROLE_USER,
    types.Role.ASSISTANT: session_pb2.MESSAGE_ROLE_ASSISTANT,
    types.Role.TOOL: session_pb2.MESSAGE_ROLE_TOOL,
}
_STATUS_TO_PB = {
    types.RunStatus.QUEUED: run_pb2.RUN_STATUS_QUEUED,
    types.RunStatus.RUNNING: run_pb2.RUN_STATUS_RUNNING,
    types.RunStatus.COMPLETED: run_pb2.RUN_STATUS_COMPLETED,
    types.RunStatus.FAILED: run_pb2.RUN_STATUS_FAILED,
    types.RunStatus.CANCELLED: run_pb2.RUN_STATUS_CANCELLED,
    types.RunStatus.INTERRUPTED: run_pb2.RUN_STATUS_INTERRUPTED,
}


def timestamp(seconds: float | None) -> Timestamp | None:
    """A protobuf Timestamp from Unix seconds (None stays unset)."""
    if seconds is None:
        return None
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def model_spec_from_pb(pb: agent_pb2.ModelSpec) -> types.ModelSpec:
    """Domain ModelSpec; proto3 `optional` presence becomes None."""
    return types.ModelSpec(
        provider=pb.provider,
        model=pb.model,
        temperature=pb.temperature if pb.HasField("temperature") else None,
        max_tokens=pb.max_tokens if pb.HasField("max_tokens") else None,
        top_p=pb.top_p if pb.HasField("top_p") else None,
        stop=tuple(pb.stop),
        seed=pb.seed if pb.HasField("seed") else None,
    )


def agent_spec_from_pb(pb: agent_pb2.Agent) -> types.AgentSpec:
    """The caller-set fields of an Agent message (output-only fields are ignored)."""
    return types.AgentSpec(
        system_message=pb.system_message,
        description=pb.description,
        model=model_spec_from_pb(pb.model),
        memory=types.MemoryConfig(max_messages=pb.memory.max_messages),
        tools=tuple(pb.tools),
        labels=dict(pb.labels),
        callable_agents=tuple(pb.callable_agents),
        max_model_calls=pb.max_model_calls,
    )


def model_spec_to_pb(spec: types.ModelSpec) -> agent_pb2.ModelSpec:
    """ModelSpec message; unset optionals stay unset."""
    pb = agent_pb2.ModelSpec(provider=spec.provider, model=spec.model, stop=spec.stop)
    if spec.temperature is not None:
        pb.temperature = spec.temperature
    if spec.max_tokens is not None:
        pb.max_tokens = spec.max_tokens
    if spec.top_p is not None:
        pb.top_p = spec.top_p
    if spec.seed is not None:
        pb.seed = spec.seed
    return pb


def agent_to_pb(agent: types.Agent) -> agent_pb2.Agent:
    """Agent message with its bookkeeping fields."""
    spec = agent.spec
    return agent_pb2.Agent(
        agent_id=agent.agent_id,
        system_message=spec.system_message,
        description=spec.description,
        model=model_spec_to_pb(spec.model),
        memory=agent_pb2.MemoryConfig(max_messages=spec.memory.max_messages),
        tools=spec.tools,
        labels=spec.labels,
        callable_agents=spec.callable_agents,
        max_model_calls=spec.max_model_calls,
        is_default=agent.is_default,
        create_time=timestamp(agent.create_time),
        update_time=timestamp(agent.update_time),
        etag=agent.etag,
    )


def message_to_pb(message: types.Message) -> session_pb2.Message:
    """A stored message."""
    return session_pb2.Message(
        sequence=message.sequence,
        role=_ROLE_TO_PB[message.role],
        content=message.content,
        tool_calls=[
            session_pb2.ToolCall(call_id=c.call_id, name=c.name, arguments_json=c.arguments_json)
            for c in message.tool_calls
        ],
        tool_call_id=message.tool_call_id,
        run_id=message.run_id,
        create_time=timestamp(message.create_time),
    )


def session_to_pb(session: types.Session) -> session_pb2.Session:
    """A session summary."""
    return session_pb2.Session(
        agent_id=session.agent_id,
        session_id=session.session_id,
        message_count=session.message_count,
        create_time=timestamp(session.create_time),
        update_time=timestamp(session.update_time),
    )


def usage_to_pb(usage: types.Usage) -> run_pb2.Usage:
    """Token usage."""
    return run_pb2.Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


def run_status_to_pb(status: types.RunStatus) -> run_pb2.RunStatus.ValueType:
    """RunStatus enum value."""
    return _STATUS_TO_PB[status]


def run_to_pb(run: types.Run) -> run_pb2.Run:
    """A run record."""
    return run_pb2.Run(
        run_id=run.run_id,
        agent_id=run.agent_id,
        session_id=run.session_id,
        status=_STATUS_TO_PB[run.status],
        request_id=run.request_id,
        parent_run_id=run.parent_run_id,
        input=run.input,
        output=run.output,
        usage=usage_to_pb(run.usage),
        error_reason=run.error_reason,
        error_message=run.error_message,
        create_time=timestamp(run.create_time),
        start_time=timestamp(run.start_time),
        end_time=timestamp(run.end_time),
    )


def team_spec_from_pb(pb: collaboration_pb2.Team) -> collab.TeamSpec:
    """The caller-set fields of a Team message (output-only fields are ignored)."""
    return collab.TeamSpec(
        members=tuple(pb.members),
        description=pb.description,
        coordinator=pb.coordinator,
        member_template=pb.member_template,
        synthesis_template=pb.synthesis_template,
        synthesis_item_template=pb.synthesis_item_template,
        max_concurrency=pb.max_concurrency,
        member_timeout_seconds=pb.member_timeout_seconds,
    )


def team_to_pb(team: collab.Team) -> collaboration_pb2.Team:
    """Team message with its bookkeeping fields."""
    spec = team.spec
    return collaboration_pb2.Team(
        team_id=team.team_id,
        description=spec.description,
        members=spec.members,
        coordinator=spec.coordinator,
        member_template=spec.member_template,
        synthesis_template=spec.synthesis_template,
        synthesis_item_template=spec.synthesis_item_template,
        max_concurrency=spec.max_concurrency,
        member_timeout_seconds=spec.member_timeout_seconds,
        create_time=timestamp(team.create_time),
        update_time=timestamp(team.update_time),
        etag=team.etag,
    )


def pipeline_steps_from_pb(
    steps: Iterable[collaboration_pb2.PipelineStep],
) -> list[collab.PipelineStep]:
    """The steps of a RunPipelineRequest."""
    return [collab.PipelineStep(s.agent_id, s.message_template) for s in steps]


_PARTICIPANT_ROLE_TO_PB = {
    collab.ParticipantRole.STEP: collaboration_pb2.PARTICIPANT_ROLE_STEP,
    collab.ParticipantRole.MEMBER: collaboration_pb2.PARTICIPANT_ROLE_MEMBER,
    collab.ParticipantRole.COORDINATOR: collaboration_pb2.PARTICIPANT_ROLE_COORDINATOR,
}


def participant_to_pb(participant: collab.Participant) -> collaboration_pb2.Participant:
    """Which step, member or coordinator."""
    return collaboration_pb2.Participant(
        role=_PARTICIPANT_ROLE_TO_PB[participant.role],
        index=participant.index,
        agent_id=participant.agent_id,
    )


def participant_result_to_pb(
    result: collab.ParticipantResult,
) -> collaboration_pb2.ParticipantResult:
    """How one participant ended."""
    return collaboration_pb2.ParticipantResult(
        participant=participant_to_pb(result.participant),
        run_id=result.run_id,
        status=_STATUS_TO_PB[result.status],
        output=result.output,
        error_reason=result.error_reason,
        error_message=result.error_message,
        usage=usage_to_pb(result.usage),
        duration_ms=result.duration_ms,
    )
