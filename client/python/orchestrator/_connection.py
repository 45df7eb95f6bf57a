"""`Connection`: the channel of an AsyncOrchestrator and the plumbing its calls share.

The calls themselves are grouped by resource (`_agents`, `_runs`, `_teams`), each a
subclass of Connection; `AsyncOrchestrator` (`_client`) combines them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, Self, TypeVar

import grpc

from . import _channel
from ._collaboration import CollaborationStream
from ._resume import Resumption
from ._stream import OpenCall, _FollowCall, _RunCall
from .errors import Unavailable, from_rpc_error
from .v1 import orchestrator_service_pb2 as pb
from .v1 import orchestrator_service_pb2_grpc as pb_grpc

R = TypeVar("R")
T = TypeVar("T")
Metadata = Mapping[str, str] | Sequence[tuple[str, str]]


class _Page(Protocol):
    @property
    def next_page_token(self) -> str: ...


PageT = TypeVar("PageT", bound=_Page)


class Connection:
    """A channel to the service, with the metadata and default deadline of every call."""

    def __init__(
        self,
        address: str = _channel.DEFAULT_ADDRESS,
        *,
        tenant: str | None = None,
        metadata: Metadata | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float | None = None,
        retry_unavailable: bool = True,
        token: str | None = None,
    ) -> None:
        self.address = address
        self._timeout = timeout
        self._retry = retry_unavailable
        token = token if token is not None else os.environ.get(_channel.TOKEN_ENV)
        self._fixed_metadata = _channel.call_metadata(tenant, metadata, token)
        self._channel = _channel.open_channel(address, credentials, retry_unavailable)
        self._stub = pb_grpc.OrchestratorServiceStub(self._channel)

    @property
    def _metadata(self) -> tuple[tuple[str, str], ...]:
        """A call's metadata: the fixed pairs, and the active OpenTelemetry trace context
        (W3C `traceparent`), so that the call joins the caller's trace."""
        return _channel.with_trace_context(self._fixed_metadata)

    async def close(self) -> None:
        """Close the channel (calls in flight are cancelled)."""
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _unary(self, method: Callable[..., Awaitable[R]], request: Any) -> R:
        try:
            return await method(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    async def _exists(self, read: Awaitable[object], *missing: type[Exception]) -> bool:
        """Whether `read` finds its resource (False when it raises one of `missing`)."""
        try:
            await read
        except missing:
            return False
        return True

    async def _unary_retrying(self, method: Callable[..., Awaitable[R]], request: Any) -> R:
        """A call this client retries itself on UNAVAILABLE, with the channel's policy.

        For a call that is idempotent only with some requests (get-or-create): the
        channel's service config can only name whole methods.
        """
        if not self._retry:
            return await self._unary(method, request)
        policy = _channel.RETRY_POLICY
        delay = float(policy["initialBackoff"].rstrip("s"))
        for attempt in range(1, policy["maxAttempts"] + 1):
            try:
                return await self._unary(method, request)
            except Unavailable:
                if attempt == policy["maxAttempts"]:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * policy["backoffMultiplier"], float(policy["maxBackoff"][:-1]))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _paginate(
        self,
        method: Callable[..., Awaitable[PageT]],
        request: Any,
        items: Callable[[PageT], Iterable[T]],
    ) -> AsyncIterator[T]:
        """Every item of a List call, page by page (`request.page_token` is advanced)."""
        while True:
            response = await self._unary(method, request)
            for item in items(response):
                yield item
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token

    def _open_run_call(self, timeout: float | None) -> OpenCall:
        return lambda: _RunCall(self._stub, self._metadata, timeout)

    def _resumption(self, timeout: float | None) -> Resumption:
        """How a turn resumes after a dropped connection (FollowRun; CancelRun)."""
        return Resumption(
            follow=lambda run_id, after: _FollowCall(
                self._stub, self._metadata, timeout, run_id, after
            ),
            cancel_run=lambda run_id: self._stub.CancelRun(
                pb.CancelRunRequest(run_id=run_id), metadata=self._metadata, timeout=5.0
            ),
        )

    def _collaboration(
        self, method: Callable[..., Any], request: Any, timeout: float | None
    ) -> CollaborationStream:
        deadline = timeout or self._timeout
        return CollaborationStream(
            lambda: method(request, metadata=self._metadata, timeout=deadline)
        )
