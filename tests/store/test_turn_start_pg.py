"""The PostgreSQL turn start (Store.read_turn_start, begin_run's window check, schema
version 5) on a real database: windows of any text, the quota's answer, a replica not
yet upgraded during a rolling upgrade, a large memory window, and two engines (replicas)
where a turn ends on one between the other's window read and its run's write."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path

import pytest

from orchestrator_server.core import events as ev
from orchestrator_server.core.errors import QuotaExceededError
from orchestrator_server.core.quotas import StorageQuotas
from orchestrator_server.core.store_port import WindowMovedError
from orchestrator_server.core.types import (
    AgentSpec,
    MemoryConfig,
    Message,
    NewAgent,
    Role,
    Run,
    RunStatus,
    ToolCall,
    TurnRequest,
)
from orchestrator_server.store import pg_counters
from orchestrator_server.store.pg_rows import encode
from orchestrator_server.store.postgres import PostgresStore

# The engine's fakes of the other ports (a scripted model, a doorbell hub).
sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from fakes import Reply, WriteHold, collect, make_core
from test_shared_store import Hub, HubCoordination

WEIRD = ["nul\x00byte", "lone \ud800 surrogate", "é 🙂 \u2028", "", "x" * 70_000, "'\"\\"]


def a_run(run_id: str, session_id: str = "s1", **fields: object) -> Run:
    values: dict[str, object] = {"status": RunStatus.RUNNING, "input": "hi", "create_time": 1.0}
    values.update(fields)
    return Run(run_id, "a1", session_id, **values)  # type: ignore[arg-type]


async def test_turn_start_window_equals_load_history_for_any_text(postgres_url: str) -> None:
    writer, reader, fresh = (PostgresStore(postgres_url) for _ in range(3))
    for s in (writer, reader, fresh):
        await s.open()
    try:
        await writer.create_agent("t", NewAgent("a1", AgentSpec(), True, False))
        for i, text in enumerate(WEIRD):
            run = a_run(f"r{i}", input=text, create_time=float(i + 1))
            await writer.begin_run("t", run, Message(Role.USER, text, run_id=run.run_id))
            call = ToolCall(f"c{i}", "f", '{"a": "\\u0000 \ud800"}')
            steps = [
                Message(Role.ASSISTANT, text, tool_calls=(call,), run_id=run.run_id),
                Message(Role.TOOL, text, tool_call_id=call.call_id, run_id=run.run_id),
                Message(Role.ASSISTANT, text[::-1], run_id=run.run_id),
            ]
            done = dataclasses.replace(run, status=RunStatus.COMPLETED, end_time=float(i + 2))
            await writer.finish_run("t", done, steps)
            start = await reader.read_turn_start("t", "a1", "s1", "q")
            assert start is not None
            expected = await fresh.load_history("t", "a1", "s1", 50)
            fresh._history.forget("t", "a1")  # type: ignore[attr-defined]
            assert start.messages == expected, i
    finally:
        for s in (writer, reader, fresh):
            await s.close()


async def test_turn_start_quota_answer(postgres_url: str) -> None:
    store = PostgresStore(postgres_url, quotas=StorageQuotas(max_stored_bytes_per_tenant=1000))
    await store.open()
    try:
        await store.create_agent("t", NewAgent("a1", AgentSpec(), True, False))
        run = a_run("r1", input="x" * 300)
        await store.begin_run("t", run, Message(Role.USER, run.input, run_id="r1"))
        start = await store.read_turn_start("t", "a1", "s1", "y" * 200)
        assert start is not None
        with pytest.raises(QuotaExceededError):
            start.check_fits()
        with pytest.raises(QuotaExceededError) as direct:
            await store.check_turn_fits("t", "y" * 200)
        assert str(start.over_quota) == str(direct.value)
        ok = await store.read_turn_start("t", "a1", "s1", "y")
        assert ok is not None and ok.over_quota is None
    finally:
        await store.close()


async def test_a_v4_replica_still_begins_runs_after_the_v5_migration(postgres_url: str) -> None:
    """The 25-argument begin_run a v4 replica calls still exists and works; a run it
    stores makes a v5 replica's window stale."""
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        await store.create_agent("t", NewAgent("a1", AgentSpec(), True, False))
        read = await store.read_turn_start("t", "a1", "s1", "q")
        assert read is not None
        old = a_run("old", input="from v4")
        row = await store.fetchrow(
            "SELECT * FROM begin_run($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
            "$14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)",
            "t", old.run_id, old.agent_id, old.session_id, old.status.value,
            encode(old.input), old.create_time, "", "", encode(""), 0, 0, "", encode(""),
            old.create_time, None, "", store.replica_id, False, 10**12, 10,
            encode("from v4"), 10, pg_counters.USAGE_SHARDS, "",
        )  # fmt: skip
        assert tuple(row) == ("ok", "", "running")
        done = dataclasses.replace(old, status=RunStatus.COMPLETED, end_time=2.0)
        await store.finish_run("t", done, [Message(Role.ASSISTANT, "v4 answer", run_id="old")])
        new = a_run("new", input="v5", create_time=3.0)
        with pytest.raises(WindowMovedError):
            await store.begin_run(
                "t", new, Message(Role.USER, "v5", run_id="new"), window_at=read.revision
            )
    finally:
        await store.close()


async def test_a_large_memory_window_in_one_statement(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        spec = AgentSpec(memory=MemoryConfig(max_messages=100_000))
        await store.create_agent("t", NewAgent("a1", spec, True, False))
        await store.pool.execute(
            "INSERT INTO sessions (tenant, agent_id, session_id, message_count, create_time, "
            "update_time, owner) VALUES ('t', 'a1', 's1', 3000, 1, 1, '')"
        )
        await store.pool.execute(
            "INSERT INTO messages (tenant, agent_id, session_id, seq, role, content, tool_calls, "
            "tool_call_id, run_id, create_time) SELECT 't', 'a1', 's1', i, 'user', "
            "convert_to('m' || i, 'UTF8'), '[]', '', 'r', 1 FROM generate_series(1, 3000) i"
        )
        start = await store.read_turn_start("t", "a1", "s1", "q")
        assert start is not None and len(start.messages) == 3000
        assert start.messages[0].content == "m1" and start.messages[-1].content == "m3000"
        again = await store.read_turn_start("t", "a1", "s1", "q")
        assert again is not None and again.messages == start.messages
    finally:
        await store.close()


class HeldWrite(WriteHold, PostgresStore):
    """A replica whose run-starting write can be held (a pool connection taken late, a
    slow network; see WriteHold)."""


@pytest.mark.parametrize("agent_id", ["alpha", ""])  # "": the tenant's default agent
async def test_a_turn_that_ended_on_another_replica_before_the_claim_is_sent(
    postgres_url: str, agent_id: str
) -> None:
    hub = Hub()
    first_store, second_store = PostgresStore(postgres_url), HeldWrite(postgres_url)
    await first_store.open()
    await second_store.open()
    try:
        a = make_core(first_store, coordination=HubCoordination(hub))  # type: ignore[arg-type]
        b = make_core(second_store, coordination=HubCoordination(hub))  # type: ignore[arg-type]
        await a.agent("alpha")
        a.model.script(Reply("one", stall=True))
        first = a.engine.execute("t", TurnRequest("alpha", "first", session_id="s"))
        await anext(first)
        await a.model.stalled.wait()
        second_store.hold = "second"
        b.model.script(Reply("dropped", stall=True), Reply("two"))
        second = asyncio.ensure_future(
            collect(b.engine.execute("t", TurnRequest(agent_id, "second", session_id="s")))
        )
        await second_store.writing.wait()  # b read its window; its write is not out
        await b.model.stalled.wait()  # and its request on ["first"] is
        a.model.unstall.set()
        await collect(first)  # a's turn ends before b's write claims the session
        second_store.release.set()
        events = await asyncio.wait_for(second, 10)
        assert isinstance(events[-1].body, ev.RunCompleted), events[-1]
        assert [m["content"] for m in b.model.calls[-1]] == ["first", "one", "second"]
        stored = await first_store.load_history("t", "alpha", "s", 10)
        assert [m.content for m in stored] == ["first", "one", "second", "two"]
    finally:
        await first_store.close()
        await second_store.close()
