"""A run's first write, made on the loop where the store can: after the model request is
out (off the path to the first delta), still before the run is announced, and a write
refused then still ends the turn with the refusal and closes the model request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fakes import Reply, collect, make_core

from orchestrator_server.core import events as ev
from orchestrator_server.core.access import AccessRole, Caller, acting_as
from orchestrator_server.core.errors import NotFoundError, Reason
from orchestrator_server.core.model_port import ChatRequest, ModelTurnEnd
from orchestrator_server.core.start_gate import StartGate
from orchestrator_server.core.store_port import SessionOwnerError
from orchestrator_server.core.types import Message, Run, RunQuery, RunStatus, TurnRequest
from orchestrator_server.store.memory import InMemoryStore
from orchestrator_server.store.sqlite import SQLiteStore


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


async def _sqlite_core(tmp_path: Path) -> tuple[SQLiteStore, Any, list[str]]:
    """The core on a real SQLite store (which makes first writes on the loop), logging
    when a first write is made."""
    store = SQLiteStore(str(tmp_path / "o.db"))
    await store.open()
    core = make_core(store)
    await core.agent("alpha")
    log: list[str] = []
    at_once = store.begin_run_at_once

    def logged(tenant: str, run: Run, message: Message | None) -> Run | None:
        log.append("write")
        return at_once(tenant, run, message)

    store.begin_run_at_once = logged  # type: ignore[method-assign]
    return store, core, log


def _as(principal: str, core: Any, request: TurnRequest) -> asyncio.Future[list[Any]]:
    with acting_as(Caller(principal, "t", frozenset({AccessRole.RUNNER}))):
        return asyncio.ensure_future(collect(core.engine.execute("t", request)))


async def test_the_first_of_two_principals_starting_a_new_session_gets_it(
    tmp_path: Path,
) -> None:
    """The first turn holds the session and sends its model request; the second, queued
    behind it, must not have its write made first (it would claim the session, and the
    first turn would be refused after its request went out)."""
    store, core, _ = await _sqlite_core(tmp_path)
    try:
        core.model.script(Reply("first"), Reply("second"))
        first = _as("p1", core, TurnRequest("alpha", "hi", session_id="s"))
        second = _as("p2", core, TurnRequest("alpha", "me too", session_id="s", wait_if_busy=True))
        owner, other = await asyncio.gather(first, second, return_exceptions=True)
        assert isinstance(owner, list) and isinstance(owner[-1].body, ev.RunCompleted)
        assert isinstance(other, NotFoundError)
    finally:
        await store.close()


def _cut_off_at_request(
    core: Any, how: str, caller: list[asyncio.Future[Any]], log: list[str] | None = None
) -> None:
    """As the model request goes out: the run is cancelled ("cancel"), the server stops
    ("stop") or the caller goes away (anything else: `caller[0]` is cancelled)."""
    scripted = core.model.stream

    async def stream(request: ChatRequest) -> AsyncGenerator[str | ModelTurnEnd, None]:
        if log is not None:
            log.append("model request")  # before the deferred first write
        if how == "cancel":
            (active,) = core.engine.active.in_session("t", "alpha", "default")
            active.cancel(Reason.RUN_CANCELLED, "cancelled")
        elif how == "stop":
            asyncio.get_running_loop().call_soon(
                lambda: asyncio.ensure_future(core.engine.active.shutdown())
            )
        else:
            caller[0].cancel()
        async for item in scripted(request):
            yield item

    core.model.stream = stream


@pytest.mark.parametrize("how", ["cancel", "stop", "caller gone"])
async def test_a_turn_cut_off_as_its_request_goes_out_ends_once_and_frees_the_session(
    tmp_path: Path, how: str
) -> None:
    store, core, log = await _sqlite_core(tmp_path)
    caller: list[asyncio.Future[Any]] = []
    _cut_off_at_request(core, how, caller, log)
    core.model.script(Reply("hello there", stall=True))
    events = asyncio.ensure_future(collect(core.engine.execute("t", TurnRequest("alpha", "hi"))))
    caller.append(events)
    (result,) = await asyncio.gather(events, return_exceptions=True)
    await core.engine.active.idle()
    try:
        assert log[:2] == ["model request", "write"]
        runs = await store.list_runs("t", RunQuery(limit=10, agent_id="alpha"))
        assert [r.status for r in runs] in (
            [RunStatus.CANCELLED],
            [RunStatus.INTERRUPTED],
        )
        assert core.engine.busy_run("t", "alpha", "default") == ""
        if isinstance(result, list):
            assert isinstance(result[0].body, ev.RunStarted)
    finally:
        await store.close()


async def test_a_write_made_on_the_loop_announces_the_run_before_the_loop_turns() -> None:
    """RunStarted is emitted as the write returns, not from the write's done-callback a
    turn of the loop later (after the model's response, by then arrived, is handled):
    the caller has it well before the first delta."""
    emitted: list[object] = []
    at_next_turn: list[list[object]] = []
    run = Run("run_1", "alpha", "default", RunStatus.RUNNING, "hi", 0.0)

    class Store(InMemoryStore):
        def may_begin_at_once(self, run: Run) -> bool:
            return True

        def begin_run_at_once(self, tenant: str, run: Run, message: Message | None) -> Run:
            asyncio.get_running_loop().call_soon(lambda: at_next_turn.append(list(emitted)))
            return _at_once(self.begin_run(tenant, run, message))

    def sequence(begin: Callable[[], Awaitable[Run]]) -> asyncio.Future[Run]:
        return asyncio.ensure_future(begin())

    gate = StartGate(Store(), "t", run, None, emitted.append, sequence=sequence)
    gate.submit()
    await gate.wait()
    assert at_next_turn == [[ev.RunStarted("default", RunStatus.RUNNING)]]
    assert emitted == [ev.RunStarted("default", RunStatus.RUNNING)]  # once


class QueuingAtOnceStore(InMemoryStore):
    """Makes the first write at once and, like a shared store whose session another
    replica runs, stores a RUNNING run QUEUED (without its user message). `arrived` is
    set as the write is made: the model's first token arrives in that same loop turn."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()
        self.queue_next = False

    def may_begin_at_once(self, run: Run) -> bool:
        return True

    def begin_run_at_once(self, tenant: str, run: Run, user_message: Message | None) -> Run | None:
        if not self.queue_next:
            return None
        self.queue_next = False
        queued = replace(run, status=RunStatus.QUEUED, start_time=None)
        write = self.begin_run(tenant, queued, None)
        try:
            write.send(None)
        except StopIteration as done:
            self.arrived.set()  # the model's answer is read in this loop turn
            return done.value  # type: ignore[no-any-return]
        raise AssertionError("the write suspended")


async def test_no_delta_of_a_request_dropped_because_the_store_queued_the_run() -> None:
    store = QueuingAtOnceStore()
    core = make_core(store)
    await core.agent("alpha")
    scripted = core.model.stream
    calls = 0

    async def stream(request: ChatRequest) -> AsyncGenerator[str | ModelTurnEnd, None]:
        nonlocal calls
        calls += 1
        if calls == 1:
            await store.arrived.wait()  # the answer lands as the write is made
            yield "dropped"
            yield ModelTurnEnd((), None, "stop")  # type: ignore[arg-type]
            return
        async for item in scripted(request):
            yield item

    core.model.stream = stream  # type: ignore[method-assign]
    core.model.script(Reply("answer"))
    store.queue_next = True
    events = await asyncio.wait_for(
        collect(core.engine.execute("t", TurnRequest("alpha", "hi"))), 10
    )
    deltas = [e.body.text for e in events if isinstance(e.body, ev.TextDelta)]
    completed = events[-1].body
    assert isinstance(completed, ev.RunCompleted), events
    # The caller's deltas must add up to the recorded answer: the dropped request's text
    # must never reach it.
    assert "".join(deltas) == completed.output, (deltas, completed.output)


@pytest.mark.parametrize("how", ["stop", "caller gone"])
async def test_no_event_of_a_run_whose_write_was_refused(how: str) -> None:
    log: list[str] = []
    store, core = await _logged_core(log)
    store.refuse = True
    caller: list[asyncio.Future[Any]] = []
    _cut_off_at_request(core, how, caller)
    core.model.script(Reply("hello there", stall=True))
    seen: list[object] = []

    async def run() -> None:
        async for e in core.engine.execute("t", TurnRequest("alpha", "hi")):
            seen.append(e)

    events = asyncio.ensure_future(run())
    caller.append(events)
    await asyncio.gather(events, return_exceptions=True)
    await core.engine.active.idle()
    bodies = [type(e.body).__name__ for e in seen]  # type: ignore[attr-defined]
    # A run never stored is never shown (nor any event of it before RunStarted).
    assert not bodies or bodies[0] == "RunStarted", bodies
