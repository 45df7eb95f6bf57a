"""The JournalStore on a SQLiteStore's file: chunks of run events in `run_events`, their
total size in `journal_usage` (kept with every write, so that pruning by size never
sums the table). Writes go through the store's writer thread; a follower's read is a
short range read of one run's chunks on the loop."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..core.journal_port import EventChunk, enough_to_free

if TYPE_CHECKING:
    from .sqlite import SQLiteStore

# EventChunk's fields, in order: rows are written with chunk.row() and read back
# with EventChunk(*row).
_COLUMNS = (
    "tenant, run_id, agent_id, session_id, position, end_position, first_seq, last_seq, "
    "data, create_time"
)


def _append(conn: sqlite3.Connection, chunks: Sequence[EventChunk]) -> None:
    added = 0
    for c in chunks:
        inserted = conn.execute(
            f"INSERT INTO run_events ({_COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? "
            "WHERE EXISTS (SELECT 1 FROM runs WHERE tenant = ? AND run_id = ?) "
            "ON CONFLICT (tenant, run_id, position) DO NOTHING",
            (*c.row(), c.tenant, c.run_id),
        ).rowcount
        if inserted:
            added += len(c.data)
            continue
        # Written before (its first write's outcome was unknown: cancelled, or the
        # connection lost), the chunk holds at least what the first held: it replaces it.
        key = (c.tenant, c.run_id, c.position)
        before = conn.execute(
            "SELECT length(data), end_position FROM run_events WHERE tenant = ? AND "
            "run_id = ? AND position = ?",
            key,
        ).fetchone()
        if before is not None and before[1] <= c.end_position:
            conn.execute(
                "UPDATE run_events SET end_position = ?, first_seq = ?, last_seq = ?, "
                "data = ? WHERE tenant = ? AND run_id = ? AND position = ?",
                (c.end_position, c.first_sequence, c.last_sequence, c.data, *key),
            )
            added += len(c.data) - before[0]
    if added:
        conn.execute("UPDATE journal_usage SET bytes = bytes + ?", (added,))


def forget(conn: sqlite3.Connection, tenant: str, where: str, params: Sequence[Any]) -> None:
    """Delete the chunks of the tenant's runs matching `where` (deleted with their agent
    or session), keeping the journal's size right."""
    size = conn.execute(
        f"SELECT coalesce(sum(length(data)), 0) FROM run_events WHERE tenant = ? AND {where}",
        (tenant, *params),
    ).fetchone()[0]
    if size:
        conn.execute(f"DELETE FROM run_events WHERE tenant = ? AND {where}", (tenant, *params))
        conn.execute("UPDATE journal_usage SET bytes = bytes - ?", (size,))


def _prune(conn: sqlite3.Connection, before: float, max_bytes: int, limit: int) -> int:
    rows = conn.execute(
        "SELECT rowid, length(data) FROM run_events WHERE create_time < ? "
        "ORDER BY create_time LIMIT ?",
        (before, limit),
    ).fetchall()
    if not rows:
        (size,) = conn.execute("SELECT bytes FROM journal_usage").fetchone()
        if size <= max_bytes:
            return 0
        oldest = conn.execute(
            "SELECT rowid, length(data) FROM run_events ORDER BY create_time LIMIT ?", (limit,)
        ).fetchall()
        rows = enough_to_free(oldest, size - max_bytes)
    conn.executemany("DELETE FROM run_events WHERE rowid = ?", [(r[0],) for r in rows])
    conn.execute("UPDATE journal_usage SET bytes = bytes - ?", (sum(r[1] for r in rows),))
    return len(rows)


class SQLiteJournalStore:
    """Run event chunks on a SQLiteStore."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    async def append_run_events(self, chunks: Sequence[EventChunk]) -> None:
        """Store chunks of live runs in one transaction."""
        await self._store.write(_append, list(chunks))

    async def run_events(
        self, tenant: str, run_id: str, after: int, limit: int, from_position: int = 0
    ) -> list[EventChunk]:
        """A run's chunks after `after`, in order (read in steps: a chunk may be large)."""
        rows = await self._store.read_in_steps(
            f"SELECT {_COLUMNS} FROM run_events WHERE tenant = ? AND run_id = ? "
            "AND position >= ? AND (last_seq >= ? OR position = (SELECT max(position) "
            "FROM run_events WHERE tenant = ? AND run_id = ?)) ORDER BY position LIMIT ?",
            (tenant, run_id, from_position, after, tenant, run_id, limit),
        )
        return [EventChunk(*row) for row in rows]

    async def prune_run_events(self, before: float, max_bytes: int, limit: int) -> int:
        """Delete a batch of chunks past the retention."""
        return await self._store.write(_prune, before, max_bytes, limit)
