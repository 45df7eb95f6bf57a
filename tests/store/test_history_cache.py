"""The SQLite store's kept history windows (store/history_cache.py): whatever happens to a
session between turns (turns of any size, tool steps, a deleted and restarted session, a
deleted and recreated agent, another window size), `load_history` returns exactly what a
fresh read of the database returns."""

from __future__ import annotations

import contextlib
import dataclasses
import random
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator_server.core.store_port import SessionRevision, Store
from orchestrator_server.core.types import (
    AgentSpec,
    MemoryConfig,
    Message,
    NewAgent,
    Role,
    Run,
    RunStatus,
    Usage,
)
from orchestrator_server.store import pg_turn_start
from orchestrator_server.store.pg_rows import message_from_record
from orchestrator_server.store.postgres import PostgresStore
from orchestrator_server.store.sqlite import SQLiteStore
from orchestrator_server.store.sqlite_rows import MESSAGE_COLUMNS, message_from_row


def fresh_read(db: Path, session: str, limit: int) -> list[Message]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant = 't' AND agent_id = 'a' "
            "AND session_id = ? ORDER BY seq DESC LIMIT ?",
            (session, limit),
        ).fetchall()
    return [message_from_row(row) for row in reversed(rows)]


async def turn(store: Store, run_id: str, session: str, steps: int, when: float) -> None:
    run = Run(run_id, "a", session, RunStatus.RUNNING, f"question {run_id}", when)
    await store.begin_run("t", run, Message(Role.USER, run.input, run_id=run_id))
    tools = [Message(Role.TOOL, f"step {i} of {run_id}", run_id=run_id) for i in range(steps)]
    if tools:
        await store.append_messages("t", "a", session, tools)
    done = dataclasses.replace(
        run, status=RunStatus.COMPLETED, output=f"answer {run_id}", usage=Usage(1, 1, 1),
        end_time=when,
    )  # fmt: skip
    await store.finish_run("t", done, [Message(Role.ASSISTANT, done.output, run_id=run_id)])


async def test_kept_windows_always_equal_a_fresh_read(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    store = SQLiteStore(str(db))
    await store.open()
    chosen = random.Random(16)
    try:
        await store.create_agent("t", NewAgent("a", AgentSpec(), False, False))
        for step in range(300):
            session = chosen.choice(["s1", "s2", "s3"])
            action = chosen.random()
            if action < 0.6:
                await turn(store, f"r{step}", session, chosen.choice([0, 0, 1, 3]), float(step))
            elif action < 0.68:
                await store.delete_session("t", "a", session)
            elif action < 0.7:
                await store.delete_agent("t", "a", expected_revision=None)
                await store.create_agent("t", NewAgent("a", AgentSpec(), False, False))
            limit = chosen.choice([2, 5, 20, 50])
            read = await store.load_history("t", "a", session, limit)
            assert read == fresh_read(db, session, limit), f"step {step}"
    finally:
        await store.close()


async def test_a_session_started_again_is_not_the_old_one(tmp_path: Path) -> None:
    db = tmp_path / "again.db"
    store = SQLiteStore(str(db))
    await store.open()
    try:
        await store.create_agent("t", NewAgent("a", AgentSpec(), False, False))
        await turn(store, "old", "s", 0, 1.0)
        assert [m.content for m in await store.load_history("t", "a", "s", 10)] == [
            "question old",
            "answer old",
        ]
        # The same number of messages again, in a session deleted in between.
        await store.delete_session("t", "a", "s")
        await turn(store, "new", "s", 0, 2.0)
        assert [m.content for m in await store.load_history("t", "a", "s", 10)] == [
            "question new",
            "answer new",
        ]
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def two_replicas(url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one database (replicas, each with windows of its own) and agent a."""
    store, other = PostgresStore(url), PostgresStore(url)
    await store.open()
    await other.open()
    try:
        await store.create_agent("t", NewAgent("a", AgentSpec(), False, False))
        yield store, other
    finally:
        await store.close()
        await other.close()


async def random_change(
    chosen: random.Random, step: int, *writers: PostgresStore, memory_changes: bool
) -> str:
    """A random change by a random replica to one of two sessions (a turn, a delete, or
    with `memory_changes` a new memory window for the agent); the session."""
    session = chosen.choice(["s1", "s2"])
    writer = chosen.choice(writers)
    action = chosen.random()
    if action < 0.6:
        await turn(writer, f"r{step}", session, chosen.choice([0, 0, 1, 3]), float(step))
    elif action < 0.68:
        await writer.delete_session("t", "a", session)
    elif action < 0.8 and memory_changes:
        memory = MemoryConfig(max_messages=chosen.choice([0, 2, 5, 20, 60]))
        await writer.update_agent("t", "a", AgentSpec(memory=memory), expected_revision=None)
    return session


async def fresh_pg_read(store: PostgresStore, session: str, limit: int) -> list[Message]:
    rows = await store.fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant = 't' AND agent_id = 'a' "
        "AND session_id = $1 ORDER BY seq DESC LIMIT $2",
        session,
        limit,
    )
    return [message_from_record(row) for row in reversed(rows)]


async def test_postgres_windows_always_equal_a_fresh_read(postgres_url: str) -> None:
    chosen = random.Random(18)
    async with two_replicas(postgres_url) as (store, other):
        for step in range(150):
            session = await random_change(chosen, step, store, other, memory_changes=False)
            limit = chosen.choice([2, 5, 20, 50])
            fresh = await fresh_pg_read(store, session, limit)
            for reader in (store, other):
                assert await reader.load_history("t", "a", session, limit) == fresh, step


async def test_postgres_turn_starts_read_the_window_at_their_revision(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """read_turn_start's window (kept windows, agents whose memory keeps more or fewer
    messages than the one cached) always equals a fresh read at the revision it gives."""
    second_reads: list[int] = []
    read_again = pg_turn_start.read_window_at

    async def counted(*args: Any) -> Any:
        second_reads.append(1)
        return await read_again(*args)

    monkeypatch.setattr(pg_turn_start, "read_window_at", counted)
    chosen = random.Random(19)
    async with two_replicas(postgres_url) as (store, other):
        for replica in (store, other):  # agents changed elsewhere stay cached until read
            assert replica.coordination is not None
            replica.coordination._agent_handlers.clear()  # type: ignore[attr-defined]
        for step in range(150):
            session = await random_change(chosen, step, store, other, memory_changes=True)
            for reader in (store, other):
                start = await reader.read_turn_start("t", "a", session, "hi")
                assert start.agent is not None
                limit = start.agent.spec.memory.max_messages or 50
                row = await store.fetchrow(
                    "SELECT create_time, message_count FROM sessions WHERE tenant = 't' "
                    "AND agent_id = 'a' AND session_id = $1",
                    session,
                )
                assert start.limit == limit, step
                assert start.messages == await fresh_pg_read(store, session, limit), step
                if row is None:
                    assert (start.owner, start.revision) == (None, SessionRevision(0.0, 0))
                else:
                    assert start.owner == "" and start.revision == SessionRevision(*row), step
        # Both ways were taken: one read, and a second one for a window longer than the
        # cached agent's.
        assert 0 < len(second_reads) < 100
