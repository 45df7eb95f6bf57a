"""A run's first write, made on the loop where the store can: after the model request is
out (off the path to the first delta), still before the run is announced, and a write
refused then still ends the turn with the refusal and closes the model request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Coroutine
from typing import Any

import pytest
from fakes import Reply, collect, make_core

from orchestrator_server.core import events as ev
from orchestrator_server.core.errors import NotFoundError
from orchestrator_server.core.model_port import ChatRequest, ModelTurnEnd
from orchestrator_server.core.store_port import SessionOwnerError
from orchestrator_server.core.types import Message, Run, RunStatus, TurnRequest
from orchestrator_server.store.memory import InMemoryStore


def _at_once(write: Coroutine[Any, Any, Run]) -> Run:
    """Run a store coroutine that never suspends (the in-memory store's) to its end."""
    try:
        write.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise AssertionError("the write suspended")


class AtOnceStore(InMemoryStore):
    """Makes the first write at once (as SQLite does), logging when; `refuse` makes it
    fail as a session taken by another principal."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log
        self.refuse = False

    def may_begin_at_once(self, run: Run) -> bool:
        return True

    def begin_run_at_once(self, tenant: str, run: Run, user_message: Message | None) -> Run | None:
        self.log.append("write")
        if self.refuse:
            raise SessionOwnerError("someone-else")
        return _at_once(self.begin_run(tenant, run, user_message))


async def _logged_core(log: list[str]) -> tuple[AtOnceStore, Any]:
    store = AtOnceStore(log)
    core = make_core(store)
    await core.agent("alpha")
    scripted = core.model.stream

    async def stream(request: ChatRequest) -> AsyncGenerator[str | ModelTurnEnd, None]:
        log.append("model request")
        try:
            async for item in scripted(request):
                yield item
        finally:
            log.append("model request closed")

    core.model.stream = stream  # type: ignore[method-assign]
    return store, core


async def test_the_write_follows_the_model_request_and_precedes_the_announcement() -> None:
    log: list[str] = []
    store, core = await _logged_core(log)
    core.model.script(Reply("hello there"))
    events = await collect(core.engine.execute("t", TurnRequest("alpha", "hi")))
    assert log[:2] == ["model request", "write"]
    kinds = [type(e.body) for e in events]
    assert kinds.index(ev.RunStarted) == 0
    assert kinds.index(ev.TextDelta) > 0
    run = await store.get_run("t", events[0].run_id)
    assert run is not None and run.status is RunStatus.COMPLETED
    # The model saw the user message although it was not stored yet when it was asked.
    assert core.model.calls[0][-1] == {"role": "user", "content": "hi"}


async def test_a_refused_write_ends_a_stalled_model_request_with_the_refusal() -> None:
    log: list[str] = []
    store, core = await _logged_core(log)
    store.refuse = True
    core.model.script(Reply("never", stall=True))  # the first token would never come
    with pytest.raises(NotFoundError):
        await asyncio.wait_for(collect(core.engine.execute("t", TurnRequest("alpha", "hi"))), 5)
    assert log == ["model request", "write", "model request closed"]
    # Nothing was stored, and the session is free for the next turn.
    assert await store.load_history("t", "alpha", "default", 10) == []
    store.refuse = False
    core.model.script(Reply("fine"))
    events = await collect(core.engine.execute("t", TurnRequest("alpha", "again")))
    assert isinstance(events[-1].body, ev.RunCompleted)


async def test_a_store_without_writes_on_the_loop_starts_the_write_before_the_request() -> None:
    log: list[str] = []
    store, core = await _logged_core(log)
    store.may_begin_at_once = lambda run: False  # type: ignore[method-assign]
    written = store.begin_run

    def begin_run(
        tenant: str, run: Run, message: Message | None, **options: Any
    ) -> Coroutine[Any, Any, Run]:
        log.append("write")  # when the write is sent, before its first step runs
        return written(tenant, run, message, **options)

    store.begin_run = begin_run  # type: ignore[method-assign]
    core.model.script(Reply("hello"))
    events = await collect(core.engine.execute("t", TurnRequest("alpha", "hi")))
    assert log[:2] == ["write", "model request"]
    assert isinstance(events[0].body, ev.RunStarted)
    assert isinstance(events[-1].body, ev.RunCompleted)
