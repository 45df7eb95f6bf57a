"""The SQL of conversations and runs in the PostgreSQL store: functions of a connection
inside one of the store's transactions (see postgres.py).

Replica safety lives here, in the database: the session row is locked (FOR UPDATE)
while a run starts, is claimed or ends, so decisions about a session's one running turn
and its FIFO queue are serialised across replicas; a unique index on running runs backs
that up. Outcomes are fenced: a run's end is written only while the run is still queued
or running, so a replica whose lease expired (and whose runs were marked INTERRUPTED by
a peer) cannot overwrite the outcome already recorded, nor append its late messages.
Every end rings the doorbell (NOTIFY) for the session's queue and the run's followers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from ..core.errors import AbortedError, Reason
from ..core.pagination import text_bytes
from ..core.quotas import StorageQuotas
from ..core.store_port import (
    AgentChangedError,
    AgentRevision,
    DuplicateRequestError,
    RunFencedError,
    SessionBusyError,
    SessionOwnerError,
    SessionRevision,
    WindowMovedError,
)
from ..core.types import Message, Run, RunQuery, RunStatus
from .pg_counters import USAGE_SHARDS, add_usage, stored_bytes
from .pg_rows import RUN_COLUMNS, encode, run_from_record
from .sqlite_rows import tool_calls_json

# A connection of the pool or a dedicated one: the SQL functions take either.
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
# Failures that mean "the database cannot be reached now", not "the request is wrong".
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
    # Raised by asyncpg when a connection broke in the middle of an operation.
    asyncpg.InternalClientError,
)
CHANNEL = "orchestrator_runs"
# The database's clock in Unix seconds: leases are measured on it alone.
DB_NOW = "extract(epoch from clock_timestamp())"
_ACTIVE = ("queued", "running")


def doorbell(tenant: str, agent_id: str, session_id: str, run_id: str) -> str:
    """The NOTIFY payload of a run's end (ids never contain the separator)."""
    return f"end\x1f{tenant}\x1f{agent_id}\x1f{session_id}\x1f{run_id}"


def agent_notice(tenant: str, agent_id: str) -> str:
    """The NOTIFY payload of an agent updated or deleted."""
    return f"agent\x1f{tenant}\x1f{agent_id}"


# -- sessions and messages --------------------------------------------------------------


async def append_messages(
    conn: Conn,
    tenant: str,
    agent_id: str,
    session_id: str,
    messages: Sequence[Message],
    now: float,
) -> list[Message]:
    """Append messages to a session after its last one; the messages as stored. Nothing
    is stored for a deleted agent."""
    if not messages:
        return []
    row = await conn.fetchrow(
        "INSERT INTO sessions(tenant, agent_id, session_id, message_count, create_time, "
        "update_time) SELECT $1, $2, $3, $4, $5, $5 WHERE EXISTS (SELECT 1 FROM agents "
        "WHERE tenant = $1 AND agent_id = $2) ON CONFLICT (tenant, agent_id, session_id) DO "
        "UPDATE SET message_count = sessions.message_count + $4, update_time = $5 "
        "RETURNING message_count",
        tenant,
        agent_id,
        session_id,
        len(messages),
        now,
    )
    if row is None:
        return []
    first = row[0] - len(messages) + 1
    calls = [tool_calls_json(m.tool_calls) for m in messages]
    await conn.executemany(
        "INSERT INTO messages(tenant, agent_id, session_id, seq, role, content, tool_calls, "
        "tool_call_id, run_id, create_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        [
            (
                tenant,
                agent_id,
                session_id,
                first + i,
                m.role.value,
                encode(m.content),
                calls[i],
                m.tool_call_id,
                m.run_id,
                now,
            )
            for i, m in enumerate(messages)
        ],
    )
    added = sum(text_bytes(m.content, c) for m, c in zip(messages, calls, strict=True))
    await add_usage(conn, tenant, "message_bytes", added)
    return [replace(m, sequence=first + i, create_time=now) for i, m in enumerate(messages)]


async def lock_agent(conn: Conn, tenant: str, agent_id: str) -> bool:
    """Keep the agent from being deleted until the transaction ends (every write of a run
    takes this first); False if it does not exist."""
    found = await conn.fetchval(
        "SELECT true FROM agents WHERE tenant = $1 AND agent_id = $2 FOR KEY SHARE",
        tenant,
        agent_id,
    )
    return bool(found)


async def append_turn_messages(
    conn: Conn,
    tenant: str,
    agent_id: str,
    session_id: str,
    messages: Sequence[Message],
    now: float,
) -> None:
    """Append a turn's tool steps, fenced like its outcome: only while its run is running
    and its replica's lease is live (locks in the order every run write takes them:
    agent, session, run, usage shard)."""
    run_id = messages[0].run_id if messages else ""
    await lock_agent(conn, tenant, agent_id)
    await _lock_session_row(conn, tenant, agent_id, session_id)
    if run_id and not await conn.fetchval(
        f"SELECT p.expire_time > {DB_NOW} FROM runs r JOIN replicas p "
        "ON p.replica_id = r.replica_id WHERE r.tenant = $1 AND r.run_id = $2 "
        "AND r.status = 'running' FOR SHARE OF r",
        tenant,
        run_id,
    ):
        return
    await append_messages(conn, tenant, agent_id, session_id, messages, now)


async def _lock_session_row(conn: Conn, tenant: str, agent_id: str, session_id: str) -> None:
    await conn.execute(
        "SELECT 1 FROM sessions WHERE tenant = $1 AND agent_id = $2 AND session_id = $3 FOR UPDATE",
        tenant,
        agent_id,
        session_id,
    )


async def delete_session(conn: Conn, tenant: str, agent_id: str, session_id: str) -> int:
    """Delete a session's messages, runs and row; SESSION_BUSY while it has a turn."""
    key = (tenant, agent_id, session_id)
    await _lock_session_row(conn, *key)
    active = await _active_run(conn, *key)
    if active is not None:
        raise AbortedError(
            "the session is running a turn; cancel it or wait",
            reason=Reason.SESSION_BUSY,
            metadata={"session_id": session_id, "active_run_id": active},
        )
    stored = await stored_bytes(
        conn, tenant, "agent_id = $2 AND session_id = $3", agent_id, session_id
    )
    deleted = await conn.execute(
        "DELETE FROM messages WHERE tenant = $1 AND agent_id = $2 AND session_id = $3", *key
    )
    await conn.execute(
        "DELETE FROM runs WHERE tenant = $1 AND agent_id = $2 AND session_id = $3", *key
    )
    await conn.execute(
        "DELETE FROM sessions WHERE tenant = $1 AND agent_id = $2 AND session_id = $3", *key
    )
    await add_usage(conn, tenant, "message_bytes", -stored)  # the shard last, as everywhere
    return int(deleted.rsplit(" ", 1)[-1])


# -- runs -------------------------------------------------------------------------------


async def _active_run(conn: Conn, tenant: str, agent_id: str, session_id: str) -> str | None:
    """The session's running run, else its first queued one, else None."""
    value: str | None = await conn.fetchval(
        "SELECT run_id FROM runs WHERE tenant = $1 AND agent_id = $2 AND session_id = $3 "
        "AND status IN ('queued', 'running') ORDER BY status DESC, queue_seq LIMIT 1",
        tenant,
        agent_id,
        session_id,
    )
    return value


async def begin_run(
    conn: Conn,
    tenant: str,
    run: Run,
    user_message: Message | None,
    quotas: StorageQuotas,
    replica_id: str,
    queue_if_busy: bool,
    window_at: SessionRevision | None = None,
    agent_at: AgentRevision | None = None,
) -> Run:
    """Insert a run (and its user message, if it runs at once) under its session's lock,
    in one round trip (the begin_run function of the schema); see the Store port for
    the errors, `window_at` and `agent_at`."""
    threshold = quotas.max_stored_bytes_per_tenant - 2 * text_bytes(run.input)
    message = None if user_message is None else encode(user_message.content)
    # -1: no window to check.
    window_time, window_count = (
        (window_at.create_time, window_at.count) if window_at is not None else (0.0, -1)
    )
    agent_revision, agent_time = (
        (agent_at.revision, agent_at.update_time) if agent_at is not None else (-1, 0.0)
    )
    try:
        row = await conn.fetchrow(
            "SELECT * FROM begin_run($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
            "$14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29)",
            tenant, run.run_id, run.agent_id, run.session_id, run.status.value,
            encode(run.input), run.create_time, run.request_id, run.parent_run_id,
            encode(run.output), run.usage.prompt_tokens, run.usage.completion_tokens,
            run.error_reason, encode(run.error_message), run.start_time, run.end_time,
            run.owner, replica_id, queue_if_busy, threshold, text_bytes(run.input, run.output),
            message, text_bytes(user_message.content, "[]") if user_message else 0,
            USAGE_SHARDS, run.trace_id, window_time, window_count, agent_revision, agent_time,
        )  # fmt: skip
    except asyncpg.UniqueViolationError as error:
        # Another replica stored the same key, or started a turn of a session whose agent
        # does not exist (no row to lock), between the function's checks and its insert.
        await _raise_conflict(conn, tenant, run, error.constraint_name or "")
        raise
    assert row is not None, "begin_run returns one row"
    outcome, detail, status = row
    if outcome == "agent":
        raise AgentChangedError(run.agent_id)
    if outcome == "duplicate":
        existing = await conn.fetchrow(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE tenant = $1 AND run_id = $2", tenant, detail
        )
        raise DuplicateRequestError(run_from_record(existing) if existing else run)
    if outcome == "quota":
        quotas.check_turn(tenant, int(detail), run.input)
    if outcome == "owner":
        raise SessionOwnerError(detail)
    if outcome == "busy":
        raise SessionBusyError(detail)
    if status == RunStatus.QUEUED.value and run.status is RunStatus.RUNNING:
        return replace(run, status=RunStatus.QUEUED, start_time=None)
    if detail == "moved":
        raise WindowMovedError(run)
    return run


async def _raise_conflict(conn: Conn, tenant: str, run: Run, constraint: str) -> None:
    """The Store port's error for a unique index a concurrent start filled first."""
    if constraint == "runs_by_request":
        existing = await conn.fetchrow(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE tenant = $1 AND agent_id = $2 "
            "AND request_id = $3",
            tenant,
            run.agent_id,
            run.request_id,
        )
        raise DuplicateRequestError(run_from_record(existing) if existing else run)
    if constraint == "runs_one_running":
        active = await _active_run(conn, tenant, run.agent_id, run.session_id)
        raise SessionBusyError(active or "")


async def claim_queued(
    conn: Conn, tenant: str, run_id: str, start_time: float, user_message: Message
) -> bool:
    """Move a queued run to running if it heads its session's queue and nothing runs
    there, appending its user message; False otherwise."""
    row = await conn.fetchrow(
        "SELECT agent_id, session_id FROM runs WHERE tenant = $1 AND run_id = $2 "
        "AND status = 'queued'",
        tenant,
        run_id,
    )
    if row is None:
        return False
    agent_id, session_id = row
    if not await lock_agent(conn, tenant, agent_id):
        return False  # deleted while the run waited (its delete removed the run too)
    await _lock_session_row(conn, tenant, agent_id, session_id)
    if await _active_run(conn, tenant, agent_id, session_id) != run_id:
        return False
    updated = await conn.execute(
        "UPDATE runs SET status = 'running', start_time = $3 WHERE tenant = $1 AND run_id = $2 "
        "AND status = 'queued'",
        tenant,
        run_id,
        start_time,
    )
    if updated != "UPDATE 1":
        return False
    await append_messages(conn, tenant, agent_id, session_id, [user_message], start_time)
    return True


async def finish_run(
    conn: Conn, tenant: str, run: Run, messages: Sequence[Message]
) -> list[Message]:
    """Record the run's outcome with its final messages, unless an outcome is recorded
    already or its replica's lease expired (fencing: RunFencedError); ring the session's
    doorbell. One round trip (the finish_run function of the schema)."""
    end = run.end_time if run.end_time is not None else run.create_time
    calls = [tool_calls_json(m.tool_calls) for m in messages]
    row = await conn.fetchrow(
        "SELECT * FROM finish_run($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
        "$15, $16, $17, $18, $19, $20, $21)",
        tenant, run.run_id, run.agent_id, run.session_id, run.status.value,
        encode(run.output), run.usage.prompt_tokens, run.usage.completion_tokens,
        run.error_reason, encode(run.error_message), end,
        [m.role.value for m in messages], [encode(m.content) for m in messages], calls,
        [m.tool_call_id for m in messages], [m.run_id for m in messages],
        sum(text_bytes(m.content, c) for m, c in zip(messages, calls, strict=True)),
        CHANNEL, doorbell(tenant, run.agent_id, run.session_id, run.run_id), USAGE_SHARDS,
        run.usage.model_calls,
    )  # fmt: skip
    assert row is not None, "finish_run returns one row"
    outcome, first = row
    if outcome == "fenced":
        raise RunFencedError(run.run_id)
    if outcome == "gone" or not first:
        return []  # deleted with its agent or session: nothing to record
    return [replace(m, sequence=first + i, create_time=end) for i, m in enumerate(messages)]


def list_runs_query(tenant: str, query: RunQuery) -> tuple[str, list[Any]]:
    """The SELECT of a page of runs, newest first (create_time, run_id descending)."""
    where = ["tenant = $1"]
    params: list[Any] = [tenant]

    def add(clause: str, *values: Any) -> None:
        marks = [f"${len(params) + i + 1}" for i in range(len(values))]
        where.append(clause.format(*marks))
        params.extend(values)

    if query.agent_id:
        add("agent_id = {}", query.agent_id)
    if query.session_id:
        add("session_id = {}", query.session_id)
    if query.owner is not None:
        add("owner = {}", query.owner)
    if query.after is not None:
        add("(create_time, run_id) < ({}, {})", *query.after)
    params.append(query.limit)
    sql = (
        f"SELECT {RUN_COLUMNS} FROM runs WHERE {' AND '.join(where)} "
        f"ORDER BY create_time DESC, run_id DESC LIMIT ${len(params)}"
    )
    return sql, params
