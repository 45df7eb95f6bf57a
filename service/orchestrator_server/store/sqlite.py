"""The embedded SQLite store (through sqlite-utils).

Durability: WAL with synchronous=NORMAL. That never corrupts the database and survives a
crash of the process (SIGKILL); after a power loss the last commits may roll back. FULL
would make every commit durable at ~15x the cost per transaction; set
`ORCHESTRATOR_SQLITE_SYNCHRONOUS=FULL` where that matters more than throughput.

Threads: every write runs on one writer thread with its own connection, inside
`BEGIN IMMEDIATE` (a deferred transaction that upgrades to a write gets SQLITE_BUSY at
once, ignoring busy_timeout). Reads use a second connection on the event loop itself:
point reads by primary key take ~10 µs, far less than the ~60 µs of a thread hop, and WAL
readers never wait for the writer. Transactions are managed explicitly (isolation_level
None) because sqlite-utils' helpers would otherwise open or commit them behind our back.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ..core.errors import Reason, UnavailableError
from ..core.quotas import DEFAULT_QUOTAS, StorageQuotas
from ..core.store_port import AgentRevision, SessionRevision
from ..core.types import (
    Agent,
    AgentSpec,
    Message,
    NewAgent,
    Run,
    RunQuery,
    Session,
)
from ..core.usage import UsageQuery, UsageRow
from . import sqlite_access, sqlite_agents, sqlite_runs, sqlite_usage
from .agent_cache import AgentCache
from .history_cache import HistoryCache, read_window
from .migrations import migrate
from .sqlite_loop_writer import LOOP_WRITE_CHARS, Busy, LoopWriter, read_in_steps
from .sqlite_rows import (
    MESSAGE_COLUMNS,
    RUN_COLUMNS,
    agent_from_row,
    message_from_row,
    run_from_row,
)
from .sqlite_teams import SQLiteTeams
from .sqlite_writer import SQLiteWriter

R = TypeVar("R")


def _connect(path: str, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class SQLiteStore(SQLiteTeams):
    """The `Store` on one SQLite file: one writer thread, reads on the event loop."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "NORMAL",
        agent_cache_size: int = 10_000,
        quotas: StorageQuotas = DEFAULT_QUOTAS,
    ) -> None:
        self._path = str(path)
        self._quotas = quotas
        if synchronous.upper() not in {"NORMAL", "FULL"}:
            raise ValueError("synchronous must be NORMAL or FULL")
        self._synchronous = synchronous.upper()
        self._writer = SQLiteWriter()
        # Every turn and GetAgent reads an agent; the cache spares the query and the JSON
        # decoding. It is exact for this process because every agent write goes through
        # this store and drops the entries it changes (several replicas will need their
        # own invalidation, e.g. by revision).
        self._agents = AgentCache(max_entries=agent_cache_size)
        self._history = HistoryCache()
        self._read_conn: sqlite3.Connection | None = None
        # Reads that scan (a label filter evaluates JSON in every agent row of a tenant)
        # run on a thread of their own with its own connection: on the event loop they
        # would stall every stream for as long as the scan takes.
        self._scanner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-scan")
        self._scan_conn: sqlite3.Connection | None = None
        self._scanner_closed = False

    # -- plumbing -----------------------------------------------------------------------

    async def open(self) -> None:
        """Create or migrate the schema, then open the read connection."""
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        await self._writer.call(self._open_writer)
        self._read_conn = _connect(self._path, self._synchronous)
        self._read_conn.execute("PRAGMA query_only = ON")
        self._loop_writer = LoopWriter(_connect(self._path, self._synchronous))

    def _open_writer(self) -> None:
        conn = _connect(self._path, self._synchronous)
        # enable_wal() would commit an open transaction; nothing is open yet, so the plain
        # pragma is exact.
        conn.execute("PRAGMA journal_mode = WAL")
        migrate(conn)
        self._writer.conn = conn

    async def close(self) -> None:
        """Checkpoint the WAL and close every connection."""
        if not self._scanner_closed:
            self._scanner_closed = True
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._scanner, self._close_scanner)
            await asyncio.to_thread(self._scanner.shutdown, wait=True)
        if self._read_conn is not None:
            self._read_conn.close()
            self._read_conn = None
            self._loop_writer.close()
        if self._writer.conn is not None:
            await self._writer.call(self._close_writer)
        self._writer.stop()

    def _close_writer(self) -> None:
        conn = self._writer.conn
        assert conn is not None
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        self._writer.conn = None

    async def _write(self, fn: Callable[..., R], *args: Any) -> R:
        """Run fn(conn, *args) on the writer thread inside BEGIN IMMEDIATE ... COMMIT
        (shared with other writes queued at the same moment; see sqlite_writer)."""
        return await self._writer.transact(fn, *args)

    def _close_scanner(self) -> None:
        if self._scan_conn is not None:
            self._scan_conn.close()
            self._scan_conn = None

    def _scan_rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """On the scanner thread: run a scanning read on its connection."""
        if self._scanner_closed:
            raise UnavailableError("the store is closing", reason=Reason.SERVER_STOPPING)
        if self._scan_conn is None:
            self._scan_conn = _connect(self._path, self._synchronous)
            self._scan_conn.execute("PRAGMA query_only = ON")
        return self._scan_conn.execute(sql, params).fetchall()

    async def _scan(self, sql: str, params: Sequence[Any]) -> list[Any]:
        if self._scanner_closed:
            raise UnavailableError("the store is closing", reason=Reason.SERVER_STOPPING)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._scanner, self._scan_rows, sql, params)

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        conn = self._read_conn
        assert conn is not None, "store is not open"
        return conn.execute(sql, params).fetchall()

    async def _read_in_steps(self, sql: str, params: Sequence[Any]) -> list[Any]:
        assert self._read_conn is not None, "store is not open"
        return await read_in_steps(self._read_conn, sql, params)

    async def page_token_secret(self) -> bytes:
        """The installation's page-token secret, created on first use."""
        rows = self._read("SELECT value FROM meta WHERE key = 'page_token_secret'")
        if rows:
            return bytes.fromhex(rows[0][0])
        return await self._write(sqlite_access.create_secret)

    # -- agents -------------------------------------------------------------------------

    async def create_agent(self, tenant: str, new: NewAgent) -> tuple[Agent, bool]:
        """Insert an agent, or return the existing one under if_not_exists."""
        try:
            return await self._write(sqlite_agents.create_agent, tenant, new, self._quotas)
        finally:
            # A new default changes `is_default` of the previous one too.
            if new.set_as_default:
                self._agents.forget_tenant(tenant)
            else:
                self._agents.forget((tenant, new.agent_id))

    async def get_agent(self, tenant: str, agent_id: str) -> Agent | None:
        """One agent, or None (served from the agent cache when it is there)."""
        key = (tenant, agent_id)
        agent = self._agents.get(key)
        if agent is None:
            assert self._read_conn is not None, "store is not open"
            agent = sqlite_agents.agent_row(self._read_conn, tenant, agent_id)
            if agent is not None:
                self._agents.put(key, agent)
        return agent

    async def list_agents(
        self, tenant: str, *, after: str | None, limit: int, label_filter: dict[str, str]
    ) -> list[Agent]:
        """A page of agents in id order (keyset pagination on the primary key)."""
        sql, params = sqlite_agents.list_agents_query(tenant, after, limit, label_filter)
        rows = await self._scan(sql, params) if label_filter else self._read(sql, params)
        return [agent_from_row(r) for r in rows]

    async def update_agent(
        self, tenant: str, agent_id: str, spec: AgentSpec, *, expected_revision: int | None
    ) -> Agent:
        """Replace the spec, bumping the revision."""
        try:
            return await self._write(
                sqlite_agents.update_agent, tenant, agent_id, spec, expected_revision
            )
        finally:
            self._agents.forget((tenant, agent_id))

    async def delete_agent(
        self, tenant: str, agent_id: str, *, expected_revision: int | None
    ) -> None:
        """Delete the agent, its messages, sessions and runs; clear it as default."""
        try:
            await self._write(sqlite_agents.delete_agent, tenant, agent_id, expected_revision)
        finally:
            self._agents.forget((tenant, agent_id))
            self._history.forget(tenant, agent_id)

    async def set_default_agent(self, tenant: str, agent_id: str) -> Agent:
        """Make the agent the default of its tenant."""
        try:
            return await self._write(sqlite_agents.set_default_agent, tenant, agent_id)
        finally:
            self._agents.forget_tenant(tenant)

    async def default_agent_id(self, tenant: str) -> str | None:
        """The tenant's default agent id, if any."""
        rows = self._read("SELECT default_agent_id FROM tenants WHERE tenant = ?", (tenant,))
        return rows[0][0] if rows and rows[0][0] else None

    # -- conversations ------------------------------------------------------------------

    async def load_history(
        self, tenant: str, agent_id: str, session_id: str, limit: int
    ) -> list[Message]:
        """The last `limit` messages of the session, oldest first (see history_cache)."""
        key = (tenant, agent_id, session_id)
        return await read_window(self._history, key, limit, self._read, self._read_in_steps)

    async def list_messages(
        self, tenant: str, agent_id: str, session_id: str, *, after: int, limit: int
    ) -> list[Message]:
        """Messages after a sequence number, oldest first."""
        rows = await self._read_in_steps(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant = ? AND agent_id = ? "
            "AND session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (tenant, agent_id, session_id, after, limit),
        )
        return [message_from_row(r) for r in rows]

    async def list_sessions(
        self, tenant: str, agent_id: str, *, after: str | None, limit: int, owner: str | None = None
    ) -> list[Session]:
        """Sessions of an agent in id order (only `owner`'s, unless None)."""
        mine = "" if owner is None else " AND owner = ?"
        rows = self._read(
            "SELECT agent_id, session_id, message_count, create_time, update_time, owner "
            f"FROM sessions WHERE tenant = ? AND agent_id = ? AND session_id > ?{mine} "
            "ORDER BY session_id LIMIT ?",
            (tenant, agent_id, after or "", *(() if owner is None else (owner,)), limit),
        )
        return [Session(*r) for r in rows]

    async def session_owner(self, tenant: str, agent_id: str, session_id: str) -> str | None:
        """The principal owning a session, or None when it does not exist."""
        assert self._read_conn is not None, "store is not open"
        return sqlite_runs.session_owner(self._read_conn, tenant, agent_id, session_id)

    async def read_turn_start(self, tenant: str, agent_id: str, session_id: str, text: str) -> None:
        """None: each of these reads is local (a few microseconds)."""

    def guess_turn_start(self, tenant: str, agent_id: str, session_id: str) -> None:
        """None: each read is local."""

    async def delete_session(self, tenant: str, agent_id: str, session_id: str) -> int:
        """Delete the session's messages, runs and row; how many messages went."""
        self._history.forget(tenant, agent_id, session_id)
        return await self._write(sqlite_runs.delete_session, tenant, agent_id, session_id)

    async def append_messages(
        self, tenant: str, agent_id: str, session_id: str, messages: Sequence[Message]
    ) -> None:
        """Append messages to a session in one transaction."""
        await self._write(
            sqlite_runs.append_messages, tenant, agent_id, session_id, messages, time.time()
        )

    # -- runs ---------------------------------------------------------------------------

    async def check_turn_fits(self, tenant: str, text: str) -> None:
        """QUOTA_EXCEEDED if the turn's input would take the tenant past its bytes (a
        point read of its counter, on the loop)."""
        assert self._read_conn is not None, "store is not open"
        sqlite_usage.check_turn(self._read_conn, self._quotas, tenant, text)

    async def begin_run(
        self,
        tenant: str,
        run: Run,
        user_message: Message | None,
        *,
        queue_if_busy: bool = False,
        window_at: SessionRevision | None = None,
        agent_at: AgentRevision | None = None,
    ) -> Run:
        """Insert the run and its user message together (one process: the engine's locks
        keep one turn per session). Never given `window_at` nor `agent_at`: this store
        hands out no TurnStart."""
        return await self._write(sqlite_runs.begin_run, tenant, run, user_message, self._quotas)

    def may_begin_at_once(self, run: Run) -> bool:
        """A small write, and commits that do not wait for the disk (not synchronous=FULL)."""
        return len(run.input) <= LOOP_WRITE_CHARS and self._synchronous != "FULL"

    def begin_run_at_once(self, tenant: str, run: Run, user_message: Message | None) -> Run | None:
        """begin_run on the event loop when that is safe (see sqlite_loop_writer)."""
        if not self.may_begin_at_once(run):
            return None
        args = (tenant, run, user_message, self._quotas)
        try:
            return self._loop_writer.transact(sqlite_runs.begin_run, *args)
        except Busy:
            return None

    async def mark_running(
        self, tenant: str, run_id: str, start_time: float, user_message: Message
    ) -> bool:
        """Move a queued run to running and append its user message."""
        return await self._write(sqlite_runs.mark_running, tenant, run_id, start_time, user_message)

    async def finish_run(self, tenant: str, run: Run, messages: Sequence[Message]) -> list[Message]:
        """Append the turn's final messages and record its outcome together."""
        return await self._write(sqlite_runs.finish_run, tenant, run, messages)

    async def get_run(self, tenant: str, run_id: str) -> Run | None:
        """One run, or None."""
        rows = self._read(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE tenant = ? AND run_id = ?", (tenant, run_id)
        )
        return run_from_row(rows[0]) if rows else None

    async def find_run_by_request(self, tenant: str, agent_id: str, request_id: str) -> Run | None:
        """The run created by an idempotency key."""
        rows = self._read(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE tenant = ? AND agent_id = ? AND request_id = ?",
            (tenant, agent_id, request_id),
        )
        return run_from_row(rows[0]) if rows else None

    async def list_runs(self, tenant: str, query: RunQuery) -> list[Run]:
        """Runs newest first (create_time, run_id descending)."""
        sql, params = sqlite_runs.list_runs_query(tenant, query)
        return [run_from_row(r) for r in await self._read_in_steps(sql, params)]

    async def list_usage(self, tenant: str, query: UsageQuery) -> list[UsageRow]:
        """Usage rows, newest period first (see core/usage.py), grouped off the loop."""
        return await sqlite_usage.list_usage(self._path, self._read, tenant, query)

    async def interrupt_unfinished_runs(self, end_time: float) -> int:
        """Runs a dead process left queued or running become interrupted."""
        return await self._write(sqlite_runs.interrupt_unfinished_runs, end_time)

    # Writes, point reads and scans for the other tables of the file (sqlite_access).
    write, read, scan, read_in_steps = _write, _read, _scan, _read_in_steps

    async def integrity_check(self) -> str:
        """SQLite's own verdict on the file ('ok' when healthy)."""
        rows = await self._scan("PRAGMA integrity_check", ())
        return str(rows[0][0])
