"""What the PostgreSQL store decides for several replicas, with two stores (two
replicas) on one database: one turn per session and its FIFO queue, leases, the reaper,
fencing, concurrent migrations, and the races of deletes with starts."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import asyncpg
import pytest

from orchestrator_server.core.store_port import RunFencedError, SessionBusyError
from orchestrator_server.core.types import AgentSpec, Message, NewAgent, Role, Run, RunStatus
from orchestrator_server.store.postgres import PostgresStore

LEASE = 1.0


@pytest.fixture
async def pair(postgres_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two replicas' stores, opened (and so migrated) at the same moment."""
    a, b = (
        PostgresStore(postgres_url, lease_seconds=LEASE),
        PostgresStore(postgres_url, lease_seconds=LEASE),
    )
    await asyncio.gather(a.open(), b.open())
    try:
        await a.create_agent("t", NewAgent("a1", AgentSpec(), True, False))
        yield a, b
    finally:
        await asyncio.gather(a.close(), b.close())


def a_run(run_id: str, session_id: str = "s1", **fields: object) -> Run:
    values: dict[str, object] = {"status": RunStatus.RUNNING, "input": "hi", "create_time": 1.0}
    values.update(fields)
    return Run(run_id, "a1", session_id, **values)  # type: ignore[arg-type]


async def blocked_on_a_lock(conn: asyncpg.Connection) -> None:
    """Until another backend waits for a row lock (PostgreSQL's own state: polled)."""
    async with asyncio.timeout(10):
        while True:
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            )
            if waiting:
                return
            await asyncio.sleep(0.01)


def user(run_id: str) -> Message:
    return Message(Role.USER, "hi", run_id=run_id)


async def test_one_turn_per_session_and_a_fifo_queue_across_replicas(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = pair
    await a.begin_run("t", a_run("r1"), user("r1"))
    with pytest.raises(SessionBusyError) as busy:
        await b.begin_run("t", a_run("r2"), user("r2"))
    assert busy.value.active_run_id == "r1"
    queued = [
        await b.begin_run("t", a_run(f"q{i}"), user(f"q{i}"), queue_if_busy=True) for i in range(2)
    ]
    assert [q.status for q in queued] == [RunStatus.QUEUED] * 2
    assert not await a.mark_running("t", "q1", 2.0, user("q1"))  # not the head
    assert not await a.mark_running("t", "q0", 2.0, user("q0"))  # r1 still runs
    await a.finish_run(
        "t", dataclasses.replace(a_run("r1"), status=RunStatus.COMPLETED, end_time=2.0), []
    )
    assert not await b.mark_running("t", "q1", 3.0, user("q1"))
    assert await b.mark_running("t", "q0", 3.0, user("q0"))
    history = await a.load_history("t", "a1", "s1", 10)
    assert [m.run_id for m in history] == ["r1", "q0"]  # a queued run's message once it runs


async def test_runs_of_an_expired_lease_are_reaped_and_their_late_writes_fenced(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = pair
    await b.begin_run("t", a_run("r1"), user("r1"))
    assert b.coordination is not None and a.coordination is not None
    assert await a.coordination.reap() == 0  # b's lease is live
    for task in b.coordination._tasks:  # b stops renewing (as if stopped)
        task.cancel()
    # a's reaper marks the run once b's lease expired on the database's clock.
    async with asyncio.timeout(LEASE * 10):
        while True:
            run = await a.get_run("t", "r1")
            assert run is not None
            if run.status is RunStatus.INTERRUPTED:
                break
            await asyncio.sleep(LEASE / 10)
    late = dataclasses.replace(run, status=RunStatus.COMPLETED, output="late", end_time=9.0)
    with pytest.raises(RunFencedError):
        await b.finish_run("t", late, [Message(Role.ASSISTANT, "late", run_id="r1")])
    await b.append_messages("t", "a1", "s1", [Message(Role.TOOL, "step", run_id="r1")])
    stored = await a.get_run("t", "r1")
    assert stored is not None and stored.status is RunStatus.INTERRUPTED and stored.output == ""
    assert [m.content for m in await a.load_history("t", "a1", "s1", 10)] == ["hi"]


async def test_a_start_waits_for_an_agent_delete_and_leaves_nothing_behind(
    pair: tuple[PostgresStore, PostgresStore], postgres_url: str
) -> None:
    a, _ = pair
    conn = await asyncpg.connect(postgres_url)
    try:
        deleting = conn.transaction()
        await deleting.start()
        await conn.execute("DELETE FROM sessions WHERE tenant = 't' AND agent_id = 'a1'")
        await conn.execute("DELETE FROM agents WHERE tenant = 't' AND agent_id = 'a1'")
        start = asyncio.ensure_future(a.begin_run("t", a_run("r1"), user("r1")))
        await blocked_on_a_lock(conn)
        assert not start.done()
        await deleting.commit()
        await start
    finally:
        await conn.close()
    assert await a.list_sessions("t", "a1", after=None, limit=10) == []
    assert await a.load_history("t", "a1", "s1", 10) == []


async def test_a_start_during_a_session_delete_recreates_it_for_its_owner(
    pair: tuple[PostgresStore, PostgresStore], postgres_url: str
) -> None:
    a, _ = pair
    await a.begin_run("t", a_run("r0", owner="alice", status=RunStatus.COMPLETED), None)
    conn = await asyncpg.connect(postgres_url)
    try:
        deleting = conn.transaction()
        await deleting.start()
        await conn.execute("DELETE FROM sessions WHERE tenant = 't' AND session_id = 's1'")
        start = asyncio.ensure_future(a.begin_run("t", a_run("r1", owner="alice"), user("r1")))
        await blocked_on_a_lock(conn)
        assert not start.done()
        await deleting.commit()
        await start
    finally:
        await conn.close()
    assert await a.session_owner("t", "a1", "s1") == "alice"
    assert [m.run_id for m in await a.load_history("t", "a1", "s1", 10)] == ["r1"]
