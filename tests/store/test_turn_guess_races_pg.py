"""Guessed turn starts on PostgreSQL under attack and at bad moments (found by a hostile
review): the audit trail and the metrics through a stale guess's retry, a burst of
guesses into other principals' sessions, a caller leaving while the retry reads, a
queued guessed start behind a turn on another replica, an agent called as a tool whose
guess is stale."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator_server.core import events as ev
from orchestrator_server.core.errors import NotFoundError
from orchestrator_server.core.observer import RunObserver, RunReport
from orchestrator_server.core.types import AgentSpec, RunStatus, ToolCall, TurnRequest
from orchestrator_server.store import pg_turn_start
from orchestrator_server.store.postgres import PostgresStore

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
sys.path.insert(0, str(Path(__file__).parent))
from fakes import Core, Reply, WriteHold, make_core
from test_shared_store import Hub, HubCoordination
from test_turn_guess_pg import Replicas, completed, deaf, reads, replicas, runs_of, turn

__all__ = ["reads", "replicas"]  # fixtures


class Audit:
    """The audit trail's calls: (method, resource, outcome)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, str]] = []

    async def record_call(self, method: str, resource: str, error: Any) -> None:
        self.records.append((method, resource, "OK" if error is None else type(error).__name__))


async def stale(group: Replicas, **options: Any) -> tuple[Core, Core]:
    """Replica b has cached agent alpha, which replica a then changes (b does not hear
    of it in time)."""
    a, b = await group.replica(), await group.replica(**options)
    await a.agent("alpha")
    completed(await turn(b, "warm", "s0"))
    deaf(b)
    await a.store.update_agent("t", "alpha", AgentSpec(system_message="v2"), expected_revision=None)
    return a, b


async def test_the_audit_names_the_run_stored_after_a_stale_guess(replicas: Replicas) -> None:
    audit = Audit()
    _, b = await stale(replicas, audit=audit)
    audit.records.clear()
    completed(await turn(b, "hello", "s1"))
    stored = await runs_of(b, "s1")
    assert [r.status for r in stored] == [RunStatus.COMPLETED]
    assert audit.records == [("Run", f"runs/{stored[0].run_id}", "OK")]


async def test_the_audit_has_one_record_of_a_retry_refused(replicas: Replicas) -> None:
    audit = Audit()
    a, b = await stale(replicas, audit=audit)
    await a.store.delete_agent("t", "alpha", expected_revision=None)
    audit.records.clear()
    with pytest.raises(NotFoundError):
        await turn(b, "hello", "s1")
    assert audit.records == [("Run", "agents/alpha/sessions/s1", "NotFoundError")]


async def test_a_burst_into_other_principals_sessions_sends_one_model_request(
    replicas: Replicas,
) -> None:
    """One guessed start per tenant whose write has not answered: the others are read,
    and refused before any model request."""
    a = await replicas.replica()
    await a.agent("alpha")
    sessions = [f"private{i}" for i in range(8)]
    for session in sessions:
        completed(await turn(a, "mine", session, principal="owner"))
    b = await replicas.replica()  # has heard of none of them
    completed(await turn(b, "warm", "s0", principal="intruder"))
    calls = len(b.model.calls)
    burst = [turn(b, "let me in", s, principal="intruder") for s in sessions]
    results = await asyncio.gather(*burst, return_exceptions=True)
    assert all(isinstance(r, NotFoundError) for r in results), results
    assert len(b.model.calls) - calls <= 1
    for session in sessions:
        assert [r.input for r in await runs_of(a, session)] == ["mine"]


async def test_a_caller_leaving_while_the_retry_reads_leaves_nothing(
    replicas: Replicas, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, b = await stale(replicas)
    reading, never = asyncio.Event(), asyncio.Event()
    read = pg_turn_start.read_turn_start

    async def held(*args: Any) -> Any:
        if args[4][2] == "s1":
            reading.set()
            await never.wait()
        return await read(*args)

    monkeypatch.setattr(pg_turn_start, "read_turn_start", held)
    caller = turn(b, "hello", "s1")
    await asyncio.wait_for(reading.wait(), 10)  # the stale guess was dropped; it reads
    caller.cancel()  # type: ignore[attr-defined]
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert await runs_of(b, "s1") == []
    observer = replicas.observer  # b's: the first attempt's count is ended
    assert observer.started == len(observer.finished) == 2
    assert observer.finished[-1] == (RunStatus.CANCELLED, "RUN_CANCELLED")


async def test_a_queued_guessed_start_behind_a_turn_elsewhere(
    replicas: Replicas, reads: list[Any]
) -> None:
    a, b = await replicas.replica(), await replicas.replica()
    await a.agent("alpha")
    completed(await turn(b, "warm", "s0"))
    a.model.script(Reply("slow answer", stall=True))
    first = a.engine.execute("t", TurnRequest("alpha", "first", session_id="q"))
    assert isinstance((await anext(first)).body, ev.RunStarted)  # stored, running
    reads.clear()
    request = TurnRequest("alpha", "second", session_id="q", wait_if_busy=True)
    second = asyncio.ensure_future(_collect(b, request))
    await asyncio.wait_for(a.model.stalled.wait(), 10)
    a.model.unstall.set()
    rest = [event async for event in first]
    assert isinstance(rest[-1].body, ev.RunCompleted)
    events = await second
    completed(events)
    deltas = "".join(e.body.text for e in events if isinstance(e.body, ev.TextDelta))
    assert deltas == "ok" and reads == []  # guessed; queued; answered on the window
    assert [m["content"] for m in b.model.calls[-1]] == ["first", "slow answer", "second"]
    assert [r.status for r in await runs_of(b, "q")] == [RunStatus.COMPLETED] * 2


async def _collect(core: Core, request: TurnRequest) -> list[Any]:
    return [event async for event in core.engine.execute("t", request)]


async def test_an_agent_called_as_a_tool_with_a_stale_guess(replicas: Replicas) -> None:
    audit = Audit()
    a, b = await replicas.replica(), await replicas.replica(audit=audit)
    await a.agent("alpha", callable_agents=["beta"])
    await a.agent("beta")
    completed(await turn(b, "warm", "s0"))
    beta_warm = TurnRequest("beta", "warm", session_id="s0")
    completed(await _collect(b, beta_warm))
    deaf(b)
    await a.store.update_agent(
        "t", "beta", AgentSpec(system_message="beta v2"), expected_revision=None
    )
    b.model.script(Reply(tool_calls=(ToolCall("c1", "ask_beta", '{"message": "help"}'),)))
    observer = replicas.observer
    started = observer.started
    events = await turn(b, "go", "s1")
    assert isinstance(events[-1].body, ev.RunCompleted)
    own = [e for e in events if not e.parent_run_id and isinstance(e.body, ev.RunStarted)]
    assert len(own) == 1
    children = [e for e in events if e.parent_run_id and isinstance(e.body, ev.RunStarted)]
    assert len(children) == 1
    child = await b.store.get_run("t", children[0].run_id)
    assert child is not None and child.status is RunStatus.COMPLETED
    assert {"role": "system", "content": "beta v2"} in [m for c in b.model.calls for m in c]
    assert observer.started - started == 2 and observer.started == len(observer.finished)


class HeldWrite(WriteHold, PostgresStore):
    """A replica whose run-starting write can be held (see WriteHold)."""


class Ended(RunObserver):
    def __init__(self) -> None:
        self.ended = asyncio.Event()

    def run_finished(self, report: RunReport) -> None:
        self.ended.set()


@pytest.mark.parametrize("guessed", [True, False])
async def test_a_run_whose_caller_left_before_its_write_answered_is_audited_once(
    postgres_url: str, guessed: bool
) -> None:
    """A read start is audited before its write; a guessed one once its write answered,
    or when its caller leaves first (its run may be stored)."""
    store = HeldWrite(postgres_url)
    await store.open()
    try:
        audit, observer = Audit(), Ended()
        core = make_core(store, coordination=HubCoordination(Hub()), observer=observer, audit=audit)  # type: ignore[arg-type]
        await core.agent("alpha")
        if guessed:
            completed(await turn(core, "warm", "s0"))  # cached: a new session is guessed
        observer.ended.clear()
        audit.records.clear()
        store.hold = "hello"
        caller = turn(core, "hello", "s1")
        await asyncio.wait_for(store.writing.wait(), 10)
        caller.cancel()  # type: ignore[attr-defined]
        store.release.set()
        with pytest.raises(asyncio.CancelledError):
            await caller
        await asyncio.wait_for(observer.ended.wait(), 10)
        assert len(audit.records) == 1, audit.records
        assert [r.status for r in await runs_of(core, "s1")] in ([], [RunStatus.CANCELLED])
    finally:
        await store.close()
