"""Group commit: operations that share a transaction still succeed or fail alone; and
the first write of a run made at once on the event loop, only where that is safe."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from orchestrator_server.core.store_port import DuplicateRequestError
from orchestrator_server.core.types import AgentSpec, Message, NewAgent, Role, Run, RunStatus
from orchestrator_server.store.sqlite import SQLiteStore
from orchestrator_server.store.sqlite_loop_writer import LOOP_WRITE_CHARS
from orchestrator_server.store.sqlite_writer import SQLiteWriter


async def test_group_commit_isolates_failures(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    writer = SQLiteWriter()

    def open_conn() -> None:
        conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        writer.conn = conn

    await writer.call(open_conn)

    def insert(conn: sqlite3.Connection, k: int) -> int:
        conn.execute("INSERT INTO t VALUES (?, ?)", (k, f"v{k}"))
        if k % 10 == 3:
            # Wrote a row, then failed: the row must not survive.
            raise ValueError(f"boom {k}")
        return k

    results = await asyncio.gather(
        *(writer.transact(insert, k) for k in range(200)), return_exceptions=True
    )
    failed = [r for r in results if isinstance(r, ValueError)]
    assert len(failed) == 20
    assert [r for r in results if not isinstance(r, Exception)] == [
        k for k in range(200) if k % 10 != 3
    ]
    with sqlite3.connect(db) as check:
        keys = [row[0] for row in check.execute("SELECT k FROM t ORDER BY k")]
    assert keys == [k for k in range(200) if k % 10 != 3]

    # A single failing operation (no group) rolls back too.
    with pytest.raises(ValueError, match="boom 1003"):
        await writer.transact(insert, 1003)
    await writer.call(writer.conn.close)  # type: ignore[union-attr]
    writer.stop()


async def test_a_first_write_is_made_at_once_only_while_the_write_lock_is_free(
    tmp_path: Path,
) -> None:
    path = tmp_path / "at_once.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.create_agent("t", NewAgent("a1", AgentSpec(), True, False))

        def run(run_id: str, text: str = "hi", **fields: object) -> Run:
            return Run(run_id, "a1", run_id, RunStatus.RUNNING, text, 1.0, **fields)  # type: ignore[arg-type]

        first = run("r1", request_id="k")
        assert store.begin_run_at_once("t", first, Message(Role.USER, "hi", run_id="r1")) == first
        assert [m.run_id for m in await store.load_history("t", "a1", "r1", 5)] == ["r1"]
        with pytest.raises(DuplicateRequestError):  # the same errors as begin_run
            store.begin_run_at_once("t", run("r2", request_id="k"), None)
        # Another connection holds the write lock: not at once (the writer thread waits).
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            assert store.begin_run_at_once("t", run("r3"), None) is None
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert store.begin_run_at_once("t", run("r4", "x" * (LOOP_WRITE_CHARS + 1)), None) is None
        assert await store.get_run("t", "r3") is None
    finally:
        await store.close()
    durable = SQLiteStore(path, synchronous="FULL")  # commits wait for the disk: never
    await durable.open()
    try:
        assert (
            durable.begin_run_at_once(
                "t", Run("r5", "a1", "r5", RunStatus.RUNNING, "hi", 1.0), None
            )
            is None
        )
    finally:
        await durable.close()
