"""Schema versions of the PostgreSQL store, applied in order at start-up.

Replicas starting together migrate once: the migrating replica holds a transaction-level
advisory lock, and the others wait for it and then find the schema current. Each version
is applied in one transaction with its row in `schema_version`, so a crash mid-migration
leaves the previous version intact. Add versions at the end; never edit a released one.

Free text that users or models write (message content, run input, output and error) is
stored as UTF-8 in BYTEA: PostgreSQL's TEXT cannot hold NUL characters, which callers
may legitimately send. JSON columns escape NUL themselves and stay TEXT.
"""

from __future__ import annotations

from .pg_runs import Conn

# Any 64-bit number unlikely to be used by another application on the same database.
MIGRATION_LOCK = 0x6F72636865737472

_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tenants (tenant TEXT PRIMARY KEY, default_agent_id TEXT);
CREATE TABLE agents (
    tenant TEXT NOT NULL, agent_id TEXT NOT NULL, spec TEXT NOT NULL,
    create_time DOUBLE PRECISION NOT NULL, update_time DOUBLE PRECISION NOT NULL,
    revision BIGINT NOT NULL, PRIMARY KEY (tenant, agent_id));
CREATE TABLE teams (
    tenant TEXT NOT NULL, team_id TEXT NOT NULL, spec TEXT NOT NULL,
    create_time DOUBLE PRECISION NOT NULL, update_time DOUBLE PRECISION NOT NULL,
    revision BIGINT NOT NULL, PRIMARY KEY (tenant, team_id));
CREATE TABLE sessions (
    tenant TEXT NOT NULL, agent_id TEXT NOT NULL, session_id TEXT NOT NULL,
    message_count BIGINT NOT NULL, create_time DOUBLE PRECISION NOT NULL,
    update_time DOUBLE PRECISION NOT NULL, owner TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tenant, agent_id, session_id));
CREATE TABLE messages (
    tenant TEXT NOT NULL, agent_id TEXT NOT NULL, session_id TEXT NOT NULL, seq BIGINT NOT NULL,
    role TEXT NOT NULL, content BYTEA NOT NULL, tool_calls TEXT NOT NULL,
    tool_call_id TEXT NOT NULL, run_id TEXT NOT NULL, create_time DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant, agent_id, session_id, seq));
-- queue_seq orders the queued turns of a session across replicas (arrival in the
-- database); replica_id names the replica whose lease covers the run.
CREATE TABLE runs (
    tenant TEXT NOT NULL, run_id TEXT NOT NULL, agent_id TEXT NOT NULL, session_id TEXT NOT NULL,
    status TEXT NOT NULL, input BYTEA NOT NULL, create_time DOUBLE PRECISION NOT NULL,
    request_id TEXT NOT NULL, parent_run_id TEXT NOT NULL, output BYTEA NOT NULL,
    prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL,
    error_reason TEXT NOT NULL, error_message BYTEA NOT NULL,
    start_time DOUBLE PRECISION, end_time DOUBLE PRECISION, owner TEXT NOT NULL,
    replica_id TEXT NOT NULL, queue_seq BIGSERIAL NOT NULL,
    PRIMARY KEY (tenant, run_id));
CREATE INDEX runs_by_time ON runs (tenant, create_time DESC, run_id DESC);
CREATE INDEX runs_by_session ON runs (tenant, agent_id, session_id, create_time);
CREATE UNIQUE INDEX runs_by_request ON runs (tenant, agent_id, request_id)
    WHERE request_id <> '';
-- One running turn per session, whichever replica runs it; the queue behind it.
CREATE UNIQUE INDEX runs_one_running ON runs (tenant, agent_id, session_id)
    WHERE status = 'running';
CREATE INDEX runs_active ON runs (tenant, agent_id, session_id, queue_seq)
    WHERE status IN ('queued', 'running');
CREATE INDEX runs_by_replica ON runs (replica_id) WHERE status IN ('queued', 'running');
-- Usage counters are spread over shards per tenant: one row per tenant would be locked
-- by every write of the tenant until it commits, serialising its concurrent turns.
CREATE TABLE usage (
    tenant TEXT NOT NULL, shard SMALLINT NOT NULL, message_bytes BIGINT NOT NULL DEFAULT 0,
    agents BIGINT NOT NULL DEFAULT 0, teams BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, shard));
CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, display_name TEXT NOT NULL,
    roles TEXT NOT NULL, creator TEXT NOT NULL, create_time DOUBLE PRECISION NOT NULL,
    expire_time DOUBLE PRECISION, revoke_time DOUBLE PRECISION,
    last_use_time DOUBLE PRECISION, secret_hash TEXT NOT NULL);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant, key_id);
CREATE TABLE audit_events (
    seq BIGSERIAL PRIMARY KEY, tenant TEXT NOT NULL, time DOUBLE PRECISION NOT NULL,
    principal TEXT NOT NULL, method TEXT NOT NULL, resource TEXT NOT NULL,
    outcome TEXT NOT NULL, reason TEXT NOT NULL, peer TEXT NOT NULL,
    authentication TEXT NOT NULL);
CREATE INDEX audit_by_tenant ON audit_events (tenant, seq);
CREATE INDEX audit_by_time ON audit_events (time);
-- The replicas serving this database and their leases (the database's clock decides
-- expiry, so replicas' clocks need not agree).
CREATE TABLE replicas (
    replica_id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,
    start_time DOUBLE PRECISION NOT NULL, expire_time DOUBLE PRECISION NOT NULL);
"""

MIGRATIONS: list[str] = [_V1]


async def migrate(conn: Conn) -> int:
    """Bring the schema to the newest version under the migration lock; the version."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, "
            "apply_time TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
    if current > len(MIGRATIONS):
        raise RuntimeError(
            f"database schema version {current} is newer than this server "
            f"({len(MIGRATIONS)}); upgrade the server"
        )
    for number in range(current + 1, len(MIGRATIONS) + 1):
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            done = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
            if done >= number:
                continue  # another replica applied it while this one waited
            await conn.execute(MIGRATIONS[number - 1])
            await conn.execute("INSERT INTO schema_version(version) VALUES ($1)", number)
    return len(MIGRATIONS)
