"""SQLite work on the event loop itself: reads of large rows in steps, and small writes
when the file's write lock is free at once.

Reads: a read whose rows may be megabytes each (messages, run outputs) runs on the loop,
as the common small result costs less there than a hop to a thread (a queue of hops
waits for the GIL in turn), but gives the loop back every STEP_BYTES so that a history
of large turns does not stall every other call.

Writes:
A run's first write must be done before its first delta (the run is announced only
once stored). Handed to the writer thread it waits for the GIL behind the loop, and
RunStarted goes out late, just before the first delta, which waits behind its send.
Made here, on a connection of its own (~0.3 ms), once the model request is out
(StartGate), it overlaps the model's answer. It is done only where that is safe for
the loop:

- the write is small (the caller checks: a run's input of at most LOOP_WRITE_CHARS), and
  commits do not wait for the disk (synchronous=NORMAL: a WAL append, no fsync);
- the write lock is free now: `busy_timeout = 0`, so BEGIN IMMEDIATE fails at once
  (Busy) while the writer thread holds it, and the caller hands the write to the thread
  (a write here holds the lock ~0.1 ms; the writer thread's BEGIN IMMEDIATE waits for
  it in SQLite's busy handler, off the loop);
- this connection never checkpoints the WAL (`wal_autocheckpoint = 0`): checkpoints stay
  with the writer thread, so a commit here never copies pages into the database file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

R = TypeVar("R")
# How much row data a stepped read takes from SQLite before giving the loop back.
STEP_BYTES = 512 * 1024
# Characters of a run's input up to which its first write may be made on the loop.
LOOP_WRITE_CHARS = 16 * 1024


class Busy(Exception):
    """The write lock is taken: write on the writer thread instead."""


class LoopWriter:
    """A write connection used from the event loop, never waiting for the lock."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA busy_timeout = 0")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        self._conn = conn

    def transact(self, fn: Callable[..., R], *args: Any) -> R:
        """fn(conn, *args) in BEGIN IMMEDIATE ... COMMIT; Busy if the lock is taken."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise Busy from None
            raise
        try:
            result = fn(conn, *args)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return result

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


async def read_in_steps(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    """The rows of a read, giving the loop back every STEP_BYTES of row data."""
    cursor = conn.execute(sql, params)
    rows: list[Any] = []
    budget = STEP_BYTES
    while (row := cursor.fetchone()) is not None:
        rows.append(row)
        budget -= sum(len(v) for v in row if isinstance(v, str | bytes))
        if budget <= 0:
            budget = STEP_BYTES
            await asyncio.sleep(0)
    return rows
