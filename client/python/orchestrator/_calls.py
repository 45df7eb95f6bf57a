"""The RPCs a turn's events arrive on: a Run call, or a FollowRun call that resumes it
after a dropped connection. Both take the Run stream's messages (a FollowRun call
converts a tool result or a cancel into its own request) and return typed events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc

from . import _convert
from . import types as t
from .errors import from_rpc_error
from .v1 import orchestrator_service_pb2 as pb
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
        self._requests: asyncio.Queue[Any] = asyncio.Queue()
        self._call: grpc.aio.StreamStreamCall[Any, run_pb2.RunEvent] = stub.Run(
            self._request_stream(), metadata=metadata, timeout=timeout
        )
        self.ended = False

    async def _request_stream(self) -> AsyncIterator[Any]:
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


class _FollowCall(_RunCall):
    """A FollowRun RPC from the event after `after`, sending a Run stream's messages."""

    def __init__(
        self,
        stub: pb_grpc.OrchestratorServiceAsyncStub,
        metadata: Sequence[tuple[str, str]],
        timeout: float | None,
        run_id: str,
        after: int,
    ) -> None:
        self._requests: asyncio.Queue[Any] = asyncio.Queue()
        self._requests.put_nowait(
            pb.FollowRunRequest(start=pb.FollowStart(run_id=run_id, after_sequence=after))
        )
        self._call = stub.FollowRun(self._request_stream(), metadata=metadata, timeout=timeout)
        self.ended = False

    def send(self, request: run_pb2.RunRequest) -> None:
        """Queue a tool result or a cancel of the followed run."""
        kind = request.WhichOneof("kind")
        if kind == "tool_result":
            self._requests.put_nowait(pb.FollowRunRequest(tool_result=request.tool_result))
        elif kind == "cancel":
            self._requests.put_nowait(pb.FollowRunRequest(cancel=request.cancel))
