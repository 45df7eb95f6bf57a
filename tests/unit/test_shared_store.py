"""The engine over a store shared by several replicas, with fakes of the ports: two
engines (two replicas) on one store that decides one turn per session and its queue,
and a doorbell hub between their coordinations. The real store and processes are in
tests/replicas; this pins the engine's side of the contract."""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import pytest
from fakes import Core, Reply, collect, make_core

from orchestrator_server.core import events as ev
from orchestrator_server.core.coordination_port import run_key, session_key
from orchestrator_server.core.errors import AbortedError, Reason
from orchestrator_server.core.store_port import AgentRevision, SessionBusyError, SessionRevision
from orchestrator_server.core.types import Message, Run, RunStatus, TurnRequest
from orchestrator_server.store.memory import InMemoryStore


@dataclass
class Hub:
    """The doorbells and cancel requests every replica's coordination shares."""

    bells: dict[str, set[asyncio.Event]] = field(default_factory=lambda: defaultdict(set))
    cancel_handlers: list[Callable[[str, str, str], None]] = field(default_factory=list)

    def ring(self, key: str) -> None:
        for bell in self.bells.get(key, ()):
            bell.set()


class _Bell:
    def __init__(self) -> None:
        self.rang = asyncio.Event()

    async def wait(self, at_most: float) -> None:
        try:
            async with asyncio.timeout(at_most):
                await self.rang.wait()
        except TimeoutError:
            pass
        self.rang.clear()


@dataclass
class HubCoordination:
    """A replica's Coordination over the hub."""

    hub: Hub
    shared: bool = True

    @contextmanager
    def bell(self, key: str) -> Iterator[_Bell]:
        bell = _Bell()
        self.hub.bells[key].add(bell.rang)
        try:
            yield bell
        finally:
            self.hub.bells[key].discard(bell.rang)

    async def request_cancel(self, tenant: str, run_id: str, superseded_by: str = "") -> None:
        for handler in self.hub.cancel_handlers:
            handler(tenant, run_id, superseded_by)

    def on_cancel(self, handler: Callable[[str, str, str], None]) -> None:
        self.hub.cancel_handlers.append(handler)

    def on_lease_lost(self, handler: Callable[[], None]) -> None:
        pass

    async def announce_followers(self, runs: Sequence[tuple[str, str]]) -> None:
        pass

    def on_follower(self, handler: Callable[[str, str], None]) -> None:
        pass


class SharedStore(InMemoryStore):
    """An in-memory store that decides, like a shared one, one turn per session and its
    FIFO queue, and rings the hub when a run ends."""

    def __init__(self, hub: Hub) -> None:
        super().__init__()
        self.hub = hub
        self.queues: dict[tuple[str, str, str], deque[str]] = defaultdict(deque)

    async def begin_run(
        self,
        tenant: str,
        run: Run,
        user_message: Message | None,
        *,
        queue_if_busy: bool = False,
        window_at: SessionRevision | None = None,
        agent_at: AgentRevision | None = None,
    ) -> Run:
        queue = self.queues[(tenant, run.agent_id, run.session_id)]
        if run.status is RunStatus.RUNNING and queue:
            if not queue_if_busy:
                raise SessionBusyError(queue[0])
            run, user_message = replace(run, status=RunStatus.QUEUED, start_time=None), None
        queue.append(run.run_id)
        return await super().begin_run(
            tenant, run, user_message, window_at=window_at, agent_at=agent_at
        )

    async def mark_running(
        self, tenant: str, run_id: str, start_time: float, user_message: Message
    ) -> bool:
        run = await self.get_run(tenant, run_id)
        assert run is not None
        queue = self.queues[(tenant, run.agent_id, run.session_id)]
        running = [r for r in queue if (await self.get_run(tenant, r)).status is RunStatus.RUNNING]  # type: ignore[union-attr]
        if running or queue[0] != run_id:
            return False
        return await super().mark_running(tenant, run_id, start_time, user_message)

    async def finish_run(self, tenant: str, run: Run, messages: list[Message]) -> list[Message]:  # type: ignore[override]
        stored = await super().finish_run(tenant, run, messages)
        queue = self.queues[(tenant, run.agent_id, run.session_id)]
        if run.run_id in queue:
            queue.remove(run.run_id)
        self.hub.ring(session_key(tenant, run.agent_id, run.session_id))
        self.hub.ring(run_key(tenant, run.run_id))
        return stored


@pytest.fixture
async def replicas() -> tuple[Core, Core]:
    hub = Hub()
    store = SharedStore(hub)
    a = make_core(store, coordination=HubCoordination(hub))
    b = make_core(store, coordination=HubCoordination(hub))
    await a.agent("alpha")
    return a, b


def turn(message: str, *, wait: bool = False) -> TurnRequest:
    return TurnRequest(agent_id="alpha", message=message, session_id="s", wait_if_busy=wait)


async def first_run_id(events: object) -> str:
    async for event in events:  # type: ignore[attr-defined]
        return str(event.run_id)
    raise AssertionError("no event")


async def test_a_start_on_another_replica_is_refused_naming_the_run_that_holds_it(
    replicas: tuple[Core, Core],
) -> None:
    a, b = replicas
    a.model.script(Reply("held", stall=True))
    running = a.engine.execute("t", turn("first"))
    holder = await first_run_id(running)
    with pytest.raises(AbortedError) as busy:
        await collect(b.engine.execute("t", turn("second")))
    assert busy.value.reason is Reason.SESSION_BUSY
    assert busy.value.metadata["active_run_id"] == holder
    a.model.unstall.set()
    await collect(running)


async def test_an_enqueued_start_on_another_replica_waits_for_its_turn(
    replicas: tuple[Core, Core],
) -> None:
    a, b = replicas
    a.model.script(Reply("one", stall=True))
    b.model.script(Reply("two"), Reply("two"))
    first = a.engine.execute("t", turn("first"))
    await first_run_id(first)
    second = b.engine.execute("t", turn("second", wait=True))
    announced = await anext(second)
    # Stored QUEUED behind the other replica's turn (the model request made in parallel
    # with the write was dropped).
    assert isinstance(announced.body, ev.RunStarted)
    assert announced.body.status is RunStatus.QUEUED
    a.model.unstall.set()
    await collect(first)
    events = await asyncio.wait_for(collect(second), 5)
    assert isinstance(events[-1].body, ev.RunCompleted) and events[-1].body.output == "two"
    history = await a.store.load_history("t", "alpha", "s", 10)
    assert [m.content for m in history] == ["first", "one", "second", "two"]


async def test_cancel_run_on_another_replica_reaches_the_one_executing_it(
    replicas: tuple[Core, Core],
) -> None:
    a, b = replicas
    a.model.script(Reply("held", stall=True))
    events = a.engine.execute("t", turn("first"))
    run_id = await first_run_id(events)
    await a.model.stalled.wait()
    cancelled = await asyncio.wait_for(b.records.cancel("t", run_id), 5)
    assert cancelled.status is RunStatus.CANCELLED
    rest = await collect(events)
    assert isinstance(rest[-1].body, ev.RunCancelled)
