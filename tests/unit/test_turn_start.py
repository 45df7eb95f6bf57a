"""A turn's start over a shared store (fakes of the ports): the agent, the session's
owner and the memory window come from one read, and the run's write checks the window
is still current; a turn that ended elsewhere in between is never missing from what the
model is sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fakes import Core, GatedStore, Reply, WriteHold, collect, make_core
from test_shared_store import Hub, HubCoordination, SharedStore

from orchestrator_server.core import events as ev
from orchestrator_server.core.errors import (
    InvalidArgumentError,
    NotFoundError,
    QuotaExceededError,
    Reason,
    UnavailableError,
)
from orchestrator_server.core.quotas import StorageQuotas
from orchestrator_server.core.store_port import TurnStart
from orchestrator_server.core.types import RunStatus, TurnRequest


class HeldReads(SharedStore):
    """A shared store counting its reads, whose next turn-start read can be held after
    it has read (so that another turn can end before the run's write)."""

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub)
        self.reads: list[str] = []
        self.hold: asyncio.Event | None = None
        self.held = asyncio.Event()
        self.writing = False

    async def read_turn_start(
        self, tenant: str, agent_id: str, session_id: str, text: str
    ) -> TurnStart:
        self.reads.append("turn_start")
        start = await super().read_turn_start(tenant, agent_id, session_id, text)
        if self.hold is not None:
            self.held.set()
            await self.hold.wait()
        return start

    async def load_history(self, *args: Any) -> Any:
        self.reads.append("history")
        return await super().load_history(*args)

    async def session_owner(self, *args: Any) -> Any:
        self.reads.append("owner")
        return await super().session_owner(*args)

    async def check_turn_fits(self, tenant: str, text: str) -> None:
        if not self.writing:  # the in-memory write checks the quota again, by this call
            self.reads.append("quota")
        await super().check_turn_fits(tenant, text)

    async def begin_run(self, *args: Any, **options: Any) -> Any:
        self.writing = True
        try:
            return await super().begin_run(*args, **options)
        finally:
            self.writing = False


def turn(message: str, agent_id: str = "alpha") -> TurnRequest:  # "": the default agent
    return TurnRequest(agent_id=agent_id, message=message, session_id="s")


async def test_a_turn_reads_its_agent_session_and_window_once() -> None:
    store = HeldReads(Hub())
    core = make_core(store, coordination=HubCoordination(store.hub))
    await core.agent("alpha")
    core.model.script(Reply("one"), Reply("two"))
    await collect(core.engine.execute("t", turn("first")))
    store.reads.clear()
    events = await collect(core.engine.execute("t", turn("second")))
    assert store.reads == ["turn_start"]
    assert [m["content"] for m in core.model.calls[-1]] == ["first", "one", "second"]
    assert isinstance(events[-1].body, ev.RunCompleted) and events[-1].body.output == "two"


async def test_a_turn_that_ended_elsewhere_after_the_read_is_in_what_the_model_is_sent() -> None:
    hub = Hub()
    store = HeldReads(hub)
    a = make_core(store, coordination=HubCoordination(hub))
    b = make_core(store, coordination=HubCoordination(hub))
    await a.agent("alpha")
    a.model.script(Reply("one", stall=True))
    first = a.engine.execute("t", turn("first"))
    await anext(first)  # RunStarted: stored, running
    await a.model.stalled.wait()
    release = store.hold = asyncio.Event()
    second = asyncio.ensure_future(collect(b.engine.execute("t", turn("second"))))
    await store.held.wait()  # b read the window ["first"] while a's turn still ran
    store.hold = None
    a.model.unstall.set()
    await collect(first)  # a's turn ended: "one" is stored after b's read
    b.model.script(Reply("two"), Reply("two"))
    release.set()
    # b's write finds the session moved on: a request built on the old window is dropped
    # unread, and the turn asks again on the window as it is now.
    events = await asyncio.wait_for(second, 5)
    assert [m["content"] for m in b.model.calls[-1]] == ["first", "one", "second"]
    started = [e.body for e in events if isinstance(e.body, ev.RunStarted)]
    assert [s.status for s in started] == [RunStatus.RUNNING]
    deltas = "".join(e.body.text for e in events if isinstance(e.body, ev.TextDelta))
    assert deltas == events[-1].body.output == "two"
    history = await store.load_history("t", "alpha", "s", 10)
    assert [m.content for m in history] == ["first", "one", "second", "two"]


async def test_a_shared_store_refuses_an_unknown_agent_and_a_malformed_id_before_reading() -> None:
    store = HeldReads(Hub())
    core = make_core(store, coordination=HubCoordination(store.hub))
    await core.agent("alpha")
    with pytest.raises(NotFoundError) as missing:
        await collect(core.engine.execute("t", turn("hi", agent_id="ghost")))
    assert missing.value.reason is Reason.AGENT_NOT_FOUND
    store.reads.clear()
    with pytest.raises(InvalidArgumentError):
        await collect(core.engine.execute("t", turn("hi", agent_id="../" * 100)))
    assert store.reads == []


async def test_a_turn_over_the_tenants_stored_bytes_is_refused_by_the_same_read() -> None:
    store = HeldReads(Hub())
    store._quotas = StorageQuotas(max_stored_bytes_per_tenant=100)
    core = make_core(store, coordination=HubCoordination(store.hub))
    await core.agent("alpha")
    store.reads.clear()
    with pytest.raises(QuotaExceededError):
        await collect(core.engine.execute("t", turn("x" * 60)))
    assert store.reads == ["turn_start"]
    assert core.model.calls == [] and await store.load_history("t", "alpha", "s", 10) == []
    events = await collect(core.engine.execute("t", turn("fits")))
    assert isinstance(events[-1].body, ev.RunCompleted)


class HeldWrite(WriteHold, SharedStore):
    """A shared store whose run-starting write can be held (see WriteHold)."""


async def two_replicas_one_turn_running() -> tuple[HeldWrite, Core, Core, AsyncIterator[Any]]:
    """Replicas a and b on one HeldWrite store; a runs a turn of session s, stalled."""
    hub = Hub()
    store = HeldWrite(hub)
    a = make_core(store, coordination=HubCoordination(hub))
    b = make_core(store, coordination=HubCoordination(hub))
    await a.agent("alpha")  # the tenant's default agent too
    a.model.script(Reply("one", stall=True))
    first = a.engine.execute("t", turn("first"))
    await anext(first)  # RunStarted: stored, running on a
    await a.model.stalled.wait()
    store.hold = "second"
    return store, a, b, first


@pytest.mark.parametrize("agent_id", ["alpha", ""])
async def test_a_turn_that_ended_before_the_claim_is_in_the_window_named_agent_or_default(
    agent_id: str,
) -> None:
    store, a, b, first = await two_replicas_one_turn_running()
    b.model.script(Reply("dropped", stall=True), Reply("two"))
    second = asyncio.ensure_future(collect(b.engine.execute("t", turn("second", agent_id))))
    await store.writing.wait()
    await b.model.stalled.wait()  # b's request on the window ["first"] is out
    a.model.unstall.set()
    await collect(first)  # a's turn ends before b's write claims the session
    store.release.set()
    events = await asyncio.wait_for(second, 5)
    assert isinstance(events[-1].body, ev.RunCompleted) and events[-1].body.output == "two"
    assert [m["content"] for m in b.model.calls[-1]] == ["first", "one", "second"]


async def test_a_request_that_failed_before_the_write_found_its_window_stale_is_asked_again() -> (
    None
):
    store, a, b, first = await two_replicas_one_turn_running()
    busy = UnavailableError("model overloaded", reason=Reason.MODEL_UNAVAILABLE)
    b.model.script(Reply(error=busy), Reply("two"))
    second = asyncio.ensure_future(collect(b.engine.execute("t", turn("second"))))
    await store.writing.wait()
    await b.model.called.wait()  # and failed: the turn waits for its write's answer
    a.model.unstall.set()
    await collect(first)
    store.release.set()
    events = await asyncio.wait_for(second, 5)
    assert isinstance(events[-1].body, ev.RunCompleted) and events[-1].body.output == "two"
    assert [m["content"] for m in b.model.calls[-1]] == ["first", "one", "second"]


@pytest.mark.parametrize("stale", [False, True])
async def test_a_cancel_handled_as_the_write_completes_still_records_an_end(stale: bool) -> None:
    store, a, b, first = await two_replicas_one_turn_running()
    if not stale:  # b's window is current: a ends before b's turn starts
        a.model.unstall.set()
        await collect(first)
    b.model.script(Reply("dropped", stall=True), Reply("two"))
    events: list[Any] = []

    async def consume() -> None:
        async for event in b.engine.execute("t", turn("second")):
            events.append(event)

    second = asyncio.ensure_future(consume())
    await store.writing.wait()
    await b.model.stalled.wait()
    if stale:
        a.model.unstall.set()
        await collect(first)
    run_id = b.engine.active.in_session("t", "alpha", "s")[0].run.run_id
    cancel = asyncio.ensure_future(b.engine.active.cancel("t", run_id))
    await asyncio.sleep(0)  # the cancel is delivered in the loop turn the write completes
    store.release.set()
    await asyncio.wait_for(cancel, 5)
    await asyncio.wait_for(second, 5)
    stored = await store.get_run("t", run_id)
    bodies = [type(e.body).__name__ for e in events]
    assert stored is not None and stored.status is RunStatus.CANCELLED, (stored, bodies)
    assert bodies == ["RunStarted", "RunCancelled"]
    b.model.script(Reply("three"))  # the session is free again
    after = await collect(b.engine.execute("t", turn("third")))
    assert isinstance(after[-1].body, ev.RunCompleted)


async def test_a_request_that_failed_while_the_write_was_refused_reports_the_refusal() -> None:
    """Any store: the run was never stored, so the write's refusal is the answer, not
    the failure of a model request made while it was in flight."""
    store = GatedStore(holds=lambda run: run.input.startswith("b"))
    store._quotas = StorageQuotas(max_stored_bytes_per_tenant=700)
    core = make_core(store)
    store.gate.set()
    await core.agent("alpha")
    store.gate.clear()
    busy = UnavailableError("model overloaded", reason=Reason.MODEL_UNAVAILABLE)
    core.model.script(Reply(error=busy))
    held = TurnRequest("alpha", "b" * 200, session_id="s2")
    second = asyncio.ensure_future(collect(core.engine.execute("t", held)))
    await store.entered.wait()
    await core.model.called.wait()  # and failed while the write is held
    core.model.script(Reply("ok"))
    await collect(core.engine.execute("t", TurnRequest("alpha", "a" * 200, session_id="s1")))
    store.gate.set()  # the held write now finds the tenant's bytes used up
    with pytest.raises(QuotaExceededError):
        await asyncio.wait_for(second, 5)
    assert await store.load_history("t", "alpha", "s2", 10) == []
