"""The A2A request handler over the run engine: what `lf.a2a.v1.A2AService` does here.

a2a-sdk's `GrpcHandler` parses and answers the gRPC calls (and maps A2A errors to
statuses with an ErrorInfo in the `a2a-protocol.org` domain); this handler does the work
with the same engine, records, journal and access control as the native API, so a task
is a run wherever it is served from (any replica: no per-process task registry).

- SendMessage / SendStreamingMessage start a turn of the agent the request's `tenant`
  field names (empty: the caller's default agent) in the session its `context_id` names
  (empty: a new one). The caller's tenant is the one of the native API (identity,
  `x-tenant-id`).
- GetTask / ListTasks read runs; CancelTask is CancelRun; SubscribeToTask follows a run
  (a snapshot of the task first, then its answer from the start, then its end).
- Push notifications and the extended card are not offered (the agent card says so).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from contextlib import aclosing, contextmanager
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.types import a2a_pb2
from a2a.utils.constants import VERSION_HEADER
from a2a.utils.errors import (
    ExtendedAgentCardNotConfiguredError,
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
    VersionNotSupportedError,
)

from ..core.errors import InvalidArgumentError, NotFoundError, OrchestratorError, Reason
from ..core.follow import RunFollowing
from ..core.run_feed import RunFeed
from ..core.run_records import RunRecords
from ..core.runs import RunEngine
from ..core.types import Run
from .call_context import deadline_of, tenant_of
from .convert.a2a import (
    TERMINAL,
    StreamEvent,
    TaskEvents,
    state_of,
    task_of,
    turn_request_of,
)


def _grpc(context: ServerCallContext) -> Any:
    """The call's gRPC context; a version of the protocol other than 1.x, named in the
    `a2a-version` metadata, is VERSION_NOT_SUPPORTED (without one, 1.0 is assumed: a
    plain grpcurl call works)."""
    grpc_context = context.state["grpc_context"]
    for key, value in grpc_context.invocation_metadata() or ():
        if key == VERSION_HEADER.lower() and not str(value).strip().startswith("1."):
            raise VersionNotSupportedError(
                f"A2A version {str(value)[:20]!r} is not supported: this server speaks 1.0"
            )
    return grpc_context


def _a2a_error(error: OrchestratorError) -> Exception:
    """The A2A error of a refusal the spec names; others keep their own status."""
    if isinstance(error, NotFoundError) and error.reason is Reason.RUN_NOT_FOUND:
        return TaskNotFoundError(error.message)
    if isinstance(error, InvalidArgumentError):
        return InvalidParamsError(error.message)
    return error


class A2ARequestHandler(RequestHandler):
    """A2A over the run engine (see the module's docstring)."""

    def __init__(self, engine: RunEngine, records: RunRecords, following: RunFollowing) -> None:
        self._engine = engine
        self._records = records
        self._following = following

    @contextmanager
    def _stream_slot(self, tenant: str) -> Iterator[None]:
        """One of the tenant's open streams while the block runs: the limits of Run and
        FollowRun streams apply to A2A's (QUOTA_EXCEEDED past them)."""
        active = self._following.active
        active.open_stream(tenant)
        try:
            yield
        finally:
            active.close_stream(tenant)

    async def _run(self, context: ServerCallContext, task_id: str) -> Run:
        """The run a task id names in the caller's tenant, for the agent the request's
        `tenant` names (when it names one): else TaskNotFoundError."""
        try:
            run = await self._records.get(tenant_of(_grpc(context)), task_id)
        except NotFoundError:
            raise TaskNotFoundError(f"task '{task_id[:80]}' not found") from None
        if context.tenant and run.agent_id != context.tenant:
            raise TaskNotFoundError(f"task '{task_id[:80]}' not found")
        return run

    async def on_message_send_stream(
        self, params: a2a_pb2.SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[StreamEvent, None]:
        """A turn, streamed: the task, its answer's chunks, its final status. A task goes
        on when its stream goes away (its caller's deadline still ends it): SubscribeToTask
        picks it up again, from any replica."""
        with self._stream_slot(tenant_of(_grpc(context))):
            async with aclosing(self._turn(params, context)) as events:
                async for event in events:
                    yield event

    async def on_message_send(
        self, params: a2a_pb2.SendMessageRequest, context: ServerCallContext
    ) -> a2a_pb2.Task:
        """A turn, answered once it ends (or, with `return_immediately`, once it has
        started: it then goes on without the caller)."""
        immediately = params.configuration.return_immediately
        task: a2a_pb2.Task | None = None
        turn = self._turn(params, context, keep_deadline=not immediately)
        async with aclosing(turn) as events:
            async for event in events:
                if isinstance(event, a2a_pb2.Task):
                    task = event
                    if immediately:
                        return task
        assert task is not None, "a turn's first event is its task"
        return task_of(await self._run(context, task.id))

    async def _turn(
        self,
        params: a2a_pb2.SendMessageRequest,
        context: ServerCallContext,
        *,
        keep_deadline: bool = True,
    ) -> AsyncGenerator[StreamEvent, None]:
        """A task goes on when its caller goes away (the caller's deadline still ends it,
        unless it asked for an answer at once: then the task is on its own)."""
        request = turn_request_of(params, continue_on_disconnect=True)
        grpc_context = _grpc(context)
        deadline = deadline_of(grpc_context) if keep_deadline else None
        events = self._engine.execute(tenant_of(grpc_context), request, deadline=deadline)
        state: TaskEvents | None = None
        try:
            async with aclosing(events) as items:
                async for event in items:
                    if state is None:  # the first event is the run's own
                        state = TaskEvents(event.run_id, request.session_id, request.message)
                    for item in state.convert(event):
                        yield item
        except OrchestratorError as error:
            if state is None or not state.started:
                raise _a2a_error(error) from None
            if not state.ended:
                yield state.failed(str(error.reason), error.message)

    async def on_get_task(
        self, params: a2a_pb2.GetTaskRequest, context: ServerCallContext
    ) -> a2a_pb2.Task:
        """A task as its run's record says."""
        history = _history_length(params)
        return task_of(await self._run(context, params.id), history_length=history)

    async def on_list_tasks(
        self, params: a2a_pb2.ListTasksRequest, context: ServerCallContext
    ) -> a2a_pb2.ListTasksResponse:
        """The caller's tasks (of the agent `tenant` names, in the session `context_id`
        names), newest first; a status filter applies within each page."""
        try:
            page = await self._records.list(
                tenant_of(_grpc(context)),
                agent_id=params.tenant,
                session_id=params.context_id,
                page_size=params.page_size,
                page_token=params.page_token,
            )
        except InvalidArgumentError as error:
            if params.context_id and not params.tenant:
                raise InvalidParamsError("context_id needs tenant (the agent)") from None
            raise InvalidParamsError(error.message) from None
        history = _history_length(params) or 0
        tasks = [
            task_of(run, artifacts=params.include_artifacts, history_length=history)
            for run in page.items
            if run.agent_id and (not params.status or state_of(run.status) == params.status)
        ]
        return a2a_pb2.ListTasksResponse(
            tasks=tasks, next_page_token=page.next_page_token, page_size=len(tasks)
        )

    async def on_cancel_task(
        self, params: a2a_pb2.CancelTaskRequest, context: ServerCallContext
    ) -> a2a_pb2.Task:
        """CancelRun: the task once its end is recorded; a finished task cannot be."""
        run = await self._run(context, params.id)
        if run.status in TERMINAL:
            raise TaskNotCancelableError(f"task '{run.run_id}' has ended ({run.status.value})")
        return task_of(await self._records.cancel(tenant_of(_grpc(context)), run.run_id))

    async def on_subscribe_to_task(
        self, params: a2a_pb2.SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[StreamEvent, None]:
        """The task now, then its answer from the start and its end, from any replica."""
        run = await self._run(context, params.id)
        if run.status in TERMINAL:
            raise UnsupportedOperationError(f"task '{run.run_id}' has ended: read it with GetTask")
        tenant = tenant_of(_grpc(context))
        _, feed = await self._following.open(tenant, run.run_id, 0)
        with self._stream_slot(tenant):
            async with aclosing(self._subscribed(tenant, run, feed)) as events:
                async for event in events:
                    yield event

    async def _subscribed(
        self, tenant: str, run: Run, feed: RunFeed | None
    ) -> AsyncGenerator[StreamEvent, None]:
        yield task_of(run, artifacts=False)
        state = TaskEvents(run.run_id, run.session_id)  # the task was sent just above
        try:
            async with aclosing(self._following.follow(tenant, run, feed, 0)) as events:
                async for event in events:
                    for item in state.convert(event):
                        yield item
        except OrchestratorError as error:
            if not state.ended:
                yield state.failed(str(error.reason), error.message)

    async def on_create_task_push_notification_config(
        self, params: Any, context: ServerCallContext
    ) -> Any:
        """Not offered."""
        raise PushNotificationNotSupportedError

    async def on_get_task_push_notification_config(
        self, params: Any, context: ServerCallContext
    ) -> Any:
        """Not offered."""
        raise PushNotificationNotSupportedError

    async def on_list_task_push_notification_configs(
        self, params: Any, context: ServerCallContext
    ) -> Any:
        """Not offered."""
        raise PushNotificationNotSupportedError

    async def on_delete_task_push_notification_config(
        self, params: Any, context: ServerCallContext
    ) -> None:
        """Not offered."""
        raise PushNotificationNotSupportedError

    async def on_get_extended_agent_card(
        self, params: Any, context: ServerCallContext
    ) -> a2a_pb2.AgentCard:
        """Not offered: the public card is the whole card."""
        raise ExtendedAgentCardNotConfiguredError


def _history_length(params: a2a_pb2.GetTaskRequest | a2a_pb2.ListTasksRequest) -> int | None:
    """The request's history_length (None: unset); a negative one is INVALID_PARAMS."""
    if not params.HasField("history_length"):
        return None
    if params.history_length < 0:
        raise InvalidParamsError("history_length must not be negative")
    return params.history_length
