"""`CollaborationStream`: the events of a pipeline or team run, and their results."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Self

import grpc

from . import _convert
from . import types as t
from ._stream import AsyncClosing
from .errors import InternalError, RunCancelledError, from_rpc_error
from .v1 import collaboration_pb2

OpenCollaboration = Callable[
    [], "grpc.aio.UnaryStreamCall[Any, collaboration_pb2.CollaborationEvent]"
]


class CollaborationStream(AsyncClosing):
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


async def _completed(events: CollaborationStream) -> t.CollaborationCompleted:
    async for event in events:
        if isinstance(event, t.CollaborationCompleted):
            return event
    raise InternalError("the collaboration's stream ended without a result")


async def collect_pipeline(events: CollaborationStream) -> t.PipelineResult:
    """Read a pipeline stream to its end and return its result."""
    done = await _completed(events)
    return t.PipelineResult(
        run_id=done.run_id,
        output=done.output,
        steps=done.results,
        session_id=events.session_id,
        usage=done.usage,
    )


async def collect_team(events: CollaborationStream, team_id: str) -> t.TeamResult:
    """Read a team stream to its end and return its result."""
    done = await _completed(events)
    members = tuple(r for r in done.results if r.participant.role is t.ParticipantRole.MEMBER)
    coordinators = [r for r in done.results if r.participant.role is t.ParticipantRole.COORDINATOR]
    return t.TeamResult(
        run_id=done.run_id,
        team_id=team_id,
        output=done.output,
        members=members,
        coordinator=coordinators[0] if coordinators else None,
        session_id=events.session_id,
        usage=done.usage,
    )
