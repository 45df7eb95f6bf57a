"""The run and session calls of AsyncOrchestrator: turns, chats, run records, sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import grpc

from . import _convert, _tools
from . import types as t
from ._chat import ChatSession
from ._connection import Connection
from ._resume import RESUME_WINDOW_SECONDS
from ._signatures import same_parameters
from ._stream import FollowedRun, RunStream
from .errors import InternalError, OrchestratorError, error_class
from .v1 import orchestrator_service_pb2 as pb

_CANCEL_CODES = {
    "DEADLINE_EXCEEDED": grpc.StatusCode.DEADLINE_EXCEEDED,
    "RUN_INTERRUPTED": grpc.StatusCode.UNAVAILABLE,
}


def cancelled_error(event: t.RunCancelled) -> OrchestratorError:
    """The error `run` raises for a RunCancelled event (DeadlineExceeded for a deadline)."""
    code = _CANCEL_CODES.get(event.reason, grpc.StatusCode.CANCELLED)
    return error_class(code, event.reason)(
        event.message or "the run was cancelled",
        code=code,
        reason=event.reason,
        metadata={"run_id": event.run_id},
    )


class RunCalls(Connection):
    """The calls that run turns and read runs and sessions (see AsyncOrchestrator)."""

    def stream(
        self,
        message: str,
        agent_id: str | None = None,
        *,
        session_id: str | None = None,
        request_id: str | None = None,
        wait_if_busy: bool = False,
        timeout: float | None = None,
        tools: Iterable[_tools.ToolLike] | None = None,
        tool_timeout: float | None = None,
        resume: bool = True,
        detach: bool = False,
    ) -> RunStream:
        """Run one turn and stream its typed events (`async for`; blocking client: `for`).

        `agent_id` None means the default agent; `session_id` None the agent's default
        session. `request_id` makes the start idempotent: repeating it replays the run.
        `wait_if_busy` queues behind a turn running in the session instead of raising
        SessionBusy. `timeout` is a gRPC deadline for the whole run, enforced by the
        server too (not a local wait). The stream ends after RunCompleted or
        RunCancelled; a failed run raises its typed error.

        `tools` are client-side tools: Python functions (sync or async) or `tool(...)`
        objects, declared to the model with a schema from their type hints and
        docstring. When the model calls one, the stream runs it while you keep reading
        (calls of one model response run concurrently) and sends its return value, or
        the exception's text as the error the model sees; the ToolCallStarted and
        ToolCallFinished events still arrive. `tool_timeout` is how long the server waits
        for each result (default 60 s).

        `resume` (default): a dropped connection is resumed over a new one (FollowRun
        from the last event seen): every event arrives once, the run completes once (the
        server keeps it 30 s). Leaving the stream early still cancels the run;
        `resume=False` lets the server cancel it when the connection drops. `detach`: the
        run goes on when this stream is left or this process exits (`follow(run_id)`
        from anywhere, `cancel_run` to stop it).
        """
        by_name = _tools.client_tools(tools)
        start = _convert.start_turn(
            message,
            agent_id=agent_id or "",
            session_id=session_id or "",
            request_id=request_id,
            wait_if_busy=wait_if_busy,
            tools=by_name,
            tool_timeout=tool_timeout,
            resume_window=RESUME_WINDOW_SECONDS if resume else 0.0,
            detach=detach,
        )
        deadline = timeout or self._timeout
        resumption = self._resumption(deadline) if resume or detach else None
        return RunStream(self._open_run_call(deadline), start, by_name, resumption, detached=detach)

    @same_parameters(stream)
    async def run(self, *args: Any, **kwargs: Any) -> str:
        """Run one turn and return the final answer (the original `await orchestrator.run`).

        Takes the arguments of `stream`; `tools` are Python functions the model may call,
        run by this client during the turn. Raises the run's typed error;
        RunCancelledError when it was cancelled, and DeadlineExceeded when its deadline
        cancelled it.
        """
        async with self.stream(*args, **kwargs) as events:
            async for event in events:
                if not events.is_own_end(event):
                    continue
                if isinstance(event, t.RunCompleted):
                    return event.output
                if isinstance(event, t.RunCancelled):
                    raise cancelled_error(event)
        raise InternalError("the run's stream ended without a result")

    def chat(
        self,
        agent_id: str | None = None,
        *,
        session_id: str | None = None,
        wait_if_busy: bool = False,
        tools: Iterable[_tools.ToolLike] | None = None,
        tool_timeout: float | None = None,
        resume: bool = True,
    ) -> ChatSession:
        """A multi-turn conversation on one Run stream: `[async] with client.chat(...) as chat`.

        `chat.send(message)` starts a turn and returns its events; `chat.cancel()` cancels
        the turn in progress. Chats have no default deadline: they stay open while idle.
        `tools` are client-side tools offered in every turn, and `resume` applies to every
        turn (see `stream`).
        """
        return ChatSession(
            self._open_run_call(None),
            agent_id or "",
            session_id or "",
            wait_if_busy,
            _tools.client_tools(tools),
            tool_timeout,
            self._resumption(None) if resume else None,
        )

    def follow(
        self,
        run_id: str,
        *,
        after_sequence: int = 0,
        tools: Iterable[_tools.ToolLike] | None = None,
        timeout: float | None = None,
    ) -> FollowedRun:
        """Follow a run from any connection or process: its events after
        `after_sequence` (stored ones first, then live ones) until it ends; a failed run
        raises its typed error. Works for runs started elsewhere (a detached run, a
        caller that went away) and for finished runs until the server's journal drops
        their events (RunEventsUnavailable). `tools` answer the run's client-tool calls
        (a call it still waits for is sent to each new follower). Resumes across dropped
        connections; leaving early leaves the run alone (`cancel()` cancels it).
        """
        deadline = timeout or self._timeout
        return FollowedRun(
            run_id, after_sequence, self._resumption(deadline), _tools.client_tools(tools)
        )

    async def get_run(self, run_id: str) -> t.Run:
        """One run record (RunNotFound if there is none)."""
        response = await self._unary(self._stub.GetRun, pb.GetRunRequest(run_id=run_id))
        return _convert.run_from_pb(response.run)

    async def iter_runs(
        self,
        agent_id: str | None = None,
        session_id: str | None = None,
        *,
        page_size: int = 0,
    ) -> AsyncIterator[t.Run]:
        """Runs newest first, optionally of one agent (and one of its sessions)."""
        request = pb.ListRunsRequest(
            agent_id=agent_id or "", session_id=session_id or "", page_size=page_size
        )
        pages = self._paginate(
            self._stub.ListRuns, request, lambda r: map(_convert.run_from_pb, r.runs)
        )
        async for run in pages:
            yield run

    async def list_runs(
        self,
        agent_id: str | None = None,
        session_id: str | None = None,
        *,
        limit: int | None = None,
        page_size: int = 0,
    ) -> list[t.Run]:
        """Runs newest first (at most `limit`), optionally of one agent and session."""
        runs: list[t.Run] = []
        if limit is not None and limit <= 0:
            return runs
        async for run in self.iter_runs(agent_id, session_id, page_size=page_size):
            runs.append(run)
            if limit is not None and len(runs) >= limit:
                break
        return runs

    async def cancel_run(self, run_id: str) -> t.Run:
        """Cancel a queued or running run from anywhere; returns the run afterwards."""
        response = await self._unary(self._stub.CancelRun, pb.CancelRunRequest(run_id=run_id))
        return _convert.run_from_pb(response.run)

    async def list_sessions(self, agent_id: str, *, page_size: int = 0) -> list[t.Session]:
        """An agent's sessions (conversations), in id order."""
        request = pb.ListSessionsRequest(agent_id=agent_id, page_size=page_size)
        pages = self._paginate(
            self._stub.ListSessions, request, lambda r: map(_convert.session_from_pb, r.sessions)
        )
        return [session async for session in pages]

    async def list_messages(
        self, agent_id: str, session_id: str | None = None, *, page_size: int = 0
    ) -> list[t.Message]:
        """The messages of a session (default: the agent's default session), oldest first."""
        request = pb.ListMessagesRequest(
            agent_id=agent_id, session_id=session_id or "", page_size=page_size
        )
        pages = self._paginate(
            self._stub.ListMessages, request, lambda r: map(_convert.message_from_pb, r.messages)
        )
        return [message async for message in pages]

    async def delete_session(self, agent_id: str, session_id: str | None = None) -> int:
        """Clear a conversation; returns how many messages were deleted."""
        response = await self._unary(
            self._stub.DeleteSession,
            pb.DeleteSessionRequest(agent_id=agent_id, session_id=session_id or ""),
        )
        return response.deleted_messages
