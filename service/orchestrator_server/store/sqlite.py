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

import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, TypeVar

from ..core.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    Reason,
)
from ..core.store_port import DuplicateRequestError, checked_revision
from ..core.types import (
    Agent,
    AgentSpec,
    MemoryConfig,
    Message,
    ModelSpec,
    Role,
    Run,
    RunStatus,
    Session,
    Team,
    TeamSpec,
    ToolCall,
    Usage,
)
from . import sqlite_teams
from .agent_cache import AgentCache
from .migrations import migrate
from .sqlite_writer import SQLiteWriter

R = TypeVar("R")

_AGENT_COLUMNS = "a.agent_id, a.spec, a.create_time, a.update_time, a.revision, t.default_agent_id"
_RUN_COLUMNS = (
    "run_id, agent_id, session_id, status, input, create_time, request_id, parent_run_id, "
    "output, prompt_tokens, completion_tokens, error_reason, error_message, start_time, end_time"
)
_MESSAGE_COLUMNS = "seq, role, content, tool_calls, tool_call_id, run_id, create_time"


def _connect(path: str, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def spec_to_json(spec: AgentSpec) -> str:
    """Serialise an agent spec for the `spec` column."""
    return json.dumps(asdict(spec), separators=(",", ":"), sort_keys=True)


def spec_from_json(text: str) -> AgentSpec:
    """Parse the `spec` column; unknown keys from newer versions are ignored."""
    data = json.loads(text)
    model = data.get("model") or {}
    return AgentSpec(
        system_message=data.get("system_message", ""),
        description=data.get("description", ""),
        model=ModelSpec(
            provider=model.get("provider", ""),
            model=model.get("model", ""),
            temperature=model.get("temperature"),
            max_tokens=model.get("max_tokens"),
            top_p=model.get("top_p"),
            stop=tuple(model.get("stop") or ()),
            seed=model.get("seed"),
        ),
        memory=MemoryConfig(max_messages=(data.get("memory") or {}).get("max_messages", 0)),
        tools=tuple(data.get("tools") or ()),
        labels=dict(data.get("labels") or {}),
        callable_agents=tuple(data.get("callable_agents") or ()),
        max_model_calls=data.get("max_model_calls", 0),
    )


def _agent_from_row(row: Sequence[Any]) -> Agent:
    agent_id, spec, create_time, update_time, revision, default_id = row
    return Agent(
        agent_id=agent_id,
        spec=spec_from_json(spec),
        create_time=create_time,
        update_time=update_time,
        revision=revision,
        is_default=default_id == agent_id,
    )


def _run_from_row(row: Sequence[Any]) -> Run:
    return Run(
        run_id=row[0],
        agent_id=row[1],
        session_id=row[2],
        status=RunStatus(row[3]),
        input=row[4],
        create_time=row[5],
        request_id=row[6],
        parent_run_id=row[7],
        output=row[8],
        usage=Usage(row[9], row[10]),
        error_reason=row[11],
        error_message=row[12],
        start_time=row[13],
        end_time=row[14],
    )


_ROLES = {role.value: role for role in Role}


def _message_from_row(row: Sequence[Any]) -> Message:
    seq, role, content, tool_calls, tool_call_id, run_id, create_time = row
    # Most messages call no tool: skip decoding their empty list (history loads read up to
    # the memory window's worth of rows on every turn).
    calls = (
        ()
        if tool_calls == "[]"
        else tuple(ToolCall(c["id"], c["name"], c["arguments"]) for c in json.loads(tool_calls))
    )
    return Message(
        role=_ROLES[role],
        content=content,
        tool_calls=calls,
        tool_call_id=tool_call_id,
        run_id=run_id,
        sequence=seq,
        create_time=create_time,
    )


def _tool_calls_json(calls: Sequence[ToolCall]) -> str:
    return json.dumps(
        [{"id": c.call_id, "name": c.name, "arguments": c.arguments_json} for c in calls],
        separators=(",", ":"),
    )


class SQLiteStore:
    """The `Store` on one SQLite file: one writer thread, reads on the event loop."""

    def __init__(
        self, path: str | Path, *, synchronous: str = "NORMAL", agent_cache_size: int = 10_000
    ) -> None:
        self._path = str(path)
        if synchronous.upper() not in {"NORMAL", "FULL"}:
            raise ValueError("synchronous must be NORMAL or FULL")
        self._synchronous = synchronous.upper()
        self._writer = SQLiteWriter()
        # Every turn and GetAgent reads an agent; the cache spares the query and the JSON
        # decoding. It is exact for this process because every agent write goes through
        # this store and drops the entries it changes (several replicas will need their
        # own invalidation, e.g. by revision).
        self._agents = AgentCache(max_entries=agent_cache_size)
        self._read_conn: sqlite3.Connection | None = None

    # -- plumbing -----------------------------------------------------------------------

    async def open(self) -> None:
        """Create or migrate the schema, then open the read connection."""
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        await self._writer.call(self._open_writer)
        self._read_conn = _connect(self._path, self._synchronous)
        self._read_conn.execute("PRAGMA query_only = ON")

    def _open_writer(self) -> None:
        conn = _connect(self._path, self._synchronous)
        # enable_wal() would commit an open transaction; nothing is open yet, so the plain
        # pragma is exact.
        conn.execute("PRAGMA journal_mode = WAL")
        migrate(conn)
        self._writer.conn = conn

    async def close(self) -> None:
        """Checkpoint the WAL and close both connections."""
        if self._read_conn is not None:
            self._read_conn.close()
            self._read_conn = None
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

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        conn = self._read_conn
        assert conn is not None, "store is not open"
        return conn.execute(sql, params).fetchall()

    async def page_token_secret(self) -> bytes:
        """The installation's page-token secret, created on first use."""
        rows = self._read("SELECT value FROM meta WHERE key = 'page_token_secret'")
        if rows:
            return bytes.fromhex(rows[0][0])
        return await self._write(self._create_secret)

    @staticmethod
    def _create_secret(conn: sqlite3.Connection) -> bytes:
        conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('page_token_secret', ?)",
            (secrets.token_hex(32),),
        )
        value = conn.execute("SELECT value FROM meta WHERE key = 'page_token_secret'").fetchone()
        return bytes.fromhex(value[0])

    # -- agents -------------------------------------------------------------------------

    def _agent_row(self, conn: sqlite3.Connection, tenant: str, agent_id: str) -> Agent | None:
        row = conn.execute(
            f"SELECT {_AGENT_COLUMNS} FROM agents a LEFT JOIN tenants t ON t.tenant = a.tenant "
            "WHERE a.tenant = ? AND a.agent_id = ?",
            (tenant, agent_id),
        ).fetchone()
        return _agent_from_row(row) if row else None

    async def create_agent(
        self,
        tenant: str,
        agent_id: str,
        spec: AgentSpec,
        *,
        set_as_default: bool,
        if_not_exists: bool,
    ) -> tuple[Agent, bool]:
        """Insert an agent, or return the existing one under if_not_exists."""
        try:
            return await self._write(
                self._create_agent, tenant, agent_id, spec, set_as_default, if_not_exists
            )
        finally:
            # A new default changes `is_default` of the previous one too.
            if set_as_default:
                self._agents.forget_tenant(tenant)
            else:
                self._agents.forget((tenant, agent_id))

    def _create_agent(
        self,
        conn: sqlite3.Connection,
        tenant: str,
        agent_id: str,
        spec: AgentSpec,
        set_as_default: bool,
        if_not_exists: bool,
    ) -> tuple[Agent, bool]:
        now = time.time()
        cursor = conn.execute(
            "INSERT OR IGNORE INTO agents(tenant, agent_id, spec, create_time, update_time, "
            "revision) VALUES (?, ?, ?, ?, ?, 1)",
            (tenant, agent_id, spec_to_json(spec), now, now),
        )
        if cursor.rowcount == 0:
            existing = self._agent_row(conn, tenant, agent_id)
            assert existing is not None
            if if_not_exists:
                return existing, False
            raise AlreadyExistsError(
                f"agent '{agent_id}' already exists",
                reason=Reason.AGENT_ALREADY_EXISTS,
                metadata={"agent_id": agent_id},
            )
        if set_as_default:
            self._set_default(conn, tenant, agent_id)
        # Built from what was just inserted: re-reading the row would cost a query.
        agent = Agent(agent_id, spec, now, now, 1, is_default=set_as_default)
        return agent, True

    async def get_agent(self, tenant: str, agent_id: str) -> Agent | None:
        """One agent, or None (served from the agent cache when it is there)."""
        key = (tenant, agent_id)
        agent = self._agents.get(key)
        if agent is not None:
            return agent
        rows = self._read(
            f"SELECT {_AGENT_COLUMNS} FROM agents a LEFT JOIN tenants t ON t.tenant = a.tenant "
            "WHERE a.tenant = ? AND a.agent_id = ?",
            (tenant, agent_id),
        )
        if not rows:
            return None
        agent = _agent_from_row(rows[0])
        self._agents.put(key, agent)
        return agent

    async def list_agents(
        self, tenant: str, *, after: str | None, limit: int, label_filter: dict[str, str]
    ) -> list[Agent]:
        """A page of agents in id order (keyset pagination on the primary key)."""
        where = ["a.tenant = ?"]
        params: list[Any] = [tenant]
        if after is not None:
            where.append("a.agent_id > ?")
            params.append(after)
        for key, value in sorted(label_filter.items()):
            # Label keys follow the id rules, so quoting them in a JSON path is safe.
            where.append(f"json_extract(a.spec, '$.labels.\"{key}\"') = ?")
            params.append(value)
        params.append(limit)
        rows = self._read(
            f"SELECT {_AGENT_COLUMNS} FROM agents a LEFT JOIN tenants t ON t.tenant = a.tenant "
            f"WHERE {' AND '.join(where)} ORDER BY a.agent_id LIMIT ?",
            params,
        )
        return [_agent_from_row(r) for r in rows]

    async def update_agent(
        self, tenant: str, agent_id: str, spec: AgentSpec, *, expected_revision: int | None
    ) -> Agent:
        """Replace the spec, bumping the revision."""
        try:
            return await self._write(self._update_agent, tenant, agent_id, spec, expected_revision)
        finally:
            self._agents.forget((tenant, agent_id))

    def _checked_agent(
        self, conn: sqlite3.Connection, tenant: str, agent_id: str, expected: int | None
    ) -> Agent:
        return checked_revision(
            "agent", agent_id, self._agent_row(conn, tenant, agent_id), expected
        )

    def _update_agent(
        self,
        conn: sqlite3.Connection,
        tenant: str,
        agent_id: str,
        spec: AgentSpec,
        expected: int | None,
    ) -> Agent:
        self._checked_agent(conn, tenant, agent_id, expected)
        conn.execute(
            "UPDATE agents SET spec = ?, update_time = ?, revision = revision + 1 "
            "WHERE tenant = ? AND agent_id = ?",
            (spec_to_json(spec), time.time(), tenant, agent_id),
        )
        agent = self._agent_row(conn, tenant, agent_id)
        assert agent is not None
        return agent

    async def delete_agent(
        self, tenant: str, agent_id: str, *, expected_revision: int | None
    ) -> None:
        """Delete the agent, its messages, sessions and runs; clear it as default."""
        try:
            await self._write(self._delete_agent, tenant, agent_id, expected_revision)
        finally:
            self._agents.forget((tenant, agent_id))

    def _delete_agent(
        self, conn: sqlite3.Connection, tenant: str, agent_id: str, expected: int | None
    ) -> None:
        self._checked_agent(conn, tenant, agent_id, expected)
        # Checked in the delete's own transaction: a team written concurrently either
        # commits first (and is seen here) or finds the agent gone.
        team_id = sqlite_teams.team_using(conn, tenant, agent_id)
        if team_id is not None:
            raise FailedPreconditionError(
                f"agent '{agent_id}' is used by team '{team_id}'; remove it from the team first",
                reason=Reason.AGENT_IN_USE,
                metadata={"agent_id": agent_id, "team_id": team_id},
            )
        key = (tenant, agent_id)
        conn.execute("DELETE FROM messages WHERE tenant = ? AND agent_id = ?", key)
        conn.execute("DELETE FROM sessions WHERE tenant = ? AND agent_id = ?", key)
        conn.execute("DELETE FROM runs WHERE tenant = ? AND agent_id = ?", key)
        conn.execute("DELETE FROM agents WHERE tenant = ? AND agent_id = ?", key)
        conn.execute(
            "UPDATE tenants SET default_agent_id = NULL WHERE tenant = ? AND default_agent_id = ?",
            key,
        )

    async def set_default_agent(self, tenant: str, agent_id: str) -> Agent:
        """Make the agent the default of its tenant."""
        try:
            return await self._write(self._set_default_checked, tenant, agent_id)
        finally:
            self._agents.forget_tenant(tenant)

    def _set_default_checked(self, conn: sqlite3.Connection, tenant: str, agent_id: str) -> Agent:
        self._checked_agent(conn, tenant, agent_id, None)
        self._set_default(conn, tenant, agent_id)
        agent = self._agent_row(conn, tenant, agent_id)
        assert agent is not None
        return agent

    @staticmethod
    def _set_default(conn: sqlite3.Connection, tenant: str, agent_id: str) -> None:
        conn.execute(
            "INSERT INTO tenants(tenant, default_agent_id) VALUES (?, ?) "
            "ON CONFLICT(tenant) DO UPDATE SET default_agent_id = excluded.default_agent_id",
            (tenant, agent_id),
        )

    async def default_agent_id(self, tenant: str) -> str | None:
        """The tenant's default agent id, if any."""
        rows = self._read("SELECT default_agent_id FROM tenants WHERE tenant = ?", (tenant,))
        return rows[0][0] if rows and rows[0][0] else None

    # -- conversations ------------------------------------------------------------------

    async def load_history(
        self, tenant: str, agent_id: str, session_id: str, limit: int
    ) -> list[Message]:
        """The last `limit` messages of the session, oldest first."""
        rows = self._read(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE tenant = ? AND agent_id = ? "
            "AND session_id = ? ORDER BY seq DESC LIMIT ?",
            (tenant, agent_id, session_id, limit),
        )
        return [_message_from_row(r) for r in reversed(rows)]

    async def list_messages(
        self, tenant: str, agent_id: str, session_id: str, *, after: int, limit: int
    ) -> list[Message]:
        """Messages after a sequence number, oldest first."""
        rows = self._read(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE tenant = ? AND agent_id = ? "
            "AND session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (tenant, agent_id, session_id, after, limit),
        )
        return [_message_from_row(r) for r in rows]

    async def list_sessions(
        self, tenant: str, agent_id: str, *, after: str | None, limit: int
    ) -> list[Session]:
        """Sessions of an agent in id order."""
        rows = self._read(
            "SELECT agent_id, session_id, message_count, create_time, update_time FROM sessions "
            "WHERE tenant = ? AND agent_id = ? AND session_id > ? ORDER BY session_id LIMIT ?",
            (tenant, agent_id, after or "", limit),
        )
        return [Session(*r) for r in rows]

    async def delete_session(self, tenant: str, agent_id: str, session_id: str) -> int:
        """Delete the session's messages, runs and row; how many messages went."""
        return await self._write(self._delete_session, tenant, agent_id, session_id)

    @staticmethod
    def _delete_session(
        conn: sqlite3.Connection, tenant: str, agent_id: str, session_id: str
    ) -> int:
        key = (tenant, agent_id, session_id)
        deleted = conn.execute(
            "DELETE FROM messages WHERE tenant = ? AND agent_id = ? AND session_id = ?", key
        ).rowcount
        conn.execute("DELETE FROM runs WHERE tenant = ? AND agent_id = ? AND session_id = ?", key)
        conn.execute(
            "DELETE FROM sessions WHERE tenant = ? AND agent_id = ? AND session_id = ?", key
        )
        return int(deleted)

    @staticmethod
    def _append(
        conn: sqlite3.Connection,
        tenant: str,
        agent_id: str,
        session_id: str,
        messages: Sequence[Message],
        now: float,
    ) -> list[Message]:
        if not messages:
            return []
        # A turn that ends after its agent was deleted must not leave orphan rows behind.
        if not conn.execute(
            "SELECT 1 FROM agents WHERE tenant = ? AND agent_id = ?", (tenant, agent_id)
        ).fetchone():
            return []
        row = conn.execute(
            "SELECT message_count FROM sessions WHERE tenant = ? AND agent_id = ? "
            "AND session_id = ?",
            (tenant, agent_id, session_id),
        ).fetchone()
        count = row[0] if row else 0
        conn.executemany(
            "INSERT INTO messages(tenant, agent_id, session_id, seq, role, content, tool_calls, "
            "tool_call_id, run_id, create_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    tenant,
                    agent_id,
                    session_id,
                    count + i + 1,
                    m.role.value,
                    m.content,
                    _tool_calls_json(m.tool_calls),
                    m.tool_call_id,
                    m.run_id,
                    now,
                )
                for i, m in enumerate(messages)
            ],
        )
        conn.execute(
            "INSERT INTO sessions(tenant, agent_id, session_id, message_count, create_time, "
            "update_time) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(tenant, agent_id, session_id) "
            "DO UPDATE SET message_count = excluded.message_count, "
            "update_time = excluded.update_time",
            (tenant, agent_id, session_id, count + len(messages), now, now),
        )
        return [replace(m, sequence=count + i + 1, create_time=now) for i, m in enumerate(messages)]

    async def append_messages(
        self, tenant: str, agent_id: str, session_id: str, messages: Sequence[Message]
    ) -> None:
        """Append messages to a session in one transaction."""
        await self._write(self._append, tenant, agent_id, session_id, messages, time.time())

    # -- runs ---------------------------------------------------------------------------

    async def begin_run(self, tenant: str, run: Run, user_message: Message | None) -> Run:
        """Insert the run and its user message together."""
        return await self._write(self._begin_run, tenant, run, user_message)

    def _begin_run(
        self, conn: sqlite3.Connection, tenant: str, run: Run, user_message: Message | None
    ) -> Run:
        if run.request_id:
            row = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE tenant = ? AND agent_id = ? "
                "AND request_id = ?",
                (tenant, run.agent_id, run.request_id),
            ).fetchone()
            if row:
                raise DuplicateRequestError(_run_from_row(row))
        conn.execute(
            f"INSERT INTO runs(tenant, {_RUN_COLUMNS}) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                tenant,
                run.run_id,
                run.agent_id,
                run.session_id,
                run.status.value,
                run.input,
                run.create_time,
                run.request_id,
                run.parent_run_id,
                run.output,
                run.usage.prompt_tokens,
                run.usage.completion_tokens,
                run.error_reason,
                run.error_message,
                run.start_time,
                run.end_time,
            ),
        )
        if user_message is not None:
            self._append(
                conn, tenant, run.agent_id, run.session_id, [user_message], run.create_time
            )
        return run

    async def mark_running(
        self, tenant: str, run_id: str, start_time: float, user_message: Message
    ) -> None:
        """Move a queued run to running and append its user message."""

        def mark(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT agent_id, session_id FROM runs WHERE tenant = ? AND run_id = ?",
                (tenant, run_id),
            ).fetchone()
            conn.execute(
                "UPDATE runs SET status = 'running', start_time = ? WHERE tenant = ? "
                "AND run_id = ?",
                (start_time, tenant, run_id),
            )
            if row is not None:
                self._append(conn, tenant, row[0], row[1], [user_message], start_time)

        await self._write(mark)

    async def finish_run(self, tenant: str, run: Run, messages: Sequence[Message]) -> list[Message]:
        """Append the turn's final messages and record its outcome together."""
        end = run.end_time if run.end_time is not None else time.time()

        def finish(conn: sqlite3.Connection) -> list[Message]:
            stored = self._append(conn, tenant, run.agent_id, run.session_id, messages, end)
            conn.execute(
                "UPDATE runs SET status = ?, output = ?, prompt_tokens = ?, "
                "completion_tokens = ?, error_reason = ?, error_message = ?, end_time = ?, "
                "start_time = COALESCE(start_time, ?) WHERE tenant = ? AND run_id = ?",
                (
                    run.status.value,
                    run.output,
                    run.usage.prompt_tokens,
                    run.usage.completion_tokens,
                    run.error_reason,
                    run.error_message,
                    end,
                    end,
                    tenant,
                    run.run_id,
                ),
            )
            return stored

        return await self._write(finish)

    async def get_run(self, tenant: str, run_id: str) -> Run | None:
        """One run, or None."""
        rows = self._read(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE tenant = ? AND run_id = ?", (tenant, run_id)
        )
        return _run_from_row(rows[0]) if rows else None

    async def find_run_by_request(self, tenant: str, agent_id: str, request_id: str) -> Run | None:
        """The run created by an idempotency key."""
        rows = self._read(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE tenant = ? AND agent_id = ? AND request_id = ?",
            (tenant, agent_id, request_id),
        )
        return _run_from_row(rows[0]) if rows else None

    async def list_runs(
        self,
        tenant: str,
        *,
        agent_id: str,
        session_id: str,
        after: tuple[float, str] | None,
        limit: int,
    ) -> list[Run]:
        """Runs newest first (create_time, run_id descending)."""
        where = ["tenant = ?"]
        params: list[Any] = [tenant]
        if agent_id:
            where.append("agent_id = ?")
            params.append(agent_id)
        if session_id:
            where.append("session_id = ?")
            params.append(session_id)
        if after is not None:
            where.append("(create_time, run_id) < (?, ?)")
            params.extend(after)
        params.append(limit)
        rows = self._read(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE {' AND '.join(where)} "
            "ORDER BY create_time DESC, run_id DESC LIMIT ?",
            params,
        )
        return [_run_from_row(r) for r in rows]

    async def interrupt_unfinished_runs(self, end_time: float) -> int:
        """Runs a dead process left queued or running become interrupted."""

        def interrupt(conn: sqlite3.Connection) -> int:
            return int(
                conn.execute(
                    "UPDATE runs SET status = 'interrupted', error_reason = 'RUN_INTERRUPTED', "
                    "error_message = 'the server stopped while the run was in progress', "
                    "end_time = ? WHERE status IN ('queued', 'running')",
                    (end_time,),
                ).rowcount
            )

        return await self._write(interrupt)

    # -- teams --------------------------------------------------------------------------

    async def create_team(
        self, tenant: str, team_id: str, spec: TeamSpec, *, if_not_exists: bool
    ) -> tuple[Team, bool]:
        """Insert a team whose agents exist, or return the existing one."""
        return await self._write(sqlite_teams.create_team, tenant, team_id, spec, if_not_exists)

    async def get_team(self, tenant: str, team_id: str) -> Team | None:
        """One team, or None."""
        rows = self._read(
            f"SELECT {sqlite_teams.TEAM_COLUMNS} FROM teams WHERE tenant = ? AND team_id = ?",
            (tenant, team_id),
        )
        return sqlite_teams.team_from_row(rows[0]) if rows else None

    async def list_teams(self, tenant: str, *, after: str | None, limit: int) -> list[Team]:
        """A page of teams in id order."""
        rows = self._read(
            f"SELECT {sqlite_teams.TEAM_COLUMNS} FROM teams WHERE tenant = ? AND team_id > ? "
            "ORDER BY team_id LIMIT ?",
            (tenant, after or "", limit),
        )
        return [sqlite_teams.team_from_row(r) for r in rows]

    async def update_team(
        self, tenant: str, team_id: str, spec: TeamSpec, *, expected_revision: int | None
    ) -> Team:
        """Replace a team's spec, bumping the revision."""
        return await self._write(sqlite_teams.update_team, tenant, team_id, spec, expected_revision)

    async def delete_team(
        self, tenant: str, team_id: str, *, expected_revision: int | None
    ) -> None:
        """Delete a team."""
        await self._write(sqlite_teams.delete_team, tenant, team_id, expected_revision)

    async def integrity_check(self) -> str:
        """SQLite's own verdict on the file ('ok' when healthy)."""
        rows = self._read("PRAGMA integrity_check")
        return str(rows[0][0])
