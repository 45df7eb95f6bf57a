"""Per-tenant storage quotas, enforced by every Store implementation inside the write
that would exceed them: agents, teams, and bytes of stored messages."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlite_utils

from orchestrator_server.core.errors import QuotaExceededError
from orchestrator_server.core.quotas import StorageQuotas
from orchestrator_server.core.store_port import Store
from orchestrator_server.core.types import (
    AgentSpec,
    Message,
    NewAgent,
    Role,
    Run,
    RunStatus,
    TeamSpec,
    ToolCall,
)
from orchestrator_server.store.memory import InMemoryStore
from orchestrator_server.store.migrations import MIGRATIONS, migrate
from orchestrator_server.store.postgres import PostgresStore
from orchestrator_server.store.sqlite import SQLiteStore
from orchestrator_server.store.sqlite_usage import _ROW_BYTES
from scripts.pg_cluster import create_database

QUOTAS = StorageQuotas(
    max_agents_per_tenant=2, max_teams_per_tenant=1, max_stored_bytes_per_tenant=1000
)


@pytest.fixture(params=["sqlite", "memory", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    implementation: Store
    if request.param == "postgres":
        server = request.getfixturevalue("postgres_server")
        implementation = PostgresStore(await create_database(server), quotas=QUOTAS)
    elif request.param == "sqlite":
        implementation = SQLiteStore(str(tmp_path / "quotas.db"), quotas=QUOTAS)
    else:
        implementation = InMemoryStore(QUOTAS)
    await implementation.open()
    try:
        yield implementation
    finally:
        await implementation.close()


def a_run(run_id: str, text: str, session_id: str = "s1") -> Run:
    return Run(run_id, "a1", session_id, status=RunStatus.RUNNING, input=text, create_time=1.0)


async def start_turn(store: Store, run_id: str, text: str, session_id: str = "s1") -> None:
    run = a_run(run_id, text, session_id)
    await store.begin_run("t", run, Message(Role.USER, text, run_id=run_id))


async def test_a_tenant_has_at_most_its_agents_and_the_others_are_not_counted(
    store: Store,
) -> None:
    for agent_id in ("a1", "a2"):
        await store.create_agent("t", NewAgent(agent_id, AgentSpec()))
    with pytest.raises(QuotaExceededError) as refused:
        await store.create_agent("t", NewAgent("a3", AgentSpec()))
    assert refused.value.quota == "max_agents_per_tenant" and refused.value.limit == 2
    assert refused.value.subject == "tenant:t"
    assert await store.get_agent("t", "a3") is None
    # An existing agent is still answered under if_not_exists; another tenant is free.
    existing, created = await store.create_agent(
        "t", NewAgent("a1", AgentSpec(), if_not_exists=True)
    )
    assert existing.agent_id == "a1" and not created
    await store.create_agent("other", NewAgent("a3", AgentSpec()))
    # Deleting one makes room again.
    await store.delete_agent("t", "a2", expected_revision=None)
    await store.create_agent("t", NewAgent("a3", AgentSpec()))


async def test_a_tenant_has_at_most_its_teams(store: Store) -> None:
    await store.create_agent("t", NewAgent("a1", AgentSpec()))
    await store.create_team("t", "one", TeamSpec(members=("a1",)), if_not_exists=False)
    with pytest.raises(QuotaExceededError) as refused:
        await store.create_team("t", "two", TeamSpec(members=("a1",)), if_not_exists=False)
    assert refused.value.quota == "max_teams_per_tenant"
    await store.delete_team("t", "one", expected_revision=None)
    await store.create_team("t", "two", TeamSpec(members=("a1",)), if_not_exists=False)


async def test_a_turn_that_would_pass_the_stored_bytes_is_refused_before_it_is_written(
    store: Store,
) -> None:
    """A turn stores its input and output twice: in its messages and its run record."""
    await store.create_agent("t", NewAgent("a1", AgentSpec()))
    await start_turn(store, "r1", "x" * 200)  # 400 bytes
    # An accepted turn records its output even past the quota: nothing is lost.
    finished = replace(a_run("r1", "x" * 200), output="é" * 100, status=RunStatus.COMPLETED)
    await store.finish_run("t", finished, [Message(Role.ASSISTANT, "é" * 100)])  # 800
    with pytest.raises(QuotaExceededError):
        await store.check_turn_fits("t", "y" * 250)  # the early answer agrees
    await store.check_turn_fits("t", "y" * 90)
    with pytest.raises(QuotaExceededError) as refused:
        await start_turn(store, "r2", "y" * 250)
    assert refused.value.quota == "max_stored_bytes_per_tenant"
    assert await store.get_run("t", "r2") is None
    await start_turn(store, "r2", "small", session_id="s2")  # 810
    # Deleting a session gives its bytes back.
    await store.delete_session("t", "a1", "s1")  # 10
    await start_turn(store, "r3", "y" * 400, session_id="s3")


async def test_queued_runs_count_their_input_before_they_get_a_session(store: Store) -> None:
    await store.create_agent("t", NewAgent("a1", AgentSpec()))
    queued = replace(a_run("q1", "x" * 400), status=RunStatus.QUEUED)
    await store.begin_run("t", queued, None)  # no message yet: the run record holds it
    with pytest.raises(QuotaExceededError):
        await store.begin_run("t", replace(queued, run_id="q2"), None)


async def test_deleting_an_agent_gives_its_messages_bytes_back(store: Store) -> None:
    await store.create_agent("t", NewAgent("a1", AgentSpec()))
    await start_turn(store, "r1", "x" * 450)  # 900 bytes
    with pytest.raises(QuotaExceededError):
        await start_turn(store, "r2", "x" * 200, session_id="s2")
    await store.delete_agent("t", "a1", expected_revision=None)
    await store.create_agent("t", NewAgent("a1", AgentSpec()))
    await start_turn(store, "r2", "x" * 450, session_id="s2")


async def test_usage_of_data_written_before_the_usage_table_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA user_version = 0")
    # A database as the previous release left it: schema version 2, with messages.
    db = sqlite_utils.Database(conn)
    for step in MIGRATIONS[:2]:
        step(db)
    conn.execute("PRAGMA user_version = 2")
    conn.execute(
        "INSERT INTO runs(run_id, tenant, agent_id, session_id, status, input, output) "
        "VALUES ('r0', 't', 'a1', 's1', 'completed', ?, ?)",
        ("y" * 250, "z" * 240),
    )
    conn.execute(
        "INSERT INTO agents VALUES ('t', 'a1', '{}', 1.0, 1.0, 1), ('t', 'a2', '{}', 1.0, 1.0, 1)"
    )
    conn.execute(
        "INSERT INTO messages VALUES ('t', 'a1', 's1', 1, 'user', ?, '', '', 'r0', 1.0)",
        ("x" * 500,),
    )
    conn.close()
    store = SQLiteStore(str(path), quotas=QUOTAS)
    await store.open()
    try:
        with pytest.raises(QuotaExceededError):
            await store.create_agent("t", NewAgent("a3", AgentSpec()))
        with pytest.raises(QuotaExceededError):
            await start_turn(store, "r1", "y" * 20)
    finally:
        await store.close()
    assert migrate(sqlite3.connect(path)) == len(MIGRATIONS)


async def test_the_sqlite_byte_counter_equals_a_recount_of_the_rows(tmp_path: Path) -> None:
    """Turns started, ended (with tool calls and outputs), ended after their agent was
    deleted, and deleted sessions: the counter kept inside the writes is the rows' sum."""
    path = tmp_path / "count.db"
    store = SQLiteStore(str(path), quotas=StorageQuotas(max_stored_bytes_per_tenant=10**9))
    await store.open()
    try:
        for agent in ("a1", "a2"):
            await store.create_agent("t", NewAgent(agent, AgentSpec()))
        for i in range(6):
            run = replace(a_run(f"r{i}", "é" * (i + 1), f"s{i % 3}"), agent_id=f"a{i % 2 + 1}")
            message = Message(Role.USER, run.input, run_id=run.run_id)
            assert store.begin_run_at_once("t", run, message) == run
            if i == 5:
                await store.delete_agent("t", "a2", expected_revision=None)
            done = replace(run, output="ü" * i, status=RunStatus.COMPLETED, end_time=2.0)
            call = ToolCall("c1", "look", '{"q": "ç"}')
            await store.finish_run(
                "t",
                done,
                [
                    Message(Role.ASSISTANT, "", tool_calls=(call,)),
                    Message(Role.TOOL, "résultat", tool_call_id="c1"),
                    Message(Role.ASSISTANT, done.output),
                ],
            )
        await store.delete_session("t", "a1", "s0")
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    (counted,) = conn.execute("SELECT message_bytes FROM usage WHERE tenant = 't'").fetchone()
    recount = sum(
        conn.execute(f"SELECT coalesce(sum({expr}), 0) FROM {table} WHERE tenant = 't'").fetchone()[
            0
        ]
        for table, expr in _ROW_BYTES.items()
    )
    assert counted == recount > 0
