"""Run, run and session RPCs: parse, call the core, convert."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator.v1 import run_pb2, session_pb2, tool_pb2

from ..core import events as ev
from ..core.conversations import Conversations
from ..core.errors import InvalidArgumentError
from ..core.runs import RunEngine, TurnRequest
from ..core.tool_calls import ClientToolBridge
from ..core.tool_port import ServerTool, ToolCatalog
from . import convert
from .error_mapping import abort, unary_errors
from .handlers import MalformedRequest, malformed_error
from .tenancy import tenant_of

Context = grpc.aio.ServicerContext[Any, Any]
_STREAM_END = None


def event_to_pb(event: ev.RunEvent) -> run_pb2.RunEvent:
    """A domain run event as a RunEvent message."""
    pb_event = run_pb2.RunEvent(
        run_id=event.run_id,
        sequence=event.sequence,
        agent_id=event.agent_id,
        parent_run_id=event.parent_run_id,
    )
    body = event.body
    if isinstance(body, ev.TextDelta):
        pb_event.text_delta.text = body.text
    elif isinstance(body, ev.RunStarted):
        pb_event.run_started.CopyFrom(
            run_pb2.RunStarted(
                session_id=body.session_id,
                status=convert.run_status_to_pb(body.status),
                replayed=body.replayed,
            )
        )
    elif isinstance(body, ev.MessageCompleted):
        pb_event.message_completed.message.CopyFrom(convert.message_to_pb(body.message))
    elif isinstance(body, ev.RunCompleted):
        pb_event.run_completed.CopyFrom(
            run_pb2.RunCompleted(
                output=body.output,
                usage=convert.usage_to_pb(body.usage),
                time_to_first_delta_ms=body.time_to_first_delta_ms,
                duration_ms=body.duration_ms,
            )
        )
    elif isinstance(body, ev.ToolCallStarted):
        call = body.call
        pb_event.tool_call.CopyFrom(
            run_pb2.ToolCallStarted(
                call=session_pb2.ToolCall(
                    call_id=call.call_id, name=call.name, arguments_json=call.arguments_json
                ),
                location=_LOCATIONS.get(body.location, run_pb2.TOOL_LOCATION_UNSPECIFIED),
            )
        )
    elif isinstance(body, ev.ToolCallFinished):
        pb_event.tool_result.CopyFrom(
            run_pb2.ToolCallFinished(
                call_id=body.call_id,
                name=body.name,
                output=body.output,
                error=body.error,
                duration_ms=body.duration_ms,
            )
        )
    elif isinstance(body, ev.RunCancelled):
        pb_event.run_cancelled.CopyFrom(
            run_pb2.RunCancelled(reason=body.reason, message=body.message)
        )
    return pb_event


_LOCATIONS = {
    "server": run_pb2.TOOL_LOCATION_SERVER,
    "mcp": run_pb2.TOOL_LOCATION_MCP,
    "client": run_pb2.TOOL_LOCATION_CLIENT,
    "agent": run_pb2.TOOL_LOCATION_AGENT,
}
_SOURCES = {
    "builtin": tool_pb2.TOOL_SOURCE_BUILTIN,
    "plugin": tool_pb2.TOOL_SOURCE_PLUGIN,
    "mcp": tool_pb2.TOOL_SOURCE_MCP,
}


def turn_request_from_pb(start: run_pb2.StartTurn) -> TurnRequest:
    """A StartTurn message as the core's TurnRequest."""
    return TurnRequest(
        agent_id=start.agent_id,
        message=start.message,
        session_id=start.session_id,
        request_id=start.request_id,
        wait_if_busy=start.busy_policy == run_pb2.BUSY_POLICY_ENQUEUE,
        client_tools=tuple(
            (t.name, t.description, t.parameters_json_schema) for t in start.client_tools
        ),
        max_model_calls=start.max_model_calls,
        client_tool_timeout=start.client_tool_timeout_seconds,
    )


def tool_to_pb(tool: ServerTool) -> tool_pb2.Tool:
    """A registry tool as a Tool message."""
    return tool_pb2.Tool(
        name=tool.name,
        description=tool.description,
        parameters_json_schema=json.dumps(tool.parameters, sort_keys=True),
        source=_SOURCES.get(tool.source, tool_pb2.TOOL_SOURCE_UNSPECIFIED),
        source_name=tool.source_name,
        available=tool.is_available(),
    )


def _protocol_violation(description: str) -> InvalidArgumentError:
    return InvalidArgumentError.for_field(
        "RunRequest.kind", description, reason="STREAM_PROTOCOL_VIOLATION"
    )


@dataclass
class _StreamState:
    """Per-stream bookkeeping shared by the reader and the turn loop."""

    runs: list[str] = field(default_factory=list)  # top-level runs of this stream
    bridge: ClientToolBridge = field(default_factory=ClientToolBridge)
    error: Exception | None = None
    active_run: str = ""  # the turn being streamed now
    # Starts received whose run has not begun; a cancel that names no run while the
    # stream is between turns applies to the next run that begins.
    unstarted: int = 0
    cancel_when_started: bool = False


class RunRpcs:
    """The run, run-record and session half of OrchestratorService."""

    def __init__(self, runs: RunEngine, conversations: Conversations, tools: ToolCatalog) -> None:
        self._runs = runs
        self._conversations = conversations
        self._tools = tools

    async def Run(
        self, request_iterator: AsyncIterator[run_pb2.RunRequest], context: Context
    ) -> AsyncIterator[run_pb2.RunEvent]:
        """Execute the turns the client starts on this stream, streaming their events."""
        starts: asyncio.Queue[run_pb2.StartTurn | Exception | None] = asyncio.Queue()
        stream = _StreamState()
        # The first message is read here rather than by the reader task: one task switch
        # less before the first turn starts.
        requests = aiter(request_iterator)
        try:
            first = await anext(requests)
        except StopAsyncIteration:
            return
        if self._route(first, starts, stream, first=True):
            reader = asyncio.create_task(self._read_requests(requests, starts, stream))
        else:
            reader = None
        try:
            tenant = tenant_of(context)
            remaining = context.time_remaining()
            deadline = time.monotonic() + remaining if remaining is not None else None
            while True:
                start = await starts.get()
                if start is _STREAM_END:
                    break
                if isinstance(start, Exception):
                    raise start
                async for event in self._runs.execute(
                    tenant, turn_request_from_pb(start), deadline=deadline, bridge=stream.bridge
                ):
                    if event.sequence == 1 and not event.parent_run_id:
                        stream.runs.append(event.run_id)
                        stream.active_run = event.run_id
                        stream.unstarted -= 1
                        if stream.cancel_when_started:
                            # A cancel arrived before the run had an id: apply it now.
                            stream.cancel_when_started = False
                            self._runs.cancel_for_stream(
                                event.run_id, "the client cancelled the run"
                            )
                    yield event_to_pb(event)
                if not stream.active_run:
                    stream.unstarted -= 1  # the start failed before its run began
                stream.active_run = ""
                if stream.error is not None:
                    raise stream.error
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await abort(context, error)
        finally:
            if reader is not None:
                reader.cancel()

    async def _read_requests(
        self,
        request_iterator: AsyncIterator[run_pb2.RunRequest],
        starts: asyncio.Queue[run_pb2.StartTurn | Exception | None],
        stream: _StreamState,
    ) -> None:
        """Route the client's messages after the first until the stream ends."""
        try:
            async for request in request_iterator:
                if not self._route(request, starts, stream, first=False):
                    return
        except Exception as error:
            starts.put_nowait(error)
        finally:
            starts.put_nowait(_STREAM_END)

    def _route(
        self,
        request: run_pb2.RunRequest | MalformedRequest,
        starts: asyncio.Queue[run_pb2.StartTurn | Exception | None],
        stream: _StreamState,
        *,
        first: bool,
    ) -> bool:
        """Route one client message: a start to the turn queue, a cancel to the engine, a
        tool result to the call waiting for it. False when the stream must end."""
        if isinstance(request, MalformedRequest):
            starts.put_nowait(malformed_error(request))
            return False
        kind = request.WhichOneof("kind")
        if kind == "start":
            stream.unstarted += 1
            starts.put_nowait(request.start)
        elif kind in ("cancel", "tool_result") and first:
            starts.put_nowait(_protocol_violation("the first message must be a start"))
            return False
        elif kind == "cancel":
            if not request.cancel.run_id and not stream.active_run and stream.unstarted:
                # The turn has no run id yet: cancel it as soon as it has one.
                stream.cancel_when_started = True
                return True
            run_id = request.cancel.run_id or stream.active_run
            if run_id in stream.runs:
                self._runs.cancel_for_stream(run_id, "the client cancelled the run")
        elif kind == "tool_result":
            result = request.tool_result
            try:
                stream.bridge.deliver(result.call_id, result.output, result.error)
            except InvalidArgumentError as error:
                # A result nobody waits for is a client bug: end the stream with it once
                # the current turn has been cancelled.
                stream.error = error
                if stream.runs:
                    self._runs.cancel_for_stream(stream.runs[-1], error.message)
                starts.put_nowait(error)
                return False
        else:
            starts.put_nowait(_protocol_violation("the message sets no known kind"))
            return False
        return True

    @unary_errors
    async def ListTools(
        self, request: pb.ListToolsRequest, context: Context
    ) -> pb.ListToolsResponse:
        """Every server tool with its schema and origin."""
        return pb.ListToolsResponse(tools=[tool_to_pb(t) for t in self._tools.all()])

    @unary_errors
    async def GetRun(self, request: pb.GetRunRequest, context: Context) -> pb.GetRunResponse:
        """Return one run."""
        run = await self._runs.get(tenant_of(context), request.run_id)
        return pb.GetRunResponse(run=convert.run_to_pb(run))

    @unary_errors
    async def ListRuns(self, request: pb.ListRunsRequest, context: Context) -> pb.ListRunsResponse:
        """List runs, newest first."""
        page = await self._runs.list(
            tenant_of(context),
            agent_id=request.agent_id,
            session_id=request.session_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListRunsResponse(
            runs=[convert.run_to_pb(r) for r in page.items], next_page_token=page.next_page_token
        )

    @unary_errors
    async def CancelRun(
        self, request: pb.CancelRunRequest, context: Context
    ) -> pb.CancelRunResponse:
        """Cancel a run from any connection."""
        run = await self._runs.cancel(tenant_of(context), request.run_id)
        return pb.CancelRunResponse(run=convert.run_to_pb(run))

    @unary_errors
    async def ListSessions(
        self, request: pb.ListSessionsRequest, context: Context
    ) -> pb.ListSessionsResponse:
        """List an agent's sessions."""
        page = await self._conversations.list_sessions(
            tenant_of(context),
            request.agent_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListSessionsResponse(
            sessions=[convert.session_to_pb(s) for s in page.items],
            next_page_token=page.next_page_token,
        )

    @unary_errors
    async def ListMessages(
        self, request: pb.ListMessagesRequest, context: Context
    ) -> pb.ListMessagesResponse:
        """List a session's messages."""
        page = await self._conversations.list_messages(
            tenant_of(context),
            request.agent_id,
            request.session_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListMessagesResponse(
            messages=[convert.message_to_pb(m) for m in page.items],
            next_page_token=page.next_page_token,
        )

    @unary_errors
    async def DeleteSession(
        self, request: pb.DeleteSessionRequest, context: Context
    ) -> pb.DeleteSessionResponse:
        """Clear a conversation."""
        deleted = await self._conversations.delete_session(
            tenant_of(context), request.agent_id, request.session_id
        )
        return pb.DeleteSessionResponse(deleted_messages=deleted)
