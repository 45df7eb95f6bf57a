"""Cancels at the worst moments: every run still ends with exactly one recorded outcome,
and its stream says the same as its record (found by an adversarial review)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from fakes import GatedStore, Reply, collect, gated_core, make_core
from test_run_stream import Client

from orchestrator_server.core import events as ev
from orchestrator_server.core.collaboration import Collaborations
from orchestrator_server.core.errors import (
    DeadlineExceededError,
    OrchestratorError,
    Reason,
    UnavailableError,
)
from orchestrator_server.core.pagination import PageTokens
from orchestrator_server.core.pipelines import PipelineRunner
from orchestrator_server.core.run_stream import CancelTurn, ToolResult
from orchestrator_server.core.start_gate import StartGate
from orchestrator_server.core.team_runs import TeamRunner
from orchestrator_server.core.teams import TeamRegistry
from orchestrator_server.core.tool_calls import ClientToolBridge
from orchestrator_server.core.types import (
    Agent,
    AgentSpec,
    Message,
    NewAgent,
    PipelineStep,
    Run,
    RunStatus,
    TeamSpec,
    ToolCall,
    TurnRequest,
)
from orchestrator_server.store.memory import InMemoryStore
from orchestrator_server.store.sqlite import SQLiteStore


class HeldFinishStore(InMemoryStore):
    """Outcome writes wait for `release` while `hold` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.release = asyncio.Event()
        self.writing = asyncio.Event()

    async def finish_run(self, tenant: str, run: Run, messages: Sequence[Message]) -> list[Message]:
        if self.hold:
            self.writing.set()
            await self.release.wait()
        return await super().finish_run(tenant, run, messages)


@pytest.fixture
def settling(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Set when a cancelled turn starts waiting for its pending first write."""
    event = asyncio.Event()
    settle = StartGate.settle

    async def signalling_settle(self: StartGate) -> None:
        event.set()
        await settle(self)

    monkeypatch.setattr(StartGate, "settle", signalling_settle)
    return event


async def test_a_second_cancel_while_the_first_write_is_pending_still_records_an_end(
    settling: asyncio.Event,
) -> None:
    store, core = await gated_core()
    request = TurnRequest("alpha", "hi", request_id="req-1")
    first = asyncio.create_task(collect(core.engine.execute("t", request)))
    await store.entered.wait()
    retry = Client(core)  # the client retries with the same request id on a new stream
    retry.send(TurnRequest("alpha", "hi", request_id="req-1"))
    # The retry follows the run in flight, which is announced only once it is stored.
    active = core.engine.active.by_request("t", "alpha", "req-1")
    assert active is not None
    run_id = active.run.run_id
    first.cancel()  # the first connection goes away ...
    await settling.wait()
    retry.stream._route(CancelTurn())  # ... and the retry cancels while it settles
    store.gate.set()
    await asyncio.gather(first, return_exceptions=True)
    retry.close()
    await asyncio.gather(retry.rest(), return_exceptions=True)
    run = await core.store.get_run("t", run_id)
    assert run is not None and run.status is RunStatus.CANCELLED


async def test_a_member_timeout_then_cancel_run_records_the_members_end(
    settling: asyncio.Event,
) -> None:
    store, core = await gated_core(GatedStore(holds=lambda run: bool(run.parent_run_id)))
    teams = TeamRegistry(store, PageTokens(b"unit-test-secret"))
    await teams.create("t", "crew", TeamSpec(members=("alpha",), member_timeout_seconds=0.01))
    runner = TeamRunner(teams, Collaborations(store, core.engine))
    events = runner.run("t", "crew", "do it")
    parent = (await anext(events)).run_id
    consumer = asyncio.create_task(collect(events))  # type: ignore[arg-type]
    await settling.wait()  # the member timed out while its first write is held
    cancel = asyncio.create_task(core.records.cancel("t", parent))
    store.gate.set()
    await asyncio.gather(cancel, consumer, return_exceptions=True)
    runs = (await core.records.list("t")).items
    member = [r.status for r in runs if r.parent_run_id == parent]
    assert member == [RunStatus.CANCELLED]
    assert [r.status for r in runs if r.run_id == parent] == [RunStatus.CANCELLED]


async def test_a_second_cancel_while_the_end_is_written_still_announces_it() -> None:
    store = HeldFinishStore()
    core = make_core(store)
    await core.agent("alpha")
    core.model.script(Reply(stall=True))
    client = Client(core)
    client.send(TurnRequest("alpha", "hi"))
    started = await client.until(ev.RunStarted)
    await core.model.stalled.wait()
    store.hold = True
    client.stream._route(CancelTurn(started.run_id))
    await store.writing.wait()
    client.stream._route(CancelTurn(started.run_id))  # clicked twice
    store.hold = False
    store.release.set()
    client.close()
    events = await client.rest()
    assert any(isinstance(e.body, ev.RunCancelled) for e in events)
    run = await core.records.get("t", started.run_id)
    assert run.status is RunStatus.CANCELLED


async def test_a_cancel_while_a_failure_is_written_still_reports_the_failure() -> None:
    store = HeldFinishStore()
    core = make_core(store)
    await core.agent("alpha")
    core.model.script(Reply(error=UnavailableError("down", reason=Reason.MODEL_UNAVAILABLE)))
    store.hold = True
    events = core.engine.execute("t", TurnRequest("alpha", "hi"))
    started = await anext(events)
    rest = asyncio.create_task(collect(events))
    await store.writing.wait()
    core.engine.active.cancel_own(started.run_id, "cancelled", Reason.RUN_CANCELLED)
    store.release.set()
    with pytest.raises(UnavailableError):
        await rest
    run = await core.records.get("t", started.run_id)
    assert run.status is RunStatus.FAILED and run.error_reason == Reason.MODEL_UNAVAILABLE


async def test_a_cancel_while_the_answer_is_recorded_reads_completed_everywhere() -> None:
    store = HeldFinishStore()
    core = make_core(store)
    await core.agent("alpha")
    core.model.script(Reply("the answer"))
    store.hold = True
    request = TurnRequest("alpha", "hi", request_id="req-3")
    events = core.engine.execute("t", request)
    started = await anext(events)
    rest = asyncio.create_task(collect(events))
    await store.writing.wait()
    replay = core.engine.execute("t", request)
    await anext(replay)
    replayed = asyncio.create_task(collect(replay))
    core.engine.active.cancel_own(started.run_id, "cancelled", Reason.RUN_CANCELLED)
    store.release.set()
    own = await rest
    assert (await core.records.get("t", started.run_id)).status is RunStatus.COMPLETED
    terminal = [e.body for e in own if isinstance(e.body, ev.RunCompleted | ev.RunCancelled)]
    assert len(terminal) == 1 and isinstance(terminal[0], ev.RunCompleted)
    assert terminal[0].output == "the answer"
    replayed_events = await replayed
    assert isinstance(replayed_events[-1].body, ev.RunCompleted)


@pytest.mark.parametrize("violation", ["flood", "unexpected tool result"])
async def test_a_stream_error_before_the_run_has_an_id_cancels_the_turn(violation: str) -> None:
    store, core = await gated_core()
    client = Client(core, max_pending_starts=1)
    client.send(TurnRequest("alpha", "hi"))
    reading = asyncio.create_task(client.rest())
    await store.entered.wait()  # the turn runs but has no run id yet
    if violation == "flood":
        client.send(*(TurnRequest("alpha", f"flood {i}") for i in range(3)))
    else:
        client.send(ToolResult("no-such-call", "x"))
    store.gate.set()
    with pytest.raises(OrchestratorError):
        await reading
    statuses = [r.status for r in (await core.records.list("t")).items]
    assert statuses == [RunStatus.CANCELLED]


async def test_a_pipeline_cut_off_during_its_own_first_write_records_an_end() -> None:
    store, core = await gated_core()
    pipelines = PipelineRunner(core.agents, Collaborations(store, core.engine))
    consumer = asyncio.create_task(
        collect(pipelines.run("t", [PipelineStep("alpha")], "go"))  # type: ignore[arg-type]
    )
    await store.entered.wait()  # the pipeline's own run is being inserted
    consumer.cancel()
    store.gate.set()
    await asyncio.gather(consumer, return_exceptions=True)
    runs = (await core.records.list("t")).items
    assert [(r.agent_id, r.status) for r in runs] == [("", RunStatus.CANCELLED)]


async def test_a_pipeline_cut_off_by_a_server_stop_reads_interrupted() -> None:
    core = make_core()
    await core.agent("alpha")
    core.model.script(Reply(stall=True))
    pipelines = PipelineRunner(core.agents, Collaborations(core.store, core.engine))
    events = pipelines.run("t", [PipelineStep("alpha")], "go")
    await anext(events)
    await core.model.stalled.wait()
    core.engine.active.begin_shutdown()
    await events.aclose()
    runs = {r.agent_id: r.status for r in (await core.records.list("t")).items}
    assert runs == {"alpha": RunStatus.INTERRUPTED, "": RunStatus.INTERRUPTED}


async def test_a_turn_cancelled_before_its_task_began_still_ends_and_frees_its_session() -> None:
    core = make_core()
    await core.agent("alpha")
    events = core.engine.execute("t", TurnRequest("alpha", "hi"))
    first = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)  # execute has created the turn's task, which has not run yet
    active = next(iter(core.engine.active._by_id.values()))
    active.cancel(Reason.RUN_CANCELLED, "cancelled early")
    rest = [await first, *(await collect(events))]
    assert isinstance(rest[-1].body, ev.RunCancelled)
    assert core.engine.busy_run("t", "alpha", "default") == ""
    (run,) = (await core.records.list("t")).items
    assert run.status is RunStatus.CANCELLED


class HeldLookupStore(InMemoryStore):
    """Agent lookups wait for `release` while `hold` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def get_agent(self, tenant: str, agent_id: str) -> Agent | None:
        if self.hold:
            self.entered.set()
            await self.release.wait()
        return await super().get_agent(tenant, agent_id)


async def test_a_start_resolving_its_agent_when_a_stop_begins_starts_no_turn() -> None:
    store = HeldLookupStore()
    core = make_core(store)
    await core.agent("alpha")
    store.hold = True
    events = core.engine.execute("t", TurnRequest("alpha", "hi"))
    first = asyncio.ensure_future(anext(events))
    await store.entered.wait()  # past the first stopping check, not yet admitted
    core.engine.active.begin_shutdown()
    await core.engine.active.shutdown()
    store.release.set()
    with pytest.raises(UnavailableError) as refused:
        await first
    assert refused.value.reason is Reason.SERVER_STOPPING
    assert (await core.records.list("t")).items == []


async def test_a_failed_tool_call_cancels_its_siblings() -> None:
    core = make_core()
    await core.agent("alpha", callable_agents=("beta",))
    await core.agent("beta")
    calls = (ToolCall("c1", "ct", "{}"), ToolCall("c2", "ask_beta", '{"message": "help"}'))
    core.model.script(Reply(tool_calls=calls), Reply(stall=True))
    schema = json.dumps({"type": "object"})
    request = TurnRequest(
        "alpha", "go", client_tools=(("ct", "", schema),), client_tool_timeout=0.05
    )
    with pytest.raises(DeadlineExceededError):
        await collect(core.engine.execute("t", request, bridge=ClientToolBridge()))
    assert list(core.engine.active._by_id.values()) == []  # beta's run did not outlive it
    runs = (await core.records.list("t")).items
    assert {r.agent_id: r.status for r in runs}["beta"] is RunStatus.CANCELLED


async def test_a_label_scan_racing_close_leaves_no_connection_open(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "scan.db"))
    await store.open()
    await store.create_agent("t", NewAgent("a1", AgentSpec(labels={"team": "blue"})))
    await asyncio.gather(
        store.close(),
        store.list_agents("t", after=None, limit=10, label_filter={"team": "blue"}),
        return_exceptions=True,
    )
    assert store._scan_conn is None
    with pytest.raises(UnavailableError):
        await store.list_agents("t", after=None, limit=10, label_filter={"team": "blue"})
