"""Run streams: one turn (`RunStream`) or a multi-turn conversation (`ChatSession`).

The request side of a Run stream is fed from a queue and stays open until the turn's
final event, so that the client can still send on it while a turn runs: a cancel now,
and later the results of client-side tools. A turn that fails ends the whole stream with
its status (see the Run RPC), so a chat opens a new stream for the next turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import grpc

from . import _convert
from . import types as t
from ._tools import ClientTool
from .errors import RunCancelledError, from_rpc_error
from .v1 import collaboration_pb2, run_pb2
from .v1 import orchestrator_service_pb2_grpc as pb_grpc


class _RunCall:
    """One open Run RPC: requests go through a queue, events come back typed."""

    def __init__(
        self,
        stub: pb_grpc.OrchestratorServiceAsyncStub,
        metadata: Sequence[tuple[str, str]],
        timeout: float | None,
    ) -> None:
        self._requests: asyncio.Queue[run_pb2.RunRequest | None] = asyncio.Queue()
        self._call: grpc.aio.StreamStreamCall[run_pb2.RunRequest, run_pb2.RunEvent] = stub.Run(
            self._request_stream(), metadata=metadata, timeout=timeout
        )
        self.ended = False

    async def _request_stream(self) -> AsyncIterator[run_pb2.RunRequest]:
        while True:
            request = await self._requests.get()
            if request is None:
                return
            yield request

    def send(self, request: run_pb2.RunRequest) -> None:
        """Queue a message for the server (never blocks)."""
        self._requests.put_nowait(request)

    def half_close(self) -> None:
        """End the request side: the server finishes the turns in flight, then the stream."""
        self._requests.put_nowait(None)

    async def next_event(self) -> t.RunEvent | None:
        """The next event, None at the end of the stream; a failed stream raises typed."""
        while not self.ended:
            try:
                message = await self._call.read()
            except grpc.RpcError as error:
                self.ended = True
                raise from_rpc_error(error) from None
            if message is grpc.aio.EOF:
                self.ended = True
                return None
            assert isinstance(message, run_pb2.RunEvent)
            event = _convert.event_from_pb(message)
            if event is not None:
                return event
        return None

    async def finish(self) -> None:
        """Half-close and read to the end, so the call ends with its status, not a cancel."""
        self.half_close()
        try:
            while await self.next_event() is not None:
                pass
        except Exception:
            # The turn this call was opened for is over; a late error has nobody to go to.
            self.abort()

    def abort(self) -> None:
        """Cancel the RPC (the server cancels a turn still running)."""
        self.ended = True
        self._call.cancel()


OpenCall = Callable[[], _RunCall]


class RunStream:
    """The events of one turn: `async for event in stream`; `cancel()` asks the server to stop.

    Use it as an async context manager (or exhaust it) so that an abandoned stream
    cancels its run on the server instead of leaving it to finish unobserved.
    """

    def __init__(
        self,
        open_call: OpenCall,
        start: run_pb2.StartTurn,
        tools: Mapping[str, ClientTool] | None = None,
    ) -> None:
        self._open_call = open_call
        self._start = start
        self._call: _RunCall | None = None
        self._done = False
        self._cancel_requested = False
        self._tools = dict(tools or {})
        self._tool_tasks: set[asyncio.Task[None]] = set()
        self._replayed = False
        self.run_id = ""
        """The run's id, known once its RunStarted event arrived."""
        self.session_id = start.session_id

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> t.RunEvent:
        if self._done:
            raise StopAsyncIteration
        if self._call is None:
            self._call = self._open_call()
            self._call.send(run_pb2.RunRequest(start=self._start))
        try:
            event = await self._call.next_event()
        except BaseException:
            self._done = True
            self._stop_tools()
            self._call.abort()
            raise
        if event is None:
            self._done = True
            self._stop_tools()
            raise StopAsyncIteration
        if self._is_own_start(event):
            if self._cancel_requested:
                self._send_cancel()
        elif self.is_own_end(event):
            self._done = True
            self._stop_tools()
            await self._call.finish()
        else:
            self._maybe_run_tool(event)
        return event

    def _maybe_run_tool(self, event: t.RunEvent) -> None:
        """Start a client tool call the server asked this stream for (runs concurrently)."""
        if not (
            isinstance(event, t.ToolCallStarted)
            and event.location is t.ToolLocation.CLIENT
            and not self._replayed
            and self._call is not None
        ):
            return
        task = asyncio.create_task(self._run_tool(self._call, event.call))
        self._tool_tasks.add(task)
        task.add_done_callback(self._tool_tasks.discard)

    async def _run_tool(self, call: _RunCall, tool_call: t.ToolCall) -> None:
        tool = self._tools.get(tool_call.name)
        if tool is None:
            output, error = "", f"this client has no tool named {tool_call.name!r}"
        else:
            output, error = await tool.invoke(tool_call.arguments_json)
        # After a cancel the server no longer waits for it (a late result is a stream error).
        if not call.ended and not self._cancel_requested and not self._done:
            call.send(
                run_pb2.RunRequest(
                    tool_result=run_pb2.ToolResult(
                        call_id=tool_call.call_id, output=output, error=error
                    )
                )
            )

    def _stop_tools(self) -> None:
        """Cancel tool calls still running (their turn is over; nobody waits for them)."""
        for task in list(self._tool_tasks):
            task.cancel()

    def _is_own_start(self, event: t.RunEvent) -> bool:
        # The first RunStarted without a parent is this turn's; events of child runs
        # (agents asked by this run's agent) carry their own run ids on the same stream.
        if self.run_id or not isinstance(event, t.RunStarted) or event.parent_run_id:
            return False
        self.run_id = event.run_id
        self.session_id = event.session_id
        # A replayed run's tool calls were answered by the stream that started it.
        self._replayed = event.replayed
        return True

    def is_own_end(self, event: t.RunEvent) -> bool:
        """Whether `event` ends this turn (and not a child run of it)."""
        return isinstance(event, t.TERMINAL_EVENTS) and event.run_id == self.run_id

    def _send_cancel(self) -> None:
        assert self._call is not None
        self._call.send(run_pb2.RunRequest(cancel=run_pb2.CancelTurn(run_id=self.run_id)))

    def cancel(self) -> None:
        """Ask the server to cancel the turn; the stream then ends with a RunCancelled event.

        Does not wait. Before the run's id is known the cancel is sent as soon as it is,
        because a cancel that reached the server before its turn started would be ignored.
        """
        if self._done:
            return
        self._cancel_requested = True
        if self.run_id and self._call is not None:
            self._send_cancel()

    async def aclose(self) -> None:
        """Stop reading; a turn still running is cancelled on the server."""
        self._stop_tools()
        if not self._done:
            self._done = True
            if self._call is not None:
                self._call.abort()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class ChatSession:
    """A multi-turn conversation on one Run stream (see `AsyncOrchestrator.chat`)."""

    def __init__(
        self,
        open_call: OpenCall,
        agent_id: str,
        session_id: str,
        wait_if_busy: bool,
        tools: Mapping[str, ClientTool] | None = None,
        tool_timeout: float | None = None,
    ) -> None:
        self._open_call = open_call
        self._tools = dict(tools or {})
        self._tool_timeout = tool_timeout
        self.agent_id = agent_id
        """The agent; filled in from the first turn when the default agent was used."""
        self.session_id = session_id
        """The session; filled in from the first turn when the default session was used."""
        self._wait_if_busy = wait_if_busy
        self._call: _RunCall | None = None
        self._turn: RunStream | None = None
        self._closed = False

    def send(self, message: str, *, request_id: str | None = None) -> RunStream:
        """Start a turn and return its events (iterate them before sending the next turn)."""
        if self._closed:
            raise RuntimeError("the chat is closed")
        start = run_pb2.StartTurn(
            agent_id=self.agent_id,
            session_id=self.session_id,
            message=message,
            request_id=request_id or "",
            busy_policy=run_pb2.BUSY_POLICY_ENQUEUE
            if self._wait_if_busy
            else run_pb2.BUSY_POLICY_REJECT,
            client_tools=[tool.definition() for tool in self._tools.values()],
            client_tool_timeout_seconds=self._tool_timeout or 0,
        )
        previous = self._turn
        turn = _ChatTurn(self, start, previous)
        self._turn = turn
        return turn

    def _shared_call(self) -> _RunCall:
        # A failed turn ended the previous stream; the conversation continues on a new one.
        if self._call is None or self._call.ended:
            self._call = self._open_call()
        return self._call

    def _learn(self, event: t.RunStarted) -> None:
        self.agent_id = self.agent_id or event.agent_id
        self.session_id = self.session_id or event.session_id

    def cancel(self) -> None:
        """Cancel the turn in progress, if any (does not wait; its events end with RunCancelled)."""
        if self._turn is not None:
            self._turn.cancel()

    async def aclose(self) -> None:
        """End the conversation's stream (a turn still running is cancelled)."""
        self._closed = True
        if self._call is not None and not self._call.ended:
            if self._turn is not None and not self._turn._done:
                self._call.abort()
            else:
                await self._call.finish()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class _ChatTurn(RunStream):
    """One turn of a chat: shares the chat's stream instead of opening its own."""

    def __init__(
        self, chat: ChatSession, start: run_pb2.StartTurn, previous: RunStream | None
    ) -> None:
        super().__init__(chat._shared_call, start, chat._tools)
        self._chat = chat
        self._previous = previous

    async def __anext__(self) -> t.RunEvent:
        if self._done:
            raise StopAsyncIteration
        if self._call is None:
            await self._drain_previous()
            self._call = self._chat._shared_call()
            self._call.send(run_pb2.RunRequest(start=self._start))
        try:
            event = await self._call.next_event()
        except BaseException:
            self._done = True
            self._stop_tools()
            raise
        if event is None:
            self._done = True
            self._stop_tools()
            raise StopAsyncIteration
        if self._is_own_start(event):
            assert isinstance(event, t.RunStarted)
            self._chat._learn(event)
            if self._cancel_requested:
                self._send_cancel()
        elif self.is_own_end(event):
            # The stream stays open for the next turn.
            self._done = True
            self._stop_tools()
        else:
            self._maybe_run_tool(event)
        return event

    async def _drain_previous(self) -> None:
        """Finish a previous turn the caller stopped reading, so its events are not ours."""
        previous = self._previous
        self._previous = None
        if previous is None or previous._done:
            return
        if previous._call is None:
            # Never started: there is nothing on the stream to drain.
            previous._done = True
            return
        previous.cancel()
        try:
            async for _event in previous:
                pass
        except Exception:
            # Its error belonged to that turn; this one starts on a fresh stream.
            return

    async def aclose(self) -> None:
        """Stop reading this turn; it is cancelled, and the chat stays usable."""
        self._stop_tools()
        if self._done:
            return
        if self._call is None:
            self._done = True
        else:
            self.cancel()


OpenCollaboration = Callable[
    [], "grpc.aio.UnaryStreamCall[Any, collaboration_pb2.CollaborationEvent]"
]


class CollaborationStream:
    """The typed events of a pipeline or team run: `async for event in stream`.

    Use it as an async context manager (or exhaust it) so that an abandoned stream
    cancels the collaboration on the server. A failed collaboration raises its typed
    error (metadata names the step or participant, see RunPipeline and RunTeam).
    """

    def __init__(self, open_call: OpenCollaboration) -> None:
        self._open_call = open_call
        self._call: grpc.aio.UnaryStreamCall[Any, collaboration_pb2.CollaborationEvent] | None = (
            None
        )
        self._done = False
        self._cancelled = False
        self.run_id = ""
        """The collaboration's run id, known once its CollaborationStarted arrived."""
        self.session_id = ""
        """The session the participants ran in, known once CollaborationStarted arrived."""

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> t.CollaborationEvent:
        while not self._done:
            if self._call is None:
                self._call = self._open_call()
            try:
                message = await self._call.read()
            except grpc.RpcError as error:
                self._done = True
                raise from_rpc_error(error) from None
            except asyncio.CancelledError:
                self._done = True
                task = asyncio.current_task()
                if self._cancelled and (task is None or not task.cancelling()):
                    raise RunCancelledError(
                        "the collaboration was cancelled",
                        code=grpc.StatusCode.CANCELLED,
                        reason="RUN_CANCELLED",
                    ) from None
                raise
            except BaseException:
                self._done = True
                self._call.cancel()
                raise
            if message is grpc.aio.EOF:
                self._done = True
                break
            assert isinstance(message, collaboration_pb2.CollaborationEvent)
            event = _convert.collaboration_event_from_pb(message)
            if isinstance(event, t.CollaborationStarted):
                self.run_id = event.run_id
                self.session_id = event.session_id
            if event is not None:
                return event
        raise StopAsyncIteration

    def cancel(self) -> None:
        """Cancel the collaboration on the server (its running participants are cancelled).

        A read in progress, or the next one, raises RunCancelledError.
        """
        self._cancelled = True
        if self._call is not None and not self._done:
            self._call.cancel()
        elif self._call is None:
            self._done = True

    async def aclose(self) -> None:
        """Stop reading; a collaboration still running is cancelled on the server."""
        if not self._done:
            self._done = True
            if self._call is not None:
                self._call.cancel()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
