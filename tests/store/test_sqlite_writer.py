"""Group commit: operations that share a transaction still succeed or fail alone."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

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
