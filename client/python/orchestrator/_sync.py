"""`Orchestrator`: the blocking client, an AsyncOrchestrator driven on a private event loop.

One daemon thread per client runs the loop; every method submits a coroutine to it and
waits. That keeps a single implementation of the protocol (streams, chats, errors) and
lets the blocking client be used from any thread. A call interrupted by Ctrl-C (or any
exception in the waiting thread) cancels its coroutine, so a run stops on the server.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Generator, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc

from . import _channel, _convert, _tools
from . import types as t
from ._client import UNSET, AsyncOrchestrator, Metadata, _Unset
from ._stream import ChatSession, CollaborationStream, RunStream

T = TypeVar("T")


class Answer(str):
    """A run's final answer: a `str` that can also be awaited (to itself).

    Code written for the original in-process Orchestrator says
    `response = await orchestrator.run(...)`; with the blocking client that line keeps
    working. The call still blocks its thread: async applications use AsyncOrchestrator.
    """

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, str]:
        return self
        yield  # makes this a generator without ever suspending


class _LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="orchestrator-client", daemon=True
        )
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop and wait for its result."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("the blocking client cannot be called from its own loop")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def stop(self) -> None:
        """Cancel what still runs on the loop, stop it and join its thread."""
        if self.loop.is_closed():
            return
        # Like asyncio.run's teardown: a stream's request generator may still wait on
        # its queue, and must be closed while the loop can still run its cleanup.
        asyncio.run_coroutine_threadsafe(_drain_loop(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


async def _drain_loop() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()


class SyncRunStream:
    """The events of one turn, as a blocking iterator; `cancel()` asks the server to stop."""

    def __init__(self, loop: _LoopThread, stream: RunStream) -> None:
        self._loop = loop
        self._stream = stream

    @property
    def run_id(self) -> str:
        """The run's id, known once RunStarted arrived."""
        return self._stream.run_id

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> t.RunEvent:
        try:
            event: t.RunEvent = self._loop.call(_anext(self._stream))
        except StopAsyncIteration:
            raise StopIteration from None
        return event

    def cancel(self) -> None:
        """Cancel the turn (does not wait; the events end with RunCancelled)."""
        self._loop.loop.call_soon_threadsafe(self._stream.cancel)

    def close(self) -> None:
        """Stop reading; a turn still running is cancelled."""
        self._loop.call(self._stream.aclose())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SyncChat:
    """A multi-turn conversation on one stream, blocking flavour of ChatSession."""

    def __init__(self, loop: _LoopThread, chat: ChatSession) -> None:
        self._loop = loop
        self._chat = chat

    @property
    def session_id(self) -> str:
        """The session (known after the first turn when the default one was used)."""
        return self._chat.session_id

    def send(self, message: str, *, request_id: str | None = None) -> SyncRunStream:
        """Start a turn and return its events."""
        return SyncRunStream(self._loop, self._chat.send(message, request_id=request_id))

    def cancel(self) -> None:
        """Cancel the turn in progress (safe from any thread, including signal handlers)."""
        self._loop.loop.call_soon_threadsafe(self._chat.cancel)

    def close(self) -> None:
        """End the conversation's stream."""
        self._loop.call(self._chat.aclose())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SyncCollaborationStream:
    """The events of a pipeline or team run, as a blocking iterator (`with` / `for`)."""

    def __init__(self, loop: _LoopThread, stream: CollaborationStream) -> None:
        self._loop = loop
        self._stream = stream

    @property
    def run_id(self) -> str:
        """The collaboration's run id, known once CollaborationStarted arrived."""
        return self._stream.run_id

    @property
    def session_id(self) -> str:
        """The participants' session, known once CollaborationStarted arrived."""
        return self._stream.session_id

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> t.CollaborationEvent:
        try:
            event: t.CollaborationEvent = self._loop.call(_anext(self._stream))
        except StopAsyncIteration:
            raise StopIteration from None
        return event

    def cancel(self) -> None:
        """Cancel the collaboration (safe from any thread); reading raises RunCancelledError."""
        self._loop.loop.call_soon_threadsafe(self._stream.cancel)

    def close(self) -> None:
        """Stop reading; a collaboration still running is cancelled."""
        self._loop.call(self._stream.aclose())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def _anext(iterator: Any) -> Any:
    return await iterator.__anext__()


async def _build(**kwargs: Any) -> AsyncOrchestrator:
    # The channel belongs to the loop it is created on.
    return AsyncOrchestrator(**kwargs)


class Orchestrator:
    """The blocking client: the same calls as AsyncOrchestrator, without `await`.

    `run` returns an `Answer`, a str that may also be awaited, so the original
    Orchestrator examples (`await orchestrator.run(...)`) run unchanged.
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
        self._loop = _LoopThread()
        try:
            self._client = self._loop.call(
                _build(
                    address=address,
                    tenant=tenant,
                    metadata=metadata,
                    credentials=credentials,
                    timeout=timeout,
                    retry_unavailable=retry_unavailable,
                )
            )
        except BaseException:
            self._loop.stop()
            raise
        self.address = address

    def close(self) -> None:
        """Close the channel and stop the client's thread."""
        if not self._loop.loop.is_closed():
            self._loop.call(self._client.close())
            self._loop.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _iterate(self, iterator: Any) -> Iterator[Any]:
        while True:
            try:
                yield self._loop.call(_anext(iterator))
            except StopAsyncIteration:
                return

    # -- agents -------------------------------------------------------------------------

    def create_agent(
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
        """Create an agent (see AsyncOrchestrator.create_agent)."""
        return self._loop.call(
            self._client.create_agent(
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
                if_not_exists=if_not_exists,
            )
        )

    def get_or_create_agent(
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
        """The agent with this id, created with these settings if it does not exist."""
        return self._loop.call(
            self._client.get_or_create_agent(
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
            )
        )

    def get_agent(self, agent_id: str) -> t.Agent:
        """One agent (AgentNotFound if there is none)."""
        return self._loop.call(self._client.get_agent(agent_id))

    def has_agent(self, agent_id: str) -> bool:
        """Whether an agent with this id exists."""
        return self._loop.call(self._client.has_agent(agent_id))

    def iter_agents(
        self, *, labels: Mapping[str, str] | None = None, page_size: int = 0
    ) -> Iterator[t.Agent]:
        """Every agent in id order (only those carrying all `labels`), page by page."""
        return self._iterate(self._client.iter_agents(labels=labels, page_size=page_size))

    def list_agents(self, *, labels: Mapping[str, str] | None = None) -> list[str]:
        """The ids of all agents, in id order."""
        return self._loop.call(self._client.list_agents(labels=labels))

    def update_agent(
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
        """Change the fields passed, and only those (see AsyncOrchestrator.update_agent)."""
        return self._loop.call(
            self._client.update_agent(
                agent_id,
                etag=etag,
                system_message=system_message,
                description=description,
                model=model,
                buffer_memory=buffer_memory,
                tools=tools,
                labels=labels,
                callable_agents=callable_agents,
                max_model_calls=max_model_calls,
            )
        )

    def delete_agent(self, agent_id: str, etag: str | None = None) -> None:
        """Delete an agent with its sessions and runs."""
        self._loop.call(self._client.delete_agent(agent_id, etag))

    def set_default_agent(self, agent_id: str) -> t.Agent:
        """Make an agent the default."""
        return self._loop.call(self._client.set_default_agent(agent_id))

    def get_default_agent(self) -> t.Agent:
        """The default agent (NoDefaultAgent if none is set)."""
        return self._loop.call(self._client.get_default_agent())

    # -- running ------------------------------------------------------------------------

    def run(
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
    ) -> Answer:
        """Run one turn and return the final answer (see AsyncOrchestrator.run).

        `tools` are Python functions the model may call; they run on the client's
        thread pool (async ones on its event loop).
        """
        return Answer(
            self._loop.call(
                self._client.run(
                    message,
                    agent_id,
                    session_id=session_id,
                    request_id=request_id,
                    wait_if_busy=wait_if_busy,
                    timeout=timeout,
                    tools=tools,
                    tool_timeout=tool_timeout,
                )
            )
        )

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
    ) -> SyncRunStream:
        """Run one turn and iterate its typed events (`with` / `for`); client `tools` run
        while you iterate."""
        return SyncRunStream(
            self._loop,
            self._client.stream(
                message,
                agent_id,
                session_id=session_id,
                request_id=request_id,
                wait_if_busy=wait_if_busy,
                timeout=timeout,
                tools=tools,
                tool_timeout=tool_timeout,
            ),
        )

    def chat(
        self,
        agent_id: str | None = None,
        *,
        session_id: str | None = None,
        wait_if_busy: bool = False,
        tools: Iterable[_tools.ToolLike] | None = None,
        tool_timeout: float | None = None,
    ) -> SyncChat:
        """A multi-turn conversation on one stream (`with client.chat(...) as chat`)."""
        return SyncChat(
            self._loop,
            self._client.chat(
                agent_id,
                session_id=session_id,
                wait_if_busy=wait_if_busy,
                tools=tools,
                tool_timeout=tool_timeout,
            ),
        )

    # -- runs ---------------------------------------------------------------------------

    def get_run(self, run_id: str) -> t.Run:
        """One run record (RunNotFound if there is none)."""
        return self._loop.call(self._client.get_run(run_id))

    def list_runs(
        self,
        agent_id: str | None = None,
        session_id: str | None = None,
        *,
        limit: int | None = None,
        page_size: int = 0,
    ) -> list[t.Run]:
        """Runs newest first (at most `limit`), optionally of one agent and session."""
        return self._loop.call(
            self._client.list_runs(agent_id, session_id, limit=limit, page_size=page_size)
        )

    def cancel_run(self, run_id: str) -> t.Run:
        """Cancel a queued or running run; returns the run afterwards."""
        return self._loop.call(self._client.cancel_run(run_id))

    # -- sessions -----------------------------------------------------------------------

    def list_sessions(self, agent_id: str, *, page_size: int = 0) -> list[t.Session]:
        """An agent's sessions, in id order."""
        return self._loop.call(self._client.list_sessions(agent_id, page_size=page_size))

    def list_messages(
        self, agent_id: str, session_id: str | None = None, *, page_size: int = 0
    ) -> list[t.Message]:
        """The messages of a session, oldest first."""
        return self._loop.call(
            self._client.list_messages(agent_id, session_id, page_size=page_size)
        )

    def delete_session(self, agent_id: str, session_id: str | None = None) -> int:
        """Clear a conversation; returns how many messages were deleted."""
        return self._loop.call(self._client.delete_session(agent_id, session_id))

    # -- teams --------------------------------------------------------------------------

    def create_team(
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
        """Create a team (see AsyncOrchestrator.create_team)."""
        return self._loop.call(
            self._client.create_team(
                team_id,
                list(members),
                coordinator=coordinator,
                description=description,
                member_template=member_template,
                synthesis_template=synthesis_template,
                synthesis_item_template=synthesis_item_template,
                max_concurrency=max_concurrency,
                member_timeout_seconds=member_timeout_seconds,
                if_not_exists=if_not_exists,
            )
        )

    def get_team(self, team_id: str) -> t.Team:
        """One team (TeamNotFound if there is none)."""
        return self._loop.call(self._client.get_team(team_id))

    def has_team(self, team_id: str) -> bool:
        """Whether a team with this id exists."""
        return self._loop.call(self._client.has_team(team_id))

    def list_teams(self) -> list[t.Team]:
        """All teams, in id order."""
        return self._loop.call(self._client.list_teams())

    def update_team(
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
        """Change the fields passed, and only those (see AsyncOrchestrator.update_team)."""
        return self._loop.call(
            self._client.update_team(
                team_id,
                etag=etag,
                members=members if isinstance(members, _Unset) else list(members),
                coordinator=coordinator,
                description=description,
                member_template=member_template,
                synthesis_template=synthesis_template,
                synthesis_item_template=synthesis_item_template,
                max_concurrency=max_concurrency,
                member_timeout_seconds=member_timeout_seconds,
            )
        )

    def delete_team(self, team_id: str, etag: str | None = None) -> None:
        """Delete a team (its past runs are kept)."""
        self._loop.call(self._client.delete_team(team_id, etag))

    # -- collaboration ------------------------------------------------------------------

    def stream_team(
        self, team_id: str, task: str, *, timeout: float | None = None
    ) -> SyncCollaborationStream:
        """Run a team and iterate its typed collaboration events (`with` / `for`)."""
        return SyncCollaborationStream(
            self._loop, self._client.stream_team(team_id, task, timeout=timeout)
        )

    def run_team(self, team_id: str, task: str, *, timeout: float | None = None) -> t.TeamResult:
        """Run a team on a task: the final output and every member's result."""
        return self._loop.call(self._client.run_team(team_id, task, timeout=timeout))

    def stream_pipeline(
        self,
        steps: Iterable[_convert.PipelineStepLike],
        input: str,
        *,
        session_id: str | None = None,
        timeout: float | None = None,
    ) -> SyncCollaborationStream:
        """Run a pipeline and iterate its typed collaboration events (`with` / `for`)."""
        return SyncCollaborationStream(
            self._loop,
            self._client.stream_pipeline(
                list(steps), input, session_id=session_id, timeout=timeout
            ),
        )

    def run_pipeline(
        self,
        steps: Iterable[_convert.PipelineStepLike],
        input: str,
        *,
        session_id: str | None = None,
        timeout: float | None = None,
    ) -> t.PipelineResult:
        """Run agents one after another: the last step's output and every step's result."""
        return self._loop.call(
            self._client.run_pipeline(list(steps), input, session_id=session_id, timeout=timeout)
        )


def connect(
    address: str = _channel.DEFAULT_ADDRESS,
    *,
    tenant: str | None = None,
    metadata: Metadata | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    timeout: float | None = None,
    retry_unavailable: bool = True,
) -> Orchestrator:
    """A blocking client (`with connect() as orchestrator: ...`)."""
    return Orchestrator(
        address,
        tenant=tenant,
        metadata=metadata,
        credentials=credentials,
        timeout=timeout,
        retry_unavailable=retry_unavailable,
    )
