"""`AsyncOrchestrator`: the asyncio client, shaped like the original in-process Orchestrator."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import grpc
from google.protobuf import field_mask_pb2

from . import _channel, _convert, _tools
from . import types as t
from ._stream import ChatSession, CollaborationStream, RunStream, _RunCall
from .errors import (
    AgentNotFound,
    InternalError,
    InvalidAgentId,
    OrchestratorError,
    TeamNotFound,
    Unavailable,
    error_class,
    from_rpc_error,
)
from .v1 import agent_pb2, collaboration_pb2, run_pb2
from .v1 import orchestrator_service_pb2 as pb
from .v1 import orchestrator_service_pb2_grpc as pb_grpc

R = TypeVar("R")
T = TypeVar("T")
Metadata = Mapping[str, str] | Sequence[tuple[str, str]]


_CANCEL_CODES = {
    "DEADLINE_EXCEEDED": grpc.StatusCode.DEADLINE_EXCEEDED,
    "RUN_INTERRUPTED": grpc.StatusCode.UNAVAILABLE,
}


def cancelled_error(event: t.RunCancelled) -> OrchestratorError:
    """The error `run` raises for a RunCancelled event (DeadlineExceeded for a deadline)."""
    code = _CANCEL_CODES.get(event.reason, grpc.StatusCode.CANCELLED)
    return error_class(code, event.reason)(
        event.message or "the run was cancelled",
        code=code,
        reason=event.reason,
        metadata={"run_id": event.run_id},
    )


class _Unset(enum.Enum):
    UNSET = "UNSET"


UNSET: Final = _Unset.UNSET
"""Marks an `update_agent` field that is not being changed."""


class AsyncOrchestrator:
    """An asyncio client of orchestrator.v1.OrchestratorService.

    `tenant` is sent as `x-tenant-id` with every call, `metadata` too; `credentials` makes
    the channel TLS; `timeout` is the default deadline in seconds of every call (runs
    included, chats excepted); `retry_unavailable` retries idempotent calls that failed
    with UNAVAILABLE (the server restarting, a dropped connection).
    """

    def __init__(
        self,
        address: str = _channel.DEFAULT_ADDRESS,
        *,
        tenant: str | None = None,
        metadata: Metadata | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float | None = None,
        retry_unavailable: bool = True,
    ) -> None:
        self.address = address
        self._timeout = timeout
        self._retry = retry_unavailable
        self._metadata = _channel.call_metadata(tenant, metadata)
        self._channel = _channel.open_channel(address, credentials, retry_unavailable)
        self._stub = pb_grpc.OrchestratorServiceStub(self._channel)

    async def close(self) -> None:
        """Close the channel (calls in flight are cancelled)."""
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- plumbing -----------------------------------------------------------------------

    async def _unary(
        self,
        method: Callable[..., Awaitable[R]],
        request: Any,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> R:
        try:
            return await method(request, metadata=self._metadata, timeout=timeout or self._timeout)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    async def _pages(
        self, fetch: Callable[[str], Awaitable[tuple[Sequence[T], str]]]
    ) -> AsyncIterator[T]:
        token = ""
        while True:
            items, token = await fetch(token)
            for item in items:
                yield item
            if not token:
                return

    def _open_run_call(self, timeout: float | None) -> Callable[[], _RunCall]:
        return lambda: _RunCall(self._stub, self._metadata, timeout)

    # -- agents -------------------------------------------------------------------------

    async def create_agent(
        self,
        agent_id: str,
        *,
        model: t.Model | str | None = None,
        system_message: str = "",
        tools: Iterable[str | t.ServerTool] = (),
        buffer_memory: t.BufferMemory | None = None,
        set_as_default: bool = False,
        labels: Mapping[str, str] | None = None,
        description: str = "",
        callable_agents: Iterable[str] = (),
        max_model_calls: int = 0,
        if_not_exists: bool = False,
    ) -> t.Agent:
        """Create an agent (AgentAlreadyExists if the id is taken, unless `if_not_exists`).

        `model` is a Model, a bare model name of the server's default provider, or None
        for the server's defaults; `tools` names server tools.
        """
        request = pb.CreateAgentRequest(
            agent=agent_pb2.Agent(
                agent_id=agent_id,
                system_message=system_message,
                description=description,
                model=_convert.model_to_pb(model),
                memory=agent_pb2.MemoryConfig(
                    max_messages=buffer_memory.max_messages if buffer_memory else 0
                ),
                tools=_convert.tool_names(tools),
                labels=dict(labels or {}),
                callable_agents=list(callable_agents),
                max_model_calls=max_model_calls,
            ),
            set_as_default=set_as_default,
            if_not_exists=if_not_exists,
        )
        if not (if_not_exists and self._retry):
            response = await self._unary(self._stub.CreateAgent, request)
            return _convert.agent_from_pb(response.agent)
        # Only get-or-create is idempotent, and the service config is per method, not per
        # request: this one case is retried here, with the channel's policy.
        policy = _channel.RETRY_POLICY
        delay = float(policy["initialBackoff"].rstrip("s"))
        for attempt in range(1, policy["maxAttempts"] + 1):
            try:
                response = await self._unary(self._stub.CreateAgent, request)
                return _convert.agent_from_pb(response.agent)
            except Unavailable:
                if attempt == policy["maxAttempts"]:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * policy["backoffMultiplier"], float(policy["maxBackoff"][:-1]))
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_or_create_agent(
        self,
        agent_id: str,
        *,
        model: t.Model | str | None = None,
        system_message: str = "",
        tools: Iterable[str | t.ServerTool] = (),
        buffer_memory: t.BufferMemory | None = None,
        set_as_default: bool = False,
        labels: Mapping[str, str] | None = None,
        description: str = "",
        callable_agents: Iterable[str] = (),
        max_model_calls: int = 0,
    ) -> t.Agent:
        """The agent with this id, created with these settings if it does not exist yet.

        An existing agent is returned unchanged (and `set_as_default` is not applied).
        """
        return await self.create_agent(
            agent_id,
            model=model,
            system_message=system_message,
            tools=tools,
            buffer_memory=buffer_memory,
            set_as_default=set_as_default,
            labels=labels,
            description=description,
            callable_agents=callable_agents,
            max_model_calls=max_model_calls,
            if_not_exists=True,
        )

    async def get_agent(self, agent_id: str) -> t.Agent:
        """One agent (AgentNotFound if there is none)."""
        response = await self._unary(self._stub.GetAgent, pb.GetAgentRequest(agent_id=agent_id))
        return _convert.agent_from_pb(response.agent)

    async def has_agent(self, agent_id: str) -> bool:
        """Whether an agent with this id exists (an id no agent could have is False)."""
        try:
            await self.get_agent(agent_id)
        except (AgentNotFound, InvalidAgentId):
            return False
        return True

    async def iter_agents(
        self, *, labels: Mapping[str, str] | None = None, page_size: int = 0
    ) -> AsyncIterator[t.Agent]:
        """Every agent in id order (only those carrying all `labels`), page by page."""

        async def fetch(token: str) -> tuple[list[t.Agent], str]:
            request = pb.ListAgentsRequest(
                page_size=page_size, page_token=token, label_filter=dict(labels or {})
            )
            response = await self._unary(self._stub.ListAgents, request)
            return [_convert.agent_from_pb(a) for a in response.agents], response.next_page_token

        async for agent in self._pages(fetch):
            yield agent

    async def list_agents(self, *, labels: Mapping[str, str] | None = None) -> list[str]:
        """The ids of all agents, in id order (like the original `list_agents`)."""
        return [agent.agent_id async for agent in self.iter_agents(labels=labels)]

    async def update_agent(
        self,
        agent_id: str,
        *,
        etag: str | None = None,
        system_message: str | _Unset = UNSET,
        description: str | _Unset = UNSET,
        model: t.Model | str | _Unset = UNSET,
        buffer_memory: t.BufferMemory | _Unset = UNSET,
        tools: Iterable[str | t.ServerTool] | _Unset = UNSET,
        labels: Mapping[str, str] | _Unset = UNSET,
        callable_agents: Iterable[str] | _Unset = UNSET,
        max_model_calls: int | _Unset = UNSET,
    ) -> t.Agent:
        """Change the fields passed, and only those; returns the updated agent.

        A Model replaces the whole model; a str changes only the model name. With `etag`
        the update applies only to that revision (EtagMismatch otherwise).
        """
        agent = agent_pb2.Agent(agent_id=agent_id, etag=etag or "")
        paths: list[str] = []
        if not isinstance(system_message, _Unset):
            agent.system_message = system_message
            paths.append("system_message")
        if not isinstance(description, _Unset):
            agent.description = description
            paths.append("description")
        if isinstance(model, str):
            agent.model.model = model
            paths.append("model.model")
        elif not isinstance(model, _Unset):
            agent.model.CopyFrom(_convert.model_to_pb(model))
            paths.append("model")
        if not isinstance(buffer_memory, _Unset):
            agent.memory.max_messages = buffer_memory.max_messages
            paths.append("memory")
        if not isinstance(tools, _Unset):
            agent.tools.extend(_convert.tool_names(tools))
            paths.append("tools")
        if not isinstance(labels, _Unset):
            agent.labels.update(labels)
            paths.append("labels")
        if not isinstance(callable_agents, _Unset):
            agent.callable_agents.extend(callable_agents)
            paths.append("callable_agents")
        if not isinstance(max_model_calls, _Unset):
            agent.max_model_calls = max_model_calls
            paths.append("max_model_calls")
        request = pb.UpdateAgentRequest(
            agent=agent, update_mask=field_mask_pb2.FieldMask(paths=paths)
        )
        response = await self._unary(self._stub.UpdateAgent, request)
        return _convert.agent_from_pb(response.agent)

    async def delete_agent(self, agent_id: str, etag: str | None = None) -> None:
        """Delete an agent with its sessions and runs (only that revision, with `etag`)."""
        await self._unary(
            self._stub.DeleteAgent, pb.DeleteAgentRequest(agent_id=agent_id, etag=etag or "")
        )

    async def set_default_agent(self, agent_id: str) -> t.Agent:
        """Make an agent the default: runs that name no agent go to it."""
        response = await self._unary(
            self._stub.SetDefaultAgent, pb.SetDefaultAgentRequest(agent_id=agent_id)
        )
        return _convert.agent_from_pb(response.agent)

    async def get_default_agent(self) -> t.Agent:
        """The default agent (NoDefaultAgent if none is set)."""
        response = await self._unary(self._stub.GetDefaultAgent, pb.GetDefaultAgentRequest())
        return _convert.agent_from_pb(response.agent)

    # -- running ------------------------------------------------------------------------

    def stream(
        self,
        message: str,
        agent_id: str | None = None,
        *,
        session_id: str | None = None,
        request_id: str | None = None,
        wait_if_busy: bool = False,
        timeout: float | None = None,
        tools: Iterable[_tools.ToolLike] | None = None,
        tool_timeout: float | None = None,
    ) -> RunStream:
        """Run one turn and stream its typed events (`async with` / `async for`).

        `agent_id` None means the default agent; `session_id` None the agent's default
        session. `request_id` makes the start idempotent: repeating it replays the run.
        `wait_if_busy` queues behind a turn running in the session instead of raising
        SessionBusy. The stream ends after RunCompleted or RunCancelled; a failed run
        raises its typed error.

        `tools` are client-side tools: Python functions (sync or async) or `tool(...)`
        objects, declared to the model with a schema from their type hints and
        docstring. When the model calls one, the stream runs it while you keep reading
        (calls of one model response run concurrently) and sends its return value, or
        the exception's text as the error the model sees; the ToolCallStarted and
        ToolCallFinished events still arrive. `tool_timeout` is how long the server waits
        for each result (default 60 s).
        """
        by_name = _tools.client_tools(tools)
        start = run_pb2.StartTurn(
            agent_id=agent_id or "",
            session_id=session_id or "",
            message=message,
            request_id=request_id or "",
            busy_policy=run_pb2.BUSY_POLICY_ENQUEUE if wait_if_busy else run_pb2.BUSY_POLICY_REJECT,
            client_tools=[tool.definition() for tool in by_name.values()],
            client_tool_timeout_seconds=tool_timeout or 0,
        )
        return RunStream(self._open_run_call(timeout or self._timeout), start, by_name)

    async def run(
        self,
        message: str,
        agent_id: str | None = None,
        *,
        session_id: str | None = None,
        request_id: str | None = None,
        wait_if_busy: bool = False,
        # A gRPC deadline for the whole run, enforced by the server too (not a local wait).
        timeout: float | None = None,  # noqa: ASYNC109
        tools: Iterable[_tools.ToolLike] | None = None,
        tool_timeout: float | None = None,
    ) -> str:
        """Run one turn and return the final answer (the original `await orchestrator.run`).

        `tools` are Python functions the model may call, run by this client during the
        turn (see `stream`). Raises the run's typed error; RunCancelledError when it was
        cancelled, and DeadlineExceeded when its deadline cancelled it.
        """
        async with self.stream(
            message,
            agent_id,
            session_id=session_id,
            request_id=request_id,
            wait_if_busy=wait_if_busy,
            timeout=timeout,
            tools=tools,
            tool_timeout=tool_timeout,
        ) as events:
            async for event in events:
                if not events.is_own_end(event):
                    continue
                if isinstance(event, t.RunCompleted):
                    return event.output
                if isinstance(event, t.RunCancelled):
                    raise cancelled_error(event)
        raise InternalError("the run's stream ended without a result")

    def chat(
        self,
        agent_id: str | None = None,
        *,
        session_id: str | None = None,
        wait_if_busy: bool = False,
        tools: Iterable[_tools.ToolLike] | None = None,
        tool_timeout: float | None = None,
    ) -> ChatSession:
        """A multi-turn conversation on one Run stream: `async with client.chat(...) as chat`.

        `chat.send(message)` starts a turn and returns its events; `chat.cancel()` cancels
        the turn in progress. Chats have no default deadline: they stay open while idle.
        `tools` are client-side tools offered in every turn (see `stream`).
        """
        return ChatSession(
            self._open_run_call(None),
            agent_id or "",
            session_id or "",
            wait_if_busy,
            _tools.client_tools(tools),
            tool_timeout,
        )

    # -- runs ---------------------------------------------------------------------------

    async def get_run(self, run_id: str) -> t.Run:
        """One run record (RunNotFound if there is none)."""
        response = await self._unary(self._stub.GetRun, pb.GetRunRequest(run_id=run_id))
        return _convert.run_from_pb(response.run)

    async def iter_runs(
        self,
        agent_id: str | None = None,
        session_id: str | None = None,
        *,
        page_size: int = 0,
    ) -> AsyncIterator[t.Run]:
        """Runs newest first, optionally of one agent (and one of its sessions)."""

        async def fetch(token: str) -> tuple[list[t.Run], str]:
            request = pb.ListRunsRequest(
                agent_id=agent_id or "",
                session_id=session_id or "",
                page_size=page_size,
                page_token=token,
            )
            response = await self._unary(self._stub.ListRuns, request)
            return [_convert.run_from_pb(r) for r in response.runs], response.next_page_token

        async for run in self._pages(fetch):
            yield run

    async def list_runs(
        self,
        agent_id: str | None = None,
        session_id: str | None = None,
        *,
        limit: int | None = None,
        page_size: int = 0,
    ) -> list[t.Run]:
        """Runs newest first (at most `limit`), optionally of one agent and session."""
        runs: list[t.Run] = []
        if limit is not None and limit <= 0:
            return runs
        async for run in self.iter_runs(agent_id, session_id, page_size=page_size):
            runs.append(run)
            if limit is not None and len(runs) >= limit:
                break
        return runs

    async def cancel_run(self, run_id: str) -> t.Run:
        """Cancel a queued or running run from anywhere; returns the run afterwards."""
        response = await self._unary(self._stub.CancelRun, pb.CancelRunRequest(run_id=run_id))
        return _convert.run_from_pb(response.run)

    # -- sessions -----------------------------------------------------------------------

    async def list_sessions(self, agent_id: str, *, page_size: int = 0) -> list[t.Session]:
        """An agent's sessions (conversations), in id order."""

        async def fetch(token: str) -> tuple[list[t.Session], str]:
            request = pb.ListSessionsRequest(
                agent_id=agent_id, page_size=page_size, page_token=token
            )
            response = await self._unary(self._stub.ListSessions, request)
            return [
                _convert.session_from_pb(s) for s in response.sessions
            ], response.next_page_token

        return [session async for session in self._pages(fetch)]

    async def list_messages(
        self, agent_id: str, session_id: str | None = None, *, page_size: int = 0
    ) -> list[t.Message]:
        """The messages of a session (default: the agent's default session), oldest first."""

        async def fetch(token: str) -> tuple[list[t.Message], str]:
            request = pb.ListMessagesRequest(
                agent_id=agent_id,
                session_id=session_id or "",
                page_size=page_size,
                page_token=token,
            )
            response = await self._unary(self._stub.ListMessages, request)
            return [
                _convert.message_from_pb(m) for m in response.messages
            ], response.next_page_token

        return [message async for message in self._pages(fetch)]

    async def delete_session(self, agent_id: str, session_id: str | None = None) -> int:
        """Clear a conversation; returns how many messages were deleted."""
        response = await self._unary(
            self._stub.DeleteSession,
            pb.DeleteSessionRequest(agent_id=agent_id, session_id=session_id or ""),
        )
        return response.deleted_messages

    # -- teams --------------------------------------------------------------------------

    async def create_team(
        self,
        team_id: str,
        members: Iterable[str],
        *,
        coordinator: str | None = None,
        description: str = "",
        member_template: str = "",
        synthesis_template: str = "",
        synthesis_item_template: str = "",
        max_concurrency: int = 0,
        member_timeout_seconds: float = 0.0,
        if_not_exists: bool = False,
    ) -> t.Team:
        """Create a team of existing agents (TeamAlreadyExists if the id is taken, unless
        `if_not_exists`, which returns the existing team unchanged).

        Empty templates and zero limits mean the server's defaults: members get
        "Task for {agent}: {task}", the coordinator a synthesis message listing each
        member's output under its name; 8 members at once, 300 s each.
        """
        request = pb.CreateTeamRequest(
            team=collaboration_pb2.Team(
                team_id=team_id,
                members=list(members),
                coordinator=coordinator or "",
                description=description,
                member_template=member_template,
                synthesis_template=synthesis_template,
                synthesis_item_template=synthesis_item_template,
                max_concurrency=max_concurrency,
                member_timeout_seconds=member_timeout_seconds,
            ),
            if_not_exists=if_not_exists,
        )
        response = await self._unary(self._stub.CreateTeam, request)
        return _convert.team_from_pb(response.team)

    async def get_team(self, team_id: str) -> t.Team:
        """One team (TeamNotFound if there is none)."""
        response = await self._unary(self._stub.GetTeam, pb.GetTeamRequest(team_id=team_id))
        return _convert.team_from_pb(response.team)

    async def has_team(self, team_id: str) -> bool:
        """Whether a team with this id exists."""
        try:
            await self.get_team(team_id)
        except TeamNotFound:
            return False
        return True

    async def iter_teams(self, *, page_size: int = 0) -> AsyncIterator[t.Team]:
        """Every team in id order, page by page."""

        async def fetch(token: str) -> tuple[list[t.Team], str]:
            request = pb.ListTeamsRequest(page_size=page_size, page_token=token)
            response = await self._unary(self._stub.ListTeams, request)
            return [_convert.team_from_pb(x) for x in response.teams], response.next_page_token

        async for team in self._pages(fetch):
            yield team

    async def list_teams(self) -> list[t.Team]:
        """All teams, in id order."""
        return [team async for team in self.iter_teams()]

    async def update_team(
        self,
        team_id: str,
        *,
        etag: str | None = None,
        members: Iterable[str] | _Unset = UNSET,
        coordinator: str | _Unset | None = UNSET,
        description: str | _Unset = UNSET,
        member_template: str | _Unset = UNSET,
        synthesis_template: str | _Unset = UNSET,
        synthesis_item_template: str | _Unset = UNSET,
        max_concurrency: int | _Unset = UNSET,
        member_timeout_seconds: float | _Unset = UNSET,
    ) -> t.Team:
        """Change the fields passed, and only those; returns the updated team.

        An empty template, a zero limit or `coordinator=None` returns the field to its
        default. With `etag` the update applies only to that revision (EtagMismatch).
        """
        team = collaboration_pb2.Team(team_id=team_id, etag=etag or "")
        paths: list[str] = []
        if not isinstance(members, _Unset):
            team.members.extend(members)
            paths.append("members")
        if not isinstance(coordinator, _Unset):
            team.coordinator = coordinator or ""
            paths.append("coordinator")
        scalars: dict[str, Any] = {
            "description": description,
            "member_template": member_template,
            "synthesis_template": synthesis_template,
            "synthesis_item_template": synthesis_item_template,
            "max_concurrency": max_concurrency,
            "member_timeout_seconds": member_timeout_seconds,
        }
        for name, value in scalars.items():
            if not isinstance(value, _Unset):
                setattr(team, name, value)
                paths.append(name)
        request = pb.UpdateTeamRequest(team=team, update_mask=field_mask_pb2.FieldMask(paths=paths))
        response = await self._unary(self._stub.UpdateTeam, request)
        return _convert.team_from_pb(response.team)

    async def delete_team(self, team_id: str, etag: str | None = None) -> None:
        """Delete a team (its past runs are kept); only that revision, with `etag`."""
        await self._unary(
            self._stub.DeleteTeam, pb.DeleteTeamRequest(team_id=team_id, etag=etag or "")
        )

    # -- collaboration ------------------------------------------------------------------

    def stream_team(
        self,
        team_id: str,
        task: str,
        *,
        timeout: float | None = None,
    ) -> CollaborationStream:
        """Run a team on a task and stream its typed collaboration events.

        Members run in parallel; their run events arrive as ParticipantEvent, tagged with
        the member. The stream ends after CollaborationCompleted; a failed team run (the
        coordinator failed, or every member did) raises its typed error.
        """
        request = collaboration_pb2.RunTeamRequest(team_id=team_id, task=task)
        deadline = timeout or self._timeout
        return CollaborationStream(
            lambda: self._stub.RunTeam(request, metadata=self._metadata, timeout=deadline)
        )

    async def run_team(
        self,
        team_id: str,
        task: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> t.TeamResult:
        """Run a team on a task: the final output and every member's result.

        Failed and timed-out members are reported in `members` (and named in the
        coordinator's input); the call raises only when the team run itself fails.
        """
        async with self.stream_team(team_id, task, timeout=timeout) as events:
            return await collect_team(events, team_id)

    def stream_pipeline(
        self,
        steps: Iterable[_convert.PipelineStepLike],
        input: str,
        *,
        session_id: str | None = None,
        timeout: float | None = None,
    ) -> CollaborationStream:
        """Run agents one after another and stream every step's typed events.

        `steps` are PipelineStep objects, `(agent_id, template)` pairs or agent ids;
        templates use `{input}` and `{previous}`. A failing step stops the pipeline: the
        stream raises that step's typed error, with metadata `step` (0-based) and
        `agent_id`.
        """
        request = collaboration_pb2.RunPipelineRequest(
            steps=[_convert.pipeline_step_to_pb(s) for s in steps],
            input=input,
            session_id=session_id or "",
        )
        deadline = timeout or self._timeout
        return CollaborationStream(
            lambda: self._stub.RunPipeline(request, metadata=self._metadata, timeout=deadline)
        )

    async def run_pipeline(
        self,
        steps: Iterable[_convert.PipelineStepLike],
        input: str,
        *,
        session_id: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> t.PipelineResult:
        """Run a pipeline: the last step's output and every step's result.

        `session_id` None runs every step in a new session of its own.
        """
        async with self.stream_pipeline(
            steps, input, session_id=session_id, timeout=timeout
        ) as events:
            return await collect_pipeline(events)


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
