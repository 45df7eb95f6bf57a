"""What one Run stream means: the protocol between a client and the turns it starts.

A client sends commands on one stream: starts, cancels and results of its own tools.
Turns run one after another in the order they were started; a cancel applies at once to
the stream's current run (or to the run it names, if it is one of the stream's own); a
tool result goes to the client tool call waiting for it. The stream's own runs are the
top-level runs it started (child runs of agent-as-tool calls are not). A cancel sent
while a start has no run yet applies to that start's run as soon as it begins.

Limits: at most `max_pending_starts` starts may wait behind the current turn
(TOO_MANY_PENDING_TURNS); cancels and tool results are applied as they arrive, so
nothing else is buffered. The first command must be a start; a tool result nobody waits
for ends the stream (UNEXPECTED_TOOL_RESULT) once the current turn is cancelled.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass

from . import events as ev
from .errors import (
    InvalidArgumentError,
    OrchestratorError,
    Reason,
    ResourceExhaustedError,
    UnavailableError,
)
from .runs import RunEngine
from .tool_calls import ClientToolBridge
from .types import TurnRequest

DEFAULT_MAX_PENDING_STARTS = 32


@dataclass(frozen=True, slots=True)
class CancelTurn:
    """Cancel the named run of this stream, or the current/next one when unnamed."""

    run_id: str = ""


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The client's result of one of its tool calls."""

    call_id: str
    output: str = ""
    error: str = ""


StreamCommand = TurnRequest | CancelTurn | ToolResult


class _End:
    """No more commands will arrive."""


def _interrupted(event: ev.RunEvent) -> bool:
    """A top-level run cut off by a server stop."""
    body = event.body
    return (
        isinstance(body, ev.RunCancelled)
        and body.reason == Reason.RUN_INTERRUPTED
        and not event.parent_run_id
    )


def protocol_violation(description: str, field: str = "RunRequest.kind") -> InvalidArgumentError:
    """The error for a command that breaks the stream protocol."""
    return InvalidArgumentError.for_field(
        field, description, reason=Reason.STREAM_PROTOCOL_VIOLATION
    )


class RunStream:
    """Feeds a stream's commands to the engine and yields the events of its turns."""

    def __init__(
        self,
        engine: RunEngine,
        tenant: str,
        *,
        deadline: float | None = None,
        max_pending_starts: int = DEFAULT_MAX_PENDING_STARTS,
    ) -> None:
        self._engine = engine
        self._tenant = tenant
        self._deadline = deadline
        self._max_pending = max_pending_starts
        self._bridge = ClientToolBridge()
        self._inbox: deque[TurnRequest | Exception | _End] = deque()
        self._arrived = asyncio.Event()
        # The run of the turn being streamed now: the only run of this stream a cancel can
        # still reach (earlier ones have ended; child runs are not the stream's own).
        self._current = ""
        self._starting = False  # a start is executing but its run has no id yet
        # A cancel (its message) for the start that has no run id yet.
        self._cancel_when_started: str | None = None
        self._error: OrchestratorError | None = None  # ends the stream after this turn
        # While the stream waits for its first command, a stop interrupts that read.
        self._awaiting_first: asyncio.Task[object] | None = None
        self._stopped = False

    async def run(
        self, commands: AsyncIterator[StreamCommand]
    ) -> AsyncGenerator[ev.RunEvent, None]:
        """Execute the turns `commands` start and yield their events in order."""
        self._engine.active.open_stream(self._tenant)
        unwatch = self._engine.active.on_stop(self._stop)
        try:
            async with aclosing(self._turns(commands)) as events:
                async for event in events:
                    yield event
        finally:
            unwatch()
            self._engine.active.close_stream(self._tenant)

    def _stop(self) -> None:
        """The server is stopping: end the stream once its current turn (interrupted) is
        over, with the reason, rather than be cut by the transport at the end of grace."""
        self._stopped = True
        self._inbox.appendleft(_stopping())
        self._arrived.set()
        if self._awaiting_first is not None:
            self._awaiting_first.cancel()

    async def _turns(
        self, commands: AsyncIterator[StreamCommand]
    ) -> AsyncGenerator[ev.RunEvent, None]:
        # The first command is read here rather than by the reader task: one task switch
        # less before the first turn starts.
        self._awaiting_first = asyncio.current_task()
        try:
            first = await anext(aiter(commands))
        except StopAsyncIteration:
            return
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not self._stopped or current is None or current.uncancel() > 0:
                raise
            raise _stopping() from None
        finally:
            self._awaiting_first = None
        if not isinstance(first, TurnRequest):
            raise protocol_violation("the first message must be a start")
        self._inbox.append(first)
        readers: list[asyncio.Task[None]] = []
        # The reader's task is made a turn of the loop later: its first step then comes
        # after the first turn's, which sends the model request (a reader started now
        # would go first and delay the request by its read).
        start_reader = asyncio.get_running_loop().call_soon(
            lambda: readers.append(asyncio.create_task(self._read(commands), name="run reader"))
        )
        try:
            while (request := await self._next_start()) is not None:
                async with aclosing(self._turn(request)) as items:
                    async for event in items:
                        yield event
                if self._error is not None:
                    raise self._error
        finally:
            start_reader.cancel()
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

    async def _turn(self, request: TurnRequest) -> AsyncGenerator[ev.RunEvent, None]:
        self._starting = True
        try:
            events = self._engine.execute(
                self._tenant, request, deadline=self._deadline, bridge=self._bridge
            )
            async with aclosing(events):
                async for event in events:
                    if isinstance(event.body, ev.RunStarted) and not event.parent_run_id:
                        self._began(event.run_id)
                    elif _interrupted(event):
                        # The server is stopping (or this replica lost its lease): the
                        # stream ends after this event, with the reason in its status,
                        # instead of being cut without one; retry on another replica.
                        assert isinstance(event.body, ev.RunCancelled)
                        self._error = UnavailableError(
                            f"the run was interrupted: {event.body.message}",
                            reason=Reason.RUN_INTERRUPTED,
                            metadata={"run_id": event.run_id},
                        )
                    yield event
        finally:
            self._starting = False
            self._current = ""

    def _began(self, run_id: str) -> None:
        self._current = run_id
        self._starting = False
        message, self._cancel_when_started = self._cancel_when_started, None
        if message is not None:
            self._engine.active.cancel_own(run_id, message, Reason.RUN_CANCELLED)

    async def _next_start(self) -> TurnRequest | None:
        while not self._inbox:
            self._arrived.clear()
            await self._arrived.wait()
        item = self._inbox.popleft()
        if isinstance(item, Exception):
            raise item
        return None if isinstance(item, _End) else item

    def _put(self, item: TurnRequest | Exception | _End) -> None:
        self._inbox.append(item)
        self._arrived.set()

    async def _read(self, commands: AsyncIterator[StreamCommand]) -> None:
        """Route the client's commands after the first until the stream ends."""
        try:
            async for command in commands:
                if not self._route(command):
                    return
        except Exception as error:  # a malformed message, or one of no known kind
            self._put(error)
        finally:
            self._put(_End())

    def _route(self, command: StreamCommand) -> bool:
        """Apply one command; False when the stream must end."""
        if isinstance(command, TurnRequest):
            return self._queue_start(command)
        if isinstance(command, CancelTurn):
            self._cancel(command.run_id)
            return True
        try:
            self._bridge.deliver(command.call_id, command.output, command.error)
        except InvalidArgumentError as error:
            # A result nobody waits for is a client bug: end the stream with it once the
            # current turn has been cancelled.
            self._fail(error)
            return False
        return True

    def _queue_start(self, request: TurnRequest) -> bool:
        if self._pending_starts() < self._max_pending:
            self._put(request)
            return True
        self._fail(
            ResourceExhaustedError(
                f"at most {self._max_pending} turns may wait on one stream",
                reason=Reason.TOO_MANY_PENDING_TURNS,
                metadata={"limit": str(self._max_pending)},
            )
        )
        return False

    def _cancel(self, run_id: str) -> None:
        if not run_id and not self._current and (self._starting or self._pending_starts()):
            # The turn has no run id yet: cancel it as soon as it has one.
            self._cancel_when_started = "the client cancelled the run"
            return
        if self._current and run_id in ("", self._current):
            self._engine.active.cancel_own(
                self._current, "the client cancelled the run", Reason.RUN_CANCELLED
            )

    def _pending_starts(self) -> int:
        """Starts received that wait behind the current turn."""
        return sum(isinstance(item, TurnRequest) for item in self._inbox)

    def _fail(self, error: OrchestratorError) -> None:
        """End the stream with `error` once the current turn (even one whose run has no
        id yet) is cancelled."""
        self._error = error
        if self._current:
            self._engine.active.cancel_own(self._current, error.message, Reason.RUN_CANCELLED)
        elif self._starting:
            self._cancel_when_started = error.message
        self._put(error)


def _stopping() -> UnavailableError:
    return UnavailableError(
        "the server is stopping; this stream starts no new turn", reason=Reason.SERVER_STOPPING
    )
