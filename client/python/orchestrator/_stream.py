"""Run streams: one turn (`RunStream`); a chat's turns share one (`_chat.py`).

The request side of a Run stream is fed from a queue and stays open until the turn's
final event, so that the client can still send on it while a turn runs: a cancel now,
and later the results of client-side tools. A turn that fails ends the whole stream with
its status (see the Run RPC), so a chat opens a new stream for the next turn. A turn
whose connection drops resumes on a new one (`_resume.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Self

from . import types as t
from ._calls import _FollowCall, _RunCall
from ._resume import Resumption, transient
from ._tools import ClientTool
from .v1 import run_pb2

__all__ = ["AsyncClosing", "FollowedRun", "OpenCall", "RunStream", "_FollowCall", "_RunCall"]


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
        resumption: Resumption | None = None,
        *,
        detached: bool = False,
    ) -> None:
        self._open_call = open_call
        self._detached = detached  # the run goes on when this stream is left
        self._start = start
        self._call: _RunCall | None = None
        self._done = False
        self._cancel_requested = False
        self._tools = dict(tools or {})
        self._tool_tasks: set[asyncio.Task[None]] = set()
        # Client-tool calls started here, and the results already computed (a call the
        # server sends again after a reconnect is answered from these).
        self._tool_calls: set[str] = set()
        self._answers: dict[str, tuple[str, str]] = {}
        self._replayed = False
        self._resumption = resumption
        self._last_sequence = 0  # of this turn's own events
        self._child_sequences: dict[str, int] = {}  # the last of each child run's events
        self._restarted = False  # the start was sent again after a dropped connection
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
        event = await self._next_new_event()
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
            await self._end_of_own_call(self._call)
        else:
            self._maybe_run_tool(event)
        return event

    async def _next_new_event(self) -> t.RunEvent | None:
        """The next event not seen before, resuming on a new connection when the
        connection drops (see _resume.py)."""
        while True:
            assert self._call is not None
            try:
                event = await self._call.next_event()
            except BaseException as error:
                if self._resumption is None or self._done or not transient(error):
                    self._done = True
                    self._stop_tools()
                    if not isinstance(error, Exception):
                        # The reader was cancelled (Ctrl-C, a timeout around the loop):
                        # the run must not wait out its resume window.
                        await self.cancel_resumable()
                    self._after_failure(self._call)
                    raise
                await self._reconnect(error)
                continue
            if self._resumption is not None and event is not None:
                self._resumption.succeeded()
            if event is None or not self._seen(event):
                if event is not None and self._restarted and _replay_of_own_start(event):
                    self._follow_instead(event)
                return event

    def _follow_instead(self, started: t.RunEvent) -> None:
        """The start sent again after a dropped connection found its run already stored
        (finished, or running on another replica): the server replays only its outcome,
        so the run's events are followed instead, every delta included."""
        assert self._resumption is not None
        assert self._call is not None
        self._call.abort()
        self._call = self._resumption.follow(started.run_id, started.sequence)

    async def _reconnect(self, error: BaseException) -> None:
        assert self._resumption is not None
        assert self._call is not None
        self._after_failure(self._call)
        await self._resumption.pause(error)
        if self.run_id:
            self._call = self._resumption.follow(self.run_id, self._last_sequence)
        else:  # the same start again: its request id makes the server run it once
            self._restarted = True
            self._call = await self._open()
            self._call.send(run_pb2.RunRequest(start=self._start))

    def _seen(self, event: t.RunEvent) -> bool:
        """Whether an event arrived before a reconnect: this turn's own (a client-tool
        call the run still waits for is answered again), or a child run's (agents asked
        by this turn's agent, numbered by their own runs)."""
        if not self.run_id:
            return False
        if event.run_id != self.run_id:
            last = self._child_sequences.get(event.run_id, 0)
            if event.sequence > last:
                self._child_sequences[event.run_id] = event.sequence
                return False
            return True
        if event.sequence > self._last_sequence:
            self._last_sequence = event.sequence
            return False
        self._maybe_run_tool(event)
        return True

    async def _open(self) -> _RunCall:
        """The call this turn runs on (a chat's turns share theirs)."""
        return self._open_call()

    def _after_failure(self, call: _RunCall) -> None:
        # A read cancelled by the caller leaves the RPC open: cancel it, so the turn stops.
        call.abort()

    async def _after_own_end(self, call: _RunCall) -> None:
        await call.finish()

    async def _end_of_own_call(self, call: _RunCall) -> None:
        """After the turn's last event: a call opened to resume it is finished here."""
        if isinstance(call, _FollowCall):
            await call.finish()
        else:
            await self._after_own_end(call)

    def _maybe_run_tool(self, event: t.RunEvent) -> None:
        """Start a client tool call the server asked this stream for (runs concurrently)."""
        if not (
            isinstance(event, t.ToolCallStarted)
            and event.location is t.ToolLocation.CLIENT
            and not self._replayed
            and self._call is not None
        ):
            return
        call_id = event.call.call_id
        if call_id in self._answers:  # computed before the connection dropped
            self._send_result(call_id, *self._answers[call_id])
            return
        if call_id in self._tool_calls:
            return  # still running: it answers on the connection open when it ends
        self._tool_calls.add(call_id)
        task = asyncio.create_task(self._run_tool(event.call))
        self._tool_tasks.add(task)
        task.add_done_callback(self._tool_tasks.discard)

    async def _run_tool(self, tool_call: t.ToolCall) -> None:
        tool = self._tools.get(tool_call.name)
        if tool is None:
            output, error = "", f"this client has no tool named {tool_call.name!r}"
        else:
            output, error = await tool.invoke(tool_call.arguments_json)
        self._answers[tool_call.call_id] = (output, error)
        self._send_result(tool_call.call_id, output, error)

    def _send_result(self, call_id: str, output: str, error: str) -> None:
        call = self._call
        # After a cancel the server no longer waits for it (a late result is a stream error).
        if call is not None and not call.ended and not self._cancel_requested and not self._done:
            call.send(
                run_pb2.RunRequest(
                    tool_result=run_pb2.ToolResult(call_id=call_id, output=output, error=error)
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
        self._last_sequence = event.sequence
        self.session_id = event.session_id
        # A replayed run's tool calls were answered by the stream that started it (unless
        # that stream was this one, before its connection dropped).
        self._replayed = event.replayed and not self._restarted
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
            await self.cancel_resumable()
            if self._call is not None:
                self._call.abort()

    async def cancel_resumable(self) -> None:
        """Cancel a resumable run that is still going (CancelRun): dropping its stream
        would leave it waiting out its resume window for a follower."""
        if self._resumption is not None and self.run_id and not self._detached:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._resumption.cancel_run(self.run_id), 5.0)


def _replay_of_own_start(event: t.RunEvent) -> bool:
    return isinstance(event, t.RunStarted) and event.replayed and not event.parent_run_id


class FollowedRun(RunStream):
    """The events of a run started elsewhere (`AsyncOrchestrator.follow`): iterate it
    like a turn's stream. It answers only the client-tool calls it has tools for (a
    call the run waits for is sent to each new follower) and `cancel()` cancels the run;
    leaving it early leaves the run alone. A dropped connection is resumed."""

    def __init__(
        self,
        run_id: str,
        after_sequence: int,
        resumption: Resumption,
        tools: Mapping[str, ClientTool] | None = None,
    ) -> None:
        super().__init__(
            lambda: resumption.follow(run_id, after_sequence),
            run_pb2.StartTurn(),
            tools,
            resumption,
            detached=True,  # leaving (or Ctrl-C) stops following; the run goes on
        )
        self.run_id = run_id
        self._last_sequence = after_sequence

    def _maybe_run_tool(self, event: t.RunEvent) -> None:
        if isinstance(event, t.ToolCallStarted) and event.call.name in self._tools:
            super()._maybe_run_tool(event)
