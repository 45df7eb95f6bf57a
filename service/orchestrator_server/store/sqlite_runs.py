"""The SQL of conversations and runs in the SQLite store: functions of a connection
inside the writer's transaction (see sqlite.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..core.errors import Reason
from ..core.pagination import text_bytes
from ..core.quotas import StorageQuotas
from ..core.store_port import DuplicateRequestError, SessionOwnerError
from ..core.types import Message, Run, RunQuery, RunStatus
from . import sqlite_journal, sqlite_usage
from .sqlite_rows import RUN_COLUMNS, run_from_row, tool_calls_json


def delete_session(conn: sqlite3.Connection, tenant: str, agent_id: str, session_id: str) -> int:
    """Delete a session's messages, runs and row; how many messages went."""
    key = (tenant, agent_id, session_id)
    sqlite_usage.forget_rows(conn, tenant, "agent_id = ? AND session_id = ?", key[1:])
    sqlite_journal.forget(conn, tenant, "agent_id = ? AND session_id = ?", key[1:])
    deleted = conn.execute(
        "DELETE FROM messages WHERE tenant = ? AND agent_id = ? AND session_id = ?", key
    ).rowcount
    conn.execute("DELETE FROM runs WHERE tenant = ? AND agent_id = ? AND session_id = ?", key)
    conn.execute("DELETE FROM sessions WHERE tenant = ? AND agent_id = ? AND session_id = ?", key)
    return int(deleted)


def append_messages(
    conn: sqlite3.Connection,
    tenant: str,
    agent_id: str,
    session_id: str,
    messages: Sequence[Message],
    now: float,
    *,
    more_bytes: int = 0,
) -> list[Message]:
    """Append messages to a session, numbering them after its last one; the messages as
    stored. `more_bytes` (the caller's other change to the tenant's stored bytes) goes
    into the same counter update."""
    # A turn that ends after its agent was deleted must not leave orphan rows behind.
    if (
        not messages
        or not conn.execute(
            "SELECT 1 FROM agents WHERE tenant = ? AND agent_id = ?", (tenant, agent_id)
        ).fetchone()
    ):
        sqlite_usage.add(conn, tenant, "message_bytes", more_bytes)
        return []
    row = conn.execute(
        "SELECT message_count FROM sessions WHERE tenant = ? AND agent_id = ? AND session_id = ?",
        (tenant, agent_id, session_id),
    ).fetchone()
    count = row[0] if row else 0
    added = _insert_messages(conn, (tenant, agent_id, session_id), messages, count, now)
    sqlite_usage.add(conn, tenant, "message_bytes", added + more_bytes)
    conn.execute(
        "INSERT INTO sessions(tenant, agent_id, session_id, message_count, create_time, "
        "update_time) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(tenant, agent_id, session_id) "
        "DO UPDATE SET message_count = excluded.message_count, "
        "update_time = excluded.update_time",
        (tenant, agent_id, session_id, count + len(messages), now, now),
    )
    return [replace(m, sequence=count + i + 1, create_time=now) for i, m in enumerate(messages)]


def _insert_messages(
    conn: sqlite3.Connection,
    key: tuple[str, str, str],
    messages: Sequence[Message],
    after: int,
    now: float,
) -> int:
    """Insert messages numbered after `after`; the bytes they add to the tenant's."""
    calls = [tool_calls_json(m.tool_calls) for m in messages]
    conn.executemany(
        "INSERT INTO messages(tenant, agent_id, session_id, seq, role, content, tool_calls, "
        "tool_call_id, run_id, create_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (*key, after + i + 1, m.role.value, m.content, calls[i], m.tool_call_id, m.run_id, now)
            for i, m in enumerate(messages)
        ],
    )
    return sqlite_usage.message_bytes(
        [(m.content, c) for m, c in zip(messages, calls, strict=True)]
    )


def claim_session(conn: sqlite3.Connection, tenant: str, run: Run) -> int | None:
    """Create the run's session for its owner, or check that the session is the owner's:
    SessionOwnerError when another principal took it first (between the core's check
    and this transaction). The session's message count; None when it has no row (its
    agent is gone)."""
    key = (tenant, run.agent_id, run.session_id)
    conn.execute(
        "INSERT INTO sessions(tenant, agent_id, session_id, message_count, create_time, "
        "update_time, owner) SELECT ?, ?, ?, 0, ?, ?, ? WHERE EXISTS (SELECT 1 FROM agents "
        "WHERE tenant = ? AND agent_id = ?) ON CONFLICT(tenant, agent_id, session_id) DO NOTHING",
        (*key, run.create_time, run.create_time, run.owner, tenant, run.agent_id),
    )
    row = conn.execute(
        "SELECT owner, message_count FROM sessions WHERE tenant = ? AND agent_id = ? "
        "AND session_id = ?",
        key,
    ).fetchone()
    if row is None:
        return None
    if row[0] != run.owner:
        raise SessionOwnerError(str(row[0]))
    return int(row[1])


def session_owner(
    conn: sqlite3.Connection, tenant: str, agent_id: str, session_id: str
) -> str | None:
    """The owner of a session, or None when it does not exist."""
    row = conn.execute(
        "SELECT owner FROM sessions WHERE tenant = ? AND agent_id = ? AND session_id = ?",
        (tenant, agent_id, session_id),
    ).fetchone()
    return None if row is None else str(row[0])


def begin_run(
    conn: sqlite3.Connection,
    tenant: str,
    run: Run,
    user_message: Message | None,
    quotas: StorageQuotas,
) -> Run:
    """Insert a run and its user message; DuplicateRequestError for a used key,
    QUOTA_EXCEEDED if its input would take the tenant past its stored bytes."""
    if run.request_id:
        row = conn.execute(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE tenant = ? AND agent_id = ? AND request_id = ?",
            (tenant, run.agent_id, run.request_id),
        ).fetchone()
        if row:
            raise DuplicateRequestError(run_from_row(row))
    sqlite_usage.check_turn(conn, quotas, tenant, run.input)
    added = text_bytes(run.input, run.output)
    conn.execute(
        f"INSERT INTO runs(tenant, {RUN_COLUMNS}) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            run.owner,
            run.trace_id,
            run.usage.model_calls,
        ),
    )
    count = claim_session(conn, tenant, run)
    if user_message is not None and count is not None:
        key = (tenant, run.agent_id, run.session_id)
        added += _insert_messages(conn, key, [user_message], count, run.create_time)
        conn.execute(
            "UPDATE sessions SET message_count = ?, update_time = ? WHERE tenant = ? AND "
            "agent_id = ? AND session_id = ?",
            (count + 1, run.create_time, *key),
        )
    sqlite_usage.add(conn, tenant, "message_bytes", added)
    return run


def mark_running(
    conn: sqlite3.Connection, tenant: str, run_id: str, start_time: float, user_message: Message
) -> bool:
    """Move a queued run to running and append its user message; False if it is not
    queued (any more)."""
    row = conn.execute(
        "SELECT agent_id, session_id FROM runs WHERE tenant = ? AND run_id = ? "
        "AND status = 'queued'",
        (tenant, run_id),
    ).fetchone()
    if row is None:
        return False
    conn.execute(
        "UPDATE runs SET status = 'running', start_time = ? WHERE tenant = ? AND run_id = ?",
        (start_time, tenant, run_id),
    )
    append_messages(conn, tenant, row[0], row[1], [user_message], start_time)
    return True


def finish_run(
    conn: sqlite3.Connection, tenant: str, run: Run, messages: Sequence[Message]
) -> list[Message]:
    """Append the turn's final messages and record the run's outcome."""
    end = run.end_time if run.end_time is not None else run.create_time
    previous = conn.execute(
        "SELECT output FROM runs WHERE tenant = ? AND run_id = ?", (tenant, run.run_id)
    ).fetchone()
    grown = 0 if previous is None else text_bytes(run.output) - text_bytes(previous[0] or "")
    stored = append_messages(
        conn, tenant, run.agent_id, run.session_id, messages, end, more_bytes=grown
    )
    conn.execute(
        "UPDATE runs SET status = ?, output = ?, prompt_tokens = ?, completion_tokens = ?, "
        "model_calls = ?, error_reason = ?, error_message = ?, end_time = ?, "
        "start_time = COALESCE(start_time, ?) WHERE tenant = ? AND run_id = ?",
        (
            run.status.value,
            run.output,
            run.usage.prompt_tokens,
            run.usage.completion_tokens,
            run.usage.model_calls,
            run.error_reason,
            run.error_message,
            end,
            end,
            tenant,
            run.run_id,
        ),
    )
    # Counted even when the run was deleted meanwhile (with its agent or session): what
    # it used was used.
    sqlite_usage.record_run(conn, tenant, run, end)
    return stored


def list_runs_query(tenant: str, query: RunQuery) -> tuple[str, list[Any]]:
    """The SELECT of a page of runs, newest first (create_time, run_id descending)."""
    where = ["tenant = ?"]
    params: list[Any] = [tenant]
    if query.agent_id:
        where.append("agent_id = ?")
        params.append(query.agent_id)
    if query.session_id:
        where.append("session_id = ?")
        params.append(query.session_id)
    if query.owner is not None:
        where.append("owner = ?")
        params.append(query.owner)
    if query.after is not None:
        where.append("(create_time, run_id) < (?, ?)")
        params.extend(query.after)
    params.append(query.limit)
    sql = (
        f"SELECT {RUN_COLUMNS} FROM runs WHERE {' AND '.join(where)} "
        "ORDER BY create_time DESC, run_id DESC LIMIT ?"
    )
    return sql, params


def interrupt_unfinished_runs(conn: sqlite3.Connection, end_time: float) -> int:
    """Runs a dead process left queued or running become interrupted."""
    cursor = conn.execute(
        "UPDATE runs SET status = ?, error_reason = ?, "
        "error_message = 'the server stopped while the run was in progress', "
        "end_time = ? WHERE status IN (?, ?)",
        (
            RunStatus.INTERRUPTED.value,
            Reason.RUN_INTERRUPTED.value,
            end_time,
            RunStatus.QUEUED.value,
            RunStatus.RUNNING.value,
        ),
    )
    return int(cursor.rowcount)
