"""What one FollowRun stream means: the protocol between a follower and a run.

The first command names the run and the last sequence number the follower has seen; the
stream then carries the run's events after it until the run ends. Later commands answer
a client-tool call the run waits for, or cancel the run; both need the permission to run
(PERMISSION_DENIED otherwise). A tool result reaches the run when this replica executes
it; one nobody here waits for ends the stream with UNEXPECTED_TOOL_RESULT. Nothing is
buffered: commands are applied as they arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass

from . import events as ev
from .access import Permission, current_caller
from .errors import InvalidArgumentError, OrchestratorError, Reason
from .follow import RunFollowing
from .run_feed import RunFeed
from .run_records import RunRecords
from .run_stream import CancelTurn, ToolResult, protocol_violation


@dataclass(frozen=True, slots=True)
class FollowStart:
    """Follow `run_id` from the event after `after_sequence`."""

    run_id: str
    after_sequence: int = 0


FollowCommand = FollowStart | ToolResult | CancelTurn


class FollowStream:
    """Streams one run's events to a follower and applies the follower's commands."""

    def __init__(self, following: RunFollowing, records: RunRecords, tenant: str) -> None:
        self._following = following
        self._records = records
        self._tenant = tenant
        self._error: OrchestratorError | None = None
        self._streaming: asyncio.Task[object] | None = None

    async def run(
        self, commands: AsyncIterator[FollowCommand]
    ) -> AsyncGenerator[ev.RunEvent, None]:
        """The followed run's events; ends when the run does (with its error)."""
        try:
            first = await anext(aiter(commands))
        except StopAsyncIteration:
            return
        if not isinstance(first, FollowStart):
            raise protocol_violation("the first message must be a start")
        run, feed = await self._following.open(self._tenant, first.run_id, first.after_sequence)
        self._streaming = asyncio.current_task()
        reader = asyncio.create_task(self._read(commands, run.run_id, feed), name="follow reader")
        try:
            events = self._following.follow(self._tenant, run, feed, first.after_sequence)
            async with aclosing(events) as items:
                async for event in items:
                    yield event
        except asyncio.CancelledError:
            error = self.refusal()
            if error is None:
                raise
            raise error from None
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _read(
        self, commands: AsyncIterator[FollowCommand], run_id: str, feed: RunFeed | None
    ) -> None:
        """Apply the follower's commands until its stream ends or one is refused."""
        try:
            async for command in commands:
                await self._apply(command, run_id, feed)
        except OrchestratorError as error:
            self._fail(error)

    async def _apply(self, command: FollowCommand, run_id: str, feed: RunFeed | None) -> None:
        if isinstance(command, FollowStart):
            raise protocol_violation("only the first message may be a start")
        current_caller().require(Permission.RUN)
        if isinstance(command, CancelTurn):
            if command.run_id not in ("", run_id):
                raise InvalidArgumentError.for_field(
                    "cancel.run_id", "names another run than the one followed"
                )
            await self._records.cancel(self._tenant, run_id)
            return
        if feed is None or feed.deliver is None or feed.ended:
            raise InvalidArgumentError.for_field(
                "tool_result.call_id",
                "no client tool call of the run waits for a result on this replica",
                reason=Reason.UNEXPECTED_TOOL_RESULT,
                metadata={"call_id": command.call_id[:100]},
            )
        feed.deliver(command.call_id, command.output, command.error)

    def refusal(self) -> OrchestratorError | None:
        """In the streaming task, handling a CancelledError: the refused command's error
        if the cancel was this stream's own doing (then undone), else None. The caller
        of `run()` asks too: the cancel may come while it sends an event."""
        error, task = self._error, asyncio.current_task()
        if error is None or task is None or task.uncancel() > 0:
            return None
        self._error = None
        return error

    def _fail(self, error: OrchestratorError) -> None:
        """End the follow with `error` (the events loop is interrupted)."""
        self._error = error
        if self._streaming is not None and not self._streaming.done():
            self._streaming.cancel()
