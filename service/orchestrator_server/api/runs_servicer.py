"""The Run stream and the run-record, session and tool RPCs: parse, call the core,
convert (errors are mapped by the method handlers, `handlers.py`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

import grpc

from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator.v1 import run_pb2

from ..core.conversations import Conversations
from ..core.follow import RunFollowing
from ..core.follow_stream import FollowStream
from ..core.run_records import RunRecords
from ..core.run_stream import RunStream
from ..core.runs import RunEngine
from ..core.tool_port import ToolCatalog
from .call_context import deadline_of, tenant_of
from .convert.runs import commands_from_pb, event_to_pb, follow_commands_from_pb, run_to_pb
from .convert.sessions import message_to_pb, session_to_pb
from .convert.tools import tool_to_pb

Context = grpc.aio.ServicerContext[Any, Any]


class RunRpcs:
    """The run, run-record, session and tool part of OrchestratorService."""

    def __init__(
        self,
        runs: RunEngine,
        records: RunRecords,
        following: RunFollowing,
        conversations: Conversations,
        tools: ToolCatalog,
        max_pending_starts: int,
    ) -> None:
        self._runs = runs
        self._records = records
        self._following = following
        self._conversations = conversations
        self._tools = tools
        self._max_pending_starts = max_pending_starts

    async def Run(
        self, request_iterator: AsyncIterator[run_pb2.RunRequest], context: Context
    ) -> AsyncGenerator[run_pb2.RunEvent, None]:
        """Execute the turns the client starts on this stream, streaming their events."""
        stream = RunStream(
            self._runs,
            tenant_of(context),
            deadline=deadline_of(context),
            max_pending_starts=self._max_pending_starts,
        )
        async with aclosing(stream.run(commands_from_pb(request_iterator))) as items:
            async for event in items:
                yield event_to_pb(event)

    async def FollowRun(
        self, request_iterator: AsyncIterator[pb.FollowRunRequest], context: Context
    ) -> AsyncGenerator[run_pb2.RunEvent, None]:
        """Stream a run's events after a sequence number, from any replica."""
        stream = FollowStream(self._following, self._records, tenant_of(context))
        async with aclosing(stream.run(follow_commands_from_pb(request_iterator))) as items:
            async for event in items:
                yield event_to_pb(event)

    async def ListTools(
        self, request: pb.ListToolsRequest, context: Context
    ) -> pb.ListToolsResponse:
        """Every server tool with its schema and origin."""
        return pb.ListToolsResponse(tools=[tool_to_pb(t) for t in self._tools.all()])

    async def GetRun(self, request: pb.GetRunRequest, context: Context) -> pb.GetRunResponse:
        """Return one run."""
        run = await self._records.get(tenant_of(context), request.run_id)
        return pb.GetRunResponse(run=run_to_pb(run))

    async def ListRuns(self, request: pb.ListRunsRequest, context: Context) -> pb.ListRunsResponse:
        """List runs, newest first."""
        page = await self._records.list(
            tenant_of(context),
            agent_id=request.agent_id,
            session_id=request.session_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        runs = [run_to_pb(r) for r in page.items]
        return pb.ListRunsResponse(runs=runs, next_page_token=page.next_page_token)

    async def CancelRun(
        self, request: pb.CancelRunRequest, context: Context
    ) -> pb.CancelRunResponse:
        """Cancel a run from any connection."""
        run = await self._records.cancel(tenant_of(context), request.run_id)
        return pb.CancelRunResponse(run=run_to_pb(run))

    async def ListSessions(
        self, request: pb.ListSessionsRequest, context: Context
    ) -> pb.ListSessionsResponse:
        """List an agent's sessions."""
        tenant = tenant_of(context)
        page = await self._conversations.list_sessions(
            tenant, request.agent_id, page_size=request.page_size, page_token=request.page_token
        )
        sessions = [session_to_pb(s) for s in page.items]
        return pb.ListSessionsResponse(sessions=sessions, next_page_token=page.next_page_token)

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
        messages = [message_to_pb(m) for m in page.items]
        return pb.ListMessagesResponse(messages=messages, next_page_token=page.next_page_token)

    async def DeleteSession(
        self, request: pb.DeleteSessionRequest, context: Context
    ) -> pb.DeleteSessionResponse:
        """Clear a conversation."""
        deleted = await self._conversations.delete_session(
            tenant_of(context), request.agent_id, request.session_id
        )
        return pb.DeleteSessionResponse(deleted_messages=deleted)
