"""Run streams: one turn (`RunStream`); a chat's turns share one (`_chat.py`).

The request side of a Run stream is fed from a queue and stays open until the turn's
final event, so that the client can still send on it while a turn runs: a cancel now,
and later the results of client-side tools. A turn that fails ends the whole stream with
its status (see the Run RPC), so a chat opens a new stream for the next turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Self

import grpc

from . import _convert
from . import types as t
from ._tools import ClientTool
from .errors import from_rpc_error
from .v1 import orchestrator_service_pb2_grpc as pb_grpc
from .v1 import run_pb2


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


class AsyncClosing:
    """`async with` for the stream objects: leaving the block awaits `aclose()`."""

    async def aclose(self) -> None:
        """Stop; what still runs is cancelled."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class RunStream(AsyncClosing):
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
            self._call = await self._open()
            self._call.send(run_pb2.RunRequest(start=self._start))
        try:
            event = await self._call.next_event()
        except BaseException:
            self._done = True
            self._stop_tools()
            self._after_failure(self._call)
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
            await self._after_own_end(self._call)
        else:
            self._maybe_run_tool(event)
        return event

    async def _open(self) -> _RunCall:
        """The call this turn runs on (a chat's turns share theirs)."""
        return self._open_call()

    def _after_failure(self, call: _RunCall) -> None:
        # A read cancelled by the caller leaves the RPC open: cancel it, so the turn stops.
        call.abort()

    async def _after_own_end(self, call: _RunCall) -> None:
        await call.finish()

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
