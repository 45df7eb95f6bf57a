"""What one FollowRun stream means: the protocol between a follower and a run.

The first command names the run and the last sequence number the follower has seen; the
stream then carries the run's events after it until the run ends. Later commands answer
a client-tool call the run waits for, or cancel the run; both need the permission to run
(PERMISSION_DENIED otherwise). A tool result reaches the run when this replica executes
it; one nobody here waits for ends the stream with UNEXPECTED_TOOL_RESULT. Nothing is
buffered: commands are applied as they arrive. A follow stream counts among the open
streams of its tenant and of the server (QUOTA_EXCEEDED past `max_streams*`).
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
from .run_feed import Interruption, RunFeed
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
        self._interruption = Interruption()

    async def run(
        self, commands: AsyncIterator[FollowCommand]
    ) -> AsyncGenerator[ev.RunEvent, None]:
        """The followed run's events; ends when the run does (with its error), or with the
        error of a refused command."""
        try:
            first = await anext(aiter(commands))
        except StopAsyncIteration:
            return
        if not isinstance(first, FollowStart):
            raise _violation("the first message must be a start")
        self._following.active.open_stream(self._tenant)  # QUOTA_EXCEEDED past the limits
        try:
            async with aclosing(self._follow(commands, first)) as events:
                async for event in events:
                    yield event
        finally:
            self._following.active.close_stream(self._tenant)

    async def _follow(
        self, commands: AsyncIterator[FollowCommand], first: FollowStart
    ) -> AsyncGenerator[ev.RunEvent, None]:
        run, feed = await self._following.open(self._tenant, first.run_id, first.after_sequence)
        reader = asyncio.create_task(self._read(commands, run.run_id, feed), name="follow reader")
        try:
            events = self._following.follow(
                self._tenant, run, feed, first.after_sequence, self._interruption
            )
            async with aclosing(events) as items:
                async for event in items:
                    yield event
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
            self._interruption.interrupt(error)

    async def _apply(self, command: FollowCommand, run_id: str, feed: RunFeed | None) -> None:
        if isinstance(command, FollowStart):
            raise _violation("only the first message may be a start")
        current_caller().require(Permission.RUN)
        if isinstance(command, CancelTurn):
            if command.run_id not in ("", run_id):
                raise InvalidArgumentError.for_field(
                    "cancel.run_id", "names another run than the one followed"
                )
            await self._records.cancel(self._tenant, run_id)
            return
        if feed is None or feed.deliver is None or not feed.waits_for(command.call_id):
            raise InvalidArgumentError.for_field(
                "tool_result.call_id",
                "no client tool call of the followed run waits for this result on this replica",
                reason=Reason.UNEXPECTED_TOOL_RESULT,
                metadata={"call_id": command.call_id[:100]},
            )
        feed.deliver(command.call_id, command.output, command.error)


def _violation(description: str) -> InvalidArgumentError:
    return protocol_violation(description, "FollowRunRequest.kind")
