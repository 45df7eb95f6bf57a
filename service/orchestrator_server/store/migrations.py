"""Schema versions of the SQLite store, applied in order at start-up.

`PRAGMA user_version` holds the version reached. Each migration runs in its own
`BEGIN IMMEDIATE` transaction together with the version bump, so a crash mid-migration
leaves the previous version intact. Add migrations at the end; never edit a released one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils


Columns = dict[str, type]
_NOT_NULL_SPEC = {"spec", "create_time", "update_time", "revision"}


def _spec_table(key: str) -> Columns:
    """The columns of a resource stored as a JSON spec with a revision (agents, teams)."""
    return {
        "tenant": str,
        key: str,
        "spec": str,
        "create_time": float,
        "update_time": float,
        "revision": int,
    }


# Version 1 as released: (columns, primary key, not-null columns) per table. Every
# resource row carries its tenant; primary keys start with it so that every query is a
# prefix scan of one tenant's rows.
_V1_TABLES: dict[str, tuple[Columns, str | tuple[str, ...], set[str]]] = {
    "meta": ({"key": str, "value": str}, "key", set()),
    "tenants": ({"tenant": str, "default_agent_id": str}, "tenant", set()),
    "agents": (_spec_table("agent_id"), ("tenant", "agent_id"), _NOT_NULL_SPEC),
    "sessions": (
        {
            "tenant": str,
            "agent_id": str,
            "session_id": str,
            "message_count": int,
            "create_time": float,
            "update_time": float,
        },
        ("tenant", "agent_id", "session_id"),
        set(),
    ),
    "messages": (
        {
            "tenant": str,
            "agent_id": str,
            "session_id": str,
            "seq": int,
            "role": str,
            "content": str,
            "tool_calls": str,
            "tool_call_id": str,
            "run_id": str,
            "create_time": float,
        },
        ("tenant", "agent_id", "session_id", "seq"),
        {"role", "content", "tool_calls", "tool_call_id", "run_id", "create_time"},
    ),
    "runs": (
        {
            "run_id": str,
            "tenant": str,
            "agent_id": str,
            "session_id": str,
            "status": str,
            "input": str,
            "create_time": float,
            "request_id": str,
            "parent_run_id": str,
            "output": str,
            "prompt_tokens": int,
            "completion_tokens": int,
            "error_reason": str,
            "error_message": str,
            "start_time": float,
            "end_time": float,
        },
        "run_id",
        set(),
    ),
}


def _v1_initial(db: sqlite_utils.Database) -> None:
    for name, (columns, pk, not_null) in _V1_TABLES.items():
        db.table(name).create(columns, pk=pk, not_null=not_null or None)
    runs = db.table("runs")
    runs.create_index(["tenant", "create_time", "run_id"], index_name="runs_by_time")
    runs.create_index(
        ["tenant", "agent_id", "session_id", "create_time"], index_name="runs_by_session"
    )
    runs.create_index(["status"], index_name="runs_by_status")
    # Idempotency keys are unique per (tenant, agent); empty means "none given".
    db.execute(
        "CREATE UNIQUE INDEX runs_by_request ON runs(tenant, agent_id, request_id) "
        "WHERE request_id != ''"
    )


def _v2_teams(db: sqlite_utils.Database) -> None:
    # Members and templates live in the JSON spec like an agent's; the store finds the
    # teams naming an agent with json_each (a tenant has few teams, and agent deletes are
    # rare), which keeps the spec the single source of truth.
    db.table("teams").create(
        _spec_table("team_id"), pk=("tenant", "team_id"), not_null=_NOT_NULL_SPEC
    )


def _v3_usage(db: sqlite_utils.Database) -> None:
    # Per-tenant counters for the storage quotas, kept by the writes themselves: summing
    # a tenant's messages (or counting its agents) at every write would read all of them.
    columns = {"tenant": str, "message_bytes": int, "agents": int, "teams": int}
    db.table("usage").create(columns, pk="tenant", not_null=set(columns) - {"tenant"})
    db.execute(
        "INSERT INTO usage(tenant, message_bytes, agents, teams) SELECT tenant, sum(b), "
        "sum(a), sum(t) FROM (SELECT tenant, "
        "length(CAST(content AS BLOB)) + length(CAST(tool_calls AS BLOB)) AS b, 0 AS a, "
        "0 AS t FROM messages UNION ALL SELECT tenant, 0, 1, 0 FROM agents "
        "UNION ALL SELECT tenant, 0, 0, 1 FROM teams) GROUP BY tenant"
    )


def _v4_run_bytes(db: sqlite_utils.Database) -> None:
    # Run records (input, output) count towards stored bytes from now on: recount every
    # tenant's bytes (version 3 counted messages only).
    db.execute(
        "UPDATE usage SET message_bytes = coalesce((SELECT sum("
        "length(CAST(content AS BLOB)) + length(CAST(tool_calls AS BLOB))) FROM messages m "
        "WHERE m.tenant = usage.tenant), 0) + coalesce((SELECT sum("
        "length(CAST(input AS BLOB)) + length(CAST(coalesce(output, '') AS BLOB))) "
        "FROM runs r WHERE r.tenant = usage.tenant), 0)"
    )
    db.execute(
        "INSERT INTO usage(tenant, message_bytes, agents, teams) SELECT tenant, "
        "sum(length(CAST(input AS BLOB)) + length(CAST(coalesce(output, '') AS BLOB))), 0, 0 "
        "FROM runs WHERE tenant NOT IN (SELECT tenant FROM usage) GROUP BY tenant"
    )


def _v5_access(db: sqlite_utils.Database) -> None:
    # Sessions and runs belong to the principal that started the conversation; rows from
    # before access control belong to nobody ("": only tenant admins see them).
    db.execute("ALTER TABLE sessions ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
    # API keys: only a hash of the secret is kept; the id is global (it is read from the
    # secret before the tenant is known).
    db.execute(
        "CREATE TABLE api_keys (key_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, "
        "secret_hash TEXT NOT NULL, display_name TEXT NOT NULL, roles TEXT NOT NULL, "
        "creator TEXT NOT NULL, create_time REAL NOT NULL, expire_time REAL, "
        "revoke_time REAL, last_use_time REAL)"
    )
    db.execute("CREATE INDEX api_keys_by_tenant ON api_keys(tenant, key_id)")
    db.execute(
        "CREATE TABLE audit_events (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
        "tenant TEXT NOT NULL, time REAL NOT NULL, principal TEXT NOT NULL, "
        "method TEXT NOT NULL, resource TEXT NOT NULL, outcome TEXT NOT NULL, "
        "reason TEXT NOT NULL, peer TEXT NOT NULL, authentication TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX audit_by_tenant ON audit_events(tenant, seq)")
    db.execute("CREATE INDEX audit_by_time ON audit_events(time)")


def _v6_run_events(db: sqlite_utils.Database) -> None:
    # The journal of run events (FollowRun): chunks of consecutive events of one run,
    # with the run's agent and session so that deleting those deletes the chunks too.
    db.execute(
        "CREATE TABLE run_events (tenant TEXT NOT NULL, run_id TEXT NOT NULL, "
        "agent_id TEXT NOT NULL, session_id TEXT NOT NULL, position INTEGER NOT NULL, "
        "end_position INTEGER NOT NULL, first_seq INTEGER NOT NULL, "
        "last_seq INTEGER NOT NULL, data BLOB NOT NULL, create_time REAL NOT NULL, "
        "PRIMARY KEY (tenant, run_id, position))"
    )
    db.execute("CREATE INDEX run_events_by_session ON run_events(tenant, agent_id, session_id)")
    db.execute("CREATE INDEX run_events_by_time ON run_events(create_time)")
    db.execute("CREATE TABLE journal_usage (bytes INTEGER NOT NULL)")
    db.execute("INSERT INTO journal_usage(bytes) VALUES (0)")


def _v7_trace_ids(db: sqlite_utils.Database) -> None:
    # The W3C trace id of the call that started a run (GetRun shows it).
    db.execute("ALTER TABLE runs ADD COLUMN trace_id TEXT NOT NULL DEFAULT ''")


def _v8_usage_accounting(db: sqlite_utils.Database) -> None:
    # Model calls per run, and usage per tenant, agent and hour (UTC), kept by the
    # transaction that records a run's end (ListUsage sums hours into days).
    db.execute("ALTER TABLE runs ADD COLUMN model_calls INTEGER NOT NULL DEFAULT 0")
    db.execute(
        "CREATE TABLE usage_hourly (tenant TEXT NOT NULL, agent_id TEXT NOT NULL, "
        "hour INTEGER NOT NULL, runs INTEGER NOT NULL, model_calls INTEGER NOT NULL, "
        "prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, "
        "PRIMARY KEY (tenant, hour, agent_id))"
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _v1_initial,
    _v2_teams,
    _v3_usage,
    _v4_run_bytes,
    _v5_access,
    _v6_run_events,
    _v7_trace_ids,
    _v8_usage_accounting,
]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the newest version; return the version reached."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"database schema version {version} is newer than this server "
            f"({len(MIGRATIONS)}); upgrade the server"
        )
    if version == len(MIGRATIONS):
        return version
    # sqlite-utils is imported only when there is something to migrate: it is a large
    # import (with numpy, when installed) that an up-to-date database does not need.
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            step(db)
            conn.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return len(MIGRATIONS)
