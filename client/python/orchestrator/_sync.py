"""`Orchestrator`: the blocking client, derived from AsyncOrchestrator.

It drives an AsyncOrchestrator on a private event loop (`LoopThread`), so the protocol
(streams, chats, errors) is implemented once; every method is the blocking form of the
asyncio method of the same name (`_blocking.blocking`), with its parameters and
docstring. The class body names each one so that type checkers see it; a method
AsyncOrchestrator gains without that line is still forwarded at import
(`FORWARDED_UNDECLARED`), untyped, and a test asks for the line.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ._blocking import (
    Blocking,
    SyncChat,
    SyncCollaborationStream,
    SyncRunStream,
    blocking,
    forward_undeclared,
)
from ._client import AsyncOrchestrator
from ._loop import LoopThread
from ._signatures import method_with_parameters, same_parameters

__all__ = [
    "FORWARDED_UNDECLARED",
    "Answer",
    "Orchestrator",
    "SyncChat",
    "SyncCollaborationStream",
    "SyncRunStream",
    "connect",
]


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


async def _build(*args: Any, **kwargs: Any) -> AsyncOrchestrator:
    # The channel belongs to the loop it is created on.
    return AsyncOrchestrator(*args, **kwargs)


class Orchestrator(Blocking):
    """The blocking client: the calls of AsyncOrchestrator, with the same arguments,
    without `await`; usable from any thread, and as `with Orchestrator(...) as client`.

    Coroutine methods return their result; `iter_*` methods return iterators; `stream`,
    `chat`, `stream_team` and `stream_pipeline` return SyncRunStream, SyncChat and
    SyncCollaborationStream (`with` / `for`). `run` returns an `Answer`, a str that may
    also be awaited, so the original Orchestrator examples (`await
    orchestrator.run(...)`) run unchanged. Ctrl-C in a waiting call cancels it.
    """

    @method_with_parameters(AsyncOrchestrator)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loop = LoopThread()
        try:
            self._target: AsyncOrchestrator = self._loop.call(_build(*args, **kwargs))
        except BaseException:
            self._loop.stop()
            raise
        self.address = self._target.address

    def close(self) -> None:
        """Close the channel and stop the client's thread."""
        if not self._loop.loop.is_closed():
            self._loop.call(self._target.close())
            self._loop.stop()

    create_agent = blocking(AsyncOrchestrator.create_agent)
    get_or_create_agent = blocking(AsyncOrchestrator.get_or_create_agent)
    get_agent = blocking(AsyncOrchestrator.get_agent)
    has_agent = blocking(AsyncOrchestrator.has_agent)
    iter_agents = blocking(AsyncOrchestrator.iter_agents)
    list_agents = blocking(AsyncOrchestrator.list_agents)
    update_agent = blocking(AsyncOrchestrator.update_agent)
    delete_agent = blocking(AsyncOrchestrator.delete_agent)
    set_default_agent = blocking(AsyncOrchestrator.set_default_agent)
    get_default_agent = blocking(AsyncOrchestrator.get_default_agent)

    stream = blocking(AsyncOrchestrator.stream)
    run = blocking(AsyncOrchestrator.run, Answer)
    chat = blocking(AsyncOrchestrator.chat)
    get_run = blocking(AsyncOrchestrator.get_run)
    iter_runs = blocking(AsyncOrchestrator.iter_runs)
    list_runs = blocking(AsyncOrchestrator.list_runs)
    cancel_run = blocking(AsyncOrchestrator.cancel_run)
    follow = blocking(AsyncOrchestrator.follow)
    list_sessions = blocking(AsyncOrchestrator.list_sessions)
    list_messages = blocking(AsyncOrchestrator.list_messages)
    delete_session = blocking(AsyncOrchestrator.delete_session)

    create_team = blocking(AsyncOrchestrator.create_team)
    get_team = blocking(AsyncOrchestrator.get_team)
    has_team = blocking(AsyncOrchestrator.has_team)
    iter_teams = blocking(AsyncOrchestrator.iter_teams)
    list_teams = blocking(AsyncOrchestrator.list_teams)
    create_api_key = blocking(AsyncOrchestrator.create_api_key)
    iter_api_keys = blocking(AsyncOrchestrator.iter_api_keys)
    revoke_api_key = blocking(AsyncOrchestrator.revoke_api_key)
    iter_audit_events = blocking(AsyncOrchestrator.iter_audit_events)
    iter_usage = blocking(AsyncOrchestrator.iter_usage)
    update_team = blocking(AsyncOrchestrator.update_team)
    delete_team = blocking(AsyncOrchestrator.delete_team)
    stream_team = blocking(AsyncOrchestrator.stream_team)
    run_team = blocking(AsyncOrchestrator.run_team)
    stream_pipeline = blocking(AsyncOrchestrator.stream_pipeline)
    run_pipeline = blocking(AsyncOrchestrator.run_pipeline)


FORWARDED_UNDECLARED = forward_undeclared(Orchestrator, AsyncOrchestrator)
"""Public AsyncOrchestrator methods the Orchestrator class body does not name: forwarded
all the same, but invisible to type checkers (a test keeps this empty)."""


@same_parameters(AsyncOrchestrator)
def connect(*args: Any, **kwargs: Any) -> Orchestrator:
    """A blocking client (`with connect() as orchestrator: ...`)."""
    return Orchestrator(*args, **kwargs)
