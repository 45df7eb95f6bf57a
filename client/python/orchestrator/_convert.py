"""The one module that converts between protobuf messages and the client's domain types."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from . import types as t
from .v1 import agent_pb2, run_pb2, session_pb2

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
