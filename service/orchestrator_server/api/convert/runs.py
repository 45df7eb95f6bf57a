"""Run messages <-> domain runs: run records, run events, and the commands of a Run
stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator.v1 import run_pb2, session_pb2

from ...core import events as ev
from ...core import types
from ...core.errors import InvalidArgumentError
from ...core.follow_stream import FollowCommand, FollowStart
from ...core.run_stream import CancelTurn, StreamCommand, ToolResult, protocol_violation
from .common import run_status_to_pb, timestamp, usage_to_pb
from .sessions import message_to_pb

_LOCATIONS = {
    "server": run_pb2.TOOL_LOCATION_SERVER,
    "mcp": run_pb2.TOOL_LOCATION_MCP,
    "client": run_pb2.TOOL_LOCATION_CLIENT,
    "agent": run_pb2.TOOL_LOCATION_AGENT,
}


def run_to_pb(run: types.Run) -> run_pb2.Run:
    """A run record."""
    return run_pb2.Run(
        run_id=run.run_id,
        agent_id=run.agent_id,
        session_id=run.session_id,
        status=run_status_to_pb(run.status),
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
        owner=run.owner,
        trace_id=run.trace_id,
    )


_BUSY_POLICIES = {
    run_pb2.BUSY_POLICY_UNSPECIFIED: (False, False),
    run_pb2.BUSY_POLICY_REJECT: (False, False),
    run_pb2.BUSY_POLICY_ENQUEUE: (True, False),
    run_pb2.BUSY_POLICY_INTERRUPT: (True, True),
}
_DISCONNECT_POLICIES = {
    run_pb2.DISCONNECT_POLICY_UNSPECIFIED: False,
    run_pb2.DISCONNECT_POLICY_CANCEL: False,
    run_pb2.DISCONNECT_POLICY_CONTINUE: True,
}


def _known(value: int, known: dict[Any, Any], field: str) -> Any:
    """The meaning of an enum value; INVALID_ARGUMENT for a number the contract does not
    define (proto3 keeps unknown numbers)."""
    if value not in known:
        raise InvalidArgumentError.for_field(field, f"unknown value {value}")
    return known[value]


def turn_request_from_pb(start: run_pb2.StartTurn) -> types.TurnRequest:
    """A StartTurn message as the core's TurnRequest."""
    wait, interrupt = _known(start.busy_policy, _BUSY_POLICIES, "start.busy_policy")
    return types.TurnRequest(
        agent_id=start.agent_id,
        message=start.message,
        session_id=start.session_id,
        request_id=start.request_id,
        wait_if_busy=wait,
        interrupt_if_busy=interrupt,
        continue_on_disconnect=_known(
            start.on_disconnect, _DISCONNECT_POLICIES, "start.on_disconnect"
        ),
        resume_window=start.resume_window_seconds,
        client_tools=tuple(
            (t.name, t.description, t.parameters_json_schema) for t in start.client_tools
        ),
        max_model_calls=start.max_model_calls,
        client_tool_timeout=start.client_tool_timeout_seconds,
    )


def _cancel_or_tool_result(kind: str | None, request: Any) -> CancelTurn | ToolResult:
    """The commands Run and FollowRun streams share (their `cancel` and `tool_result`)."""
    if kind == "cancel":
        return CancelTurn(request.cancel.run_id)
    if kind == "tool_result":
        result = request.tool_result
        return ToolResult(result.call_id, result.output, result.error)
    field = f"{type(request).__name__}.kind"
    raise protocol_violation("the message sets no known kind", field)


def command_from_pb(request: run_pb2.RunRequest) -> StreamCommand:
    """One client message of a Run stream as a stream command."""
    kind = request.WhichOneof("kind")
    if kind == "start":
        return turn_request_from_pb(request.start)
    return _cancel_or_tool_result(kind, request)


async def commands_from_pb(
    requests: AsyncIterator[run_pb2.RunRequest],
) -> AsyncIterator[StreamCommand]:
    """The client messages of a Run stream as stream commands."""
    async for request in requests:
        yield command_from_pb(request)


def follow_command_from_pb(request: pb.FollowRunRequest) -> FollowCommand:
    """One client message of a FollowRun stream as a follow command."""
    kind = request.WhichOneof("kind")
    if kind == "start":
        return FollowStart(request.start.run_id, request.start.after_sequence)
    return _cancel_or_tool_result(kind, request)


async def follow_commands_from_pb(
    requests: AsyncIterator[pb.FollowRunRequest],
) -> AsyncIterator[FollowCommand]:
    """The client messages of a FollowRun stream as follow commands."""
    async for request in requests:
        yield follow_command_from_pb(request)


def _run_started(pb: run_pb2.RunEvent, body: ev.RunStarted) -> None:
    started = pb.run_started
    started.session_id = body.session_id
    started.status = run_status_to_pb(body.status)
    started.replayed = body.replayed


def _text_delta(pb: run_pb2.RunEvent, body: ev.TextDelta) -> None:
    pb.text_delta.text = body.text


def _message_completed(pb: run_pb2.RunEvent, body: ev.MessageCompleted) -> None:
    pb.message_completed.message.CopyFrom(message_to_pb(body.message))


def _run_completed(pb: run_pb2.RunEvent, body: ev.RunCompleted) -> None:
    pb.run_completed.CopyFrom(
        run_pb2.RunCompleted(
            output=body.output,
            usage=usage_to_pb(body.usage),
            time_to_first_delta_ms=body.time_to_first_delta_ms,
            duration_ms=body.duration_ms,
        )
    )


def _tool_call(pb: run_pb2.RunEvent, body: ev.ToolCallStarted) -> None:
    call = body.call
    pb.tool_call.call.CopyFrom(
        session_pb2.ToolCall(
            call_id=call.call_id, name=call.name, arguments_json=call.arguments_json
        )
    )
    pb.tool_call.location = _LOCATIONS.get(body.location, run_pb2.TOOL_LOCATION_UNSPECIFIED)


def _tool_result(pb: run_pb2.RunEvent, body: ev.ToolCallFinished) -> None:
    result = pb.tool_result
    result.call_id, result.name, result.output = body.call_id, body.name, body.output
    result.error, result.duration_ms = body.error, body.duration_ms


def _run_cancelled(pb: run_pb2.RunEvent, body: ev.RunCancelled) -> None:
    pb.run_cancelled.reason = body.reason
    pb.run_cancelled.message = body.message


# How each event body fills its RunEvent field.
_BODY_TO_PB: dict[type[Any], Callable[[run_pb2.RunEvent, Any], None]] = {
    ev.RunStarted: _run_started,
    ev.TextDelta: _text_delta,
    ev.MessageCompleted: _message_completed,
    ev.RunCompleted: _run_completed,
    ev.ToolCallStarted: _tool_call,
    ev.ToolCallFinished: _tool_result,
    ev.RunCancelled: _run_cancelled,
}


def event_to_pb(event: ev.RunEvent) -> run_pb2.RunEvent:
    """A domain run event as a RunEvent message."""
    pb = run_pb2.RunEvent(
        run_id=event.run_id,
        sequence=event.sequence,
        agent_id=event.agent_id,
        parent_run_id=event.parent_run_id,
    )
    _BODY_TO_PB[type(event.body)](pb, event.body)
    return pb
