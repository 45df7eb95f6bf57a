"""The single SQLite writer thread, with group commit.

All writes go through one thread that owns the write connection. Operations that queue
up while a transaction is being written share the next one: each runs inside its own
SAVEPOINT (so one failing operation rolls back alone and reports its own error), and
the group is committed with a single `BEGIN IMMEDIATE ... COMMIT`. Callers are answered
only after the COMMIT, so an acknowledged write is as durable as the synchronous setting
promises. Under load this turns N commits and N thread hops into one of each; alone, an
operation costs what a plain transaction costs.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

R = TypeVar("R")
MAX_GROUP = 128  # operations per transaction; bounds the latency one group adds

_Job = tuple[
    bool, Callable[..., Any], tuple[Any, ...], asyncio.AbstractEventLoop, "asyncio.Future[Any]"
]
_STOP = object()


class SQLiteWriter:
    """Runs callables on the writer thread: `call` as is, `transact` in a transaction."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="sqlite-writer", daemon=True)
        self.conn: sqlite3.Connection | None = None
        self._thread.start()

    async def call(self, fn: Callable[..., R], *args: Any) -> R:
        """fn(*args) on the writer thread, outside any transaction (open, close)."""
        return await self._submit(False, fn, args)

    async def transact(self, fn: Callable[..., R], *args: Any) -> R:
        """fn(conn, *args) on the writer thread inside a (group) transaction."""
        return await self._submit(True, fn, args)

    async def _submit(self, transactional: bool, fn: Callable[..., R], args: tuple[Any, ...]) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._jobs.put((transactional, fn, args, loop, future))
        return await future

    def stop(self) -> None:
        """Finish the queued jobs and end the thread."""
        self._jobs.put(_STOP)
        self._thread.join()

    # -- the thread ---------------------------------------------------------------------

    def _serve(self) -> None:
        pending: list[_Job] = []
        while True:
            item = self._jobs.get()
            if item is _STOP:
                return
            pending.append(item)  # type: ignore[arg-type]
            while len(pending) < MAX_GROUP:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    self._jobs.put(_STOP)
                    break
                pending.append(more)  # type: ignore[arg-type]
            self._run(pending)
            pending = []

    def _run(self, jobs: list[_Job]) -> None:
        group: list[_Job] = []
        for job in jobs:
            if job[0]:
                group.append(job)
                continue
            if group:
                self._run_group(group)
                group = []
            self._run_plain(job)
        if group:
            self._run_group(group)

    @staticmethod
    def _run_plain(job: _Job) -> None:
        _, fn, args, loop, future = job
        try:
            outcome: tuple[bool, Any] = (True, fn(*args))
        except BaseException as error:
            outcome = (False, error)
        loop.call_soon_threadsafe(_settle, [(future, outcome)])

    def _run_group(self, group: list[_Job]) -> None:
        conn = self.conn
        results: list[tuple[asyncio.Future[Any], tuple[bool, Any]]] = []
        try:
            assert conn is not None, "store is not open"
            conn.execute("BEGIN IMMEDIATE")
            single = len(group) == 1
            for _, fn, args, _loop, future in group:
                if not single:
                    conn.execute("SAVEPOINT op")
                try:
                    value = fn(conn, *args)
                except BaseException as error:
                    conn.execute("ROLLBACK" if single else "ROLLBACK TO op")
                    if single:
                        results.append((future, (False, error)))
                        _deliver(group, results)
                        return
                    conn.execute("RELEASE op")
                    results.append((future, (False, error)))
                    continue
                if not single:
                    conn.execute("RELEASE op")
                results.append((future, (True, value)))
            conn.execute("COMMIT")
        except BaseException as error:
            if conn is not None and conn.in_transaction:
                conn.execute("ROLLBACK")
            results = [(job[4], (False, error)) for job in group]
        _deliver(group, results)


def _deliver(
    group: list[_Job], results: list[tuple[asyncio.Future[Any], tuple[bool, Any]]]
) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], tuple[bool, Any]]]]
    by_loop = {}
    loops = {id(job[4]): job[3] for job in group}
    for future, outcome in results:
        by_loop.setdefault(loops[id(future)], []).append((future, outcome))
    for loop, items in by_loop.items():
        loop.call_soon_threadsafe(_settle, items)


def _settle(items: list[tuple[asyncio.Future[Any], tuple[bool, Any]]]) -> None:
    for future, (ok, value) in items:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
