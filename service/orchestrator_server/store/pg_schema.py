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

from .pg_begin_checks import with_agent_check, with_window_check
from .pg_journal import V2_RUN_EVENTS
from .pg_runs import Conn
from .pg_usage import RECORD_USAGE, V4_USAGE_TABLES

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

# A run's first write in one round trip (it is on the path to the first delta: the run is
# announced only once stored). The same steps as pg_runs.begin_run describes; outcomes
# other than 'ok' are turned into the Store port's errors by the caller.
_V1_BEGIN_RUN = """
CREATE FUNCTION begin_run(
    p_tenant text, p_run_id text, p_agent_id text, p_session_id text, p_status text,
    p_input bytea, p_create_time double precision, p_request_id text, p_parent_run_id text,
    p_output bytea, p_prompt_tokens bigint, p_completion_tokens bigint, p_error_reason text,
    p_error_message bytea, p_start_time double precision, p_end_time double precision,
    p_owner text, p_replica_id text, p_queue_if_busy boolean, p_quota_threshold bigint,
    p_run_bytes bigint, p_message bytea, p_message_bytes bigint, p_shards integer)
RETURNS TABLE (outcome text, detail text, status text)
LANGUAGE plpgsql AS $$
DECLARE
    v_found text;
    v_stored bigint;
    v_session boolean;
    v_status text := p_status;
    v_count bigint;
    v_bytes bigint := p_run_bytes;
BEGIN
    IF p_request_id <> '' THEN
        SELECT r.run_id INTO v_found FROM runs r WHERE r.tenant = p_tenant
            AND r.agent_id = p_agent_id AND r.request_id = p_request_id;
        IF FOUND THEN
            RETURN QUERY SELECT 'duplicate'::text, v_found, ''::text;
            RETURN;
        END IF;
    END IF;
    SELECT coalesce(sum(u.message_bytes), 0) INTO v_stored FROM usage u
        WHERE u.tenant = p_tenant;
    IF v_stored > p_quota_threshold THEN
        RETURN QUERY SELECT 'quota'::text, v_stored::text, ''::text;
        RETURN;
    END IF;
    -- The agent cannot be deleted until this commits (its delete then removes the run);
    -- if it was deleted first, the run is stored without a session, as for a missing agent.
    PERFORM 1 FROM agents a WHERE a.tenant = p_tenant AND a.agent_id = p_agent_id
        FOR KEY SHARE;
    v_session := FOUND;
    IF v_session THEN
        -- Create or lock the session row; DO UPDATE (not DO NOTHING) waits for a delete of
        -- the session in progress and then inserts it afresh.
        INSERT INTO sessions AS s (tenant, agent_id, session_id, message_count, create_time,
            update_time, owner) VALUES (p_tenant, p_agent_id, p_session_id, 0, p_create_time,
            p_create_time, p_owner) ON CONFLICT (tenant, agent_id, session_id)
            DO UPDATE SET update_time = s.update_time RETURNING s.owner INTO v_found;
    END IF;
    IF v_session AND v_found <> p_owner THEN
        RETURN QUERY SELECT 'owner'::text, v_found, ''::text;
        RETURN;
    END IF;
    IF v_status = 'running' AND v_session THEN
        SELECT r.run_id INTO v_found FROM runs r WHERE r.tenant = p_tenant
            AND r.agent_id = p_agent_id AND r.session_id = p_session_id
            AND r.status IN ('queued', 'running') ORDER BY r.status DESC, r.queue_seq LIMIT 1;
        IF FOUND THEN
            IF NOT p_queue_if_busy THEN
                RETURN QUERY SELECT 'busy'::text, v_found, ''::text;
                RETURN;
            END IF;
            v_status := 'queued';
            p_start_time := NULL;
            p_message := NULL;
        END IF;
    END IF;
    INSERT INTO runs (tenant, run_id, agent_id, session_id, status, input, create_time,
        request_id, parent_run_id, output, prompt_tokens, completion_tokens, error_reason,
        error_message, start_time, end_time, owner, replica_id)
    VALUES (p_tenant, p_run_id, p_agent_id, p_session_id, v_status, p_input, p_create_time,
        p_request_id, p_parent_run_id, p_output, p_prompt_tokens, p_completion_tokens,
        p_error_reason, p_error_message, p_start_time, p_end_time, p_owner, p_replica_id);
    IF p_message IS NOT NULL AND v_session THEN
        UPDATE sessions s SET message_count = s.message_count + 1, update_time = p_create_time
            WHERE s.tenant = p_tenant AND s.agent_id = p_agent_id
            AND s.session_id = p_session_id RETURNING s.message_count INTO v_count;
        INSERT INTO messages (tenant, agent_id, session_id, seq, role, content, tool_calls,
            tool_call_id, run_id, create_time) VALUES (p_tenant, p_agent_id, p_session_id,
            v_count, 'user', p_message, '[]', '', p_run_id, p_create_time);
        v_bytes := v_bytes + p_message_bytes;
    END IF;
    IF v_bytes <> 0 THEN
        INSERT INTO usage AS u (tenant, shard, message_bytes)
            VALUES (p_tenant, pg_backend_pid() % p_shards, v_bytes)
            ON CONFLICT (tenant, shard) DO UPDATE SET message_bytes = u.message_bytes + v_bytes;
    END IF;
    RETURN QUERY SELECT 'ok'::text, ''::text, v_status;
END
$$;
"""

# A run's end in one round trip (fenced; see pg_runs.finish_run): 'gone' when the run
# was deleted, 'fenced' when its outcome is recorded or its replica's lease expired,
# else 'ok' with the sequence number of the first message appended (0: none).
_V1_FINISH_RUN = """
CREATE FUNCTION finish_run(
    p_tenant text, p_run_id text, p_agent_id text, p_session_id text, p_status text,
    p_output bytea, p_prompt_tokens bigint, p_completion_tokens bigint, p_error_reason text,
    p_error_message bytea, p_end_time double precision, p_roles text[], p_contents bytea[],
    p_tool_calls text[], p_tool_call_ids text[], p_message_run_ids text[],
    p_message_bytes bigint, p_channel text, p_doorbell text, p_shards integer)
RETURNS TABLE (outcome text, first_seq bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
    v_old bigint;
    v_live boolean;
    v_n integer := coalesce(array_length(p_roles, 1), 0);
    v_count bigint;
    v_first bigint := 0;
    v_bytes bigint := 0;
BEGIN
    PERFORM 1 FROM agents a WHERE a.tenant = p_tenant AND a.agent_id = p_agent_id
        FOR KEY SHARE;
    PERFORM 1 FROM sessions s WHERE s.tenant = p_tenant AND s.agent_id = p_agent_id
        AND s.session_id = p_session_id FOR UPDATE;
    SELECT r.status, octet_length(r.output),
        coalesce(p.expire_time > extract(epoch from clock_timestamp()), false)
        INTO v_status, v_old, v_live
        FROM runs r LEFT JOIN replicas p ON p.replica_id = r.replica_id
        WHERE r.tenant = p_tenant AND r.run_id = p_run_id FOR UPDATE OF r;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'gone'::text, 0::bigint;
        RETURN;
    END IF;
    IF v_status NOT IN ('queued', 'running') OR NOT v_live THEN
        RETURN QUERY SELECT 'fenced'::text, 0::bigint;
        RETURN;
    END IF;
    IF v_n > 0 THEN
        INSERT INTO sessions AS s (tenant, agent_id, session_id, message_count, create_time,
            update_time) SELECT p_tenant, p_agent_id, p_session_id, v_n, p_end_time,
            p_end_time WHERE EXISTS (SELECT 1 FROM agents a WHERE a.tenant = p_tenant
            AND a.agent_id = p_agent_id)
            ON CONFLICT (tenant, agent_id, session_id) DO UPDATE
            SET message_count = s.message_count + v_n, update_time = p_end_time
            RETURNING s.message_count INTO v_count;
        IF FOUND THEN
            v_first := v_count - v_n + 1;
            INSERT INTO messages (tenant, agent_id, session_id, seq, role, content, tool_calls,
                tool_call_id, run_id, create_time)
            SELECT p_tenant, p_agent_id, p_session_id, v_first + i - 1, p_roles[i],
                p_contents[i], p_tool_calls[i], p_tool_call_ids[i], p_message_run_ids[i],
                p_end_time FROM generate_subscripts(p_roles, 1) AS i;
            v_bytes := p_message_bytes;
        END IF;
    END IF;
    v_bytes := v_bytes + octet_length(p_output) - v_old;
    IF v_bytes <> 0 THEN
        INSERT INTO usage AS u (tenant, shard, message_bytes)
            VALUES (p_tenant, pg_backend_pid() % p_shards, v_bytes)
            ON CONFLICT (tenant, shard) DO UPDATE SET message_bytes = u.message_bytes + v_bytes;
    END IF;
    UPDATE runs r SET status = p_status, output = p_output, prompt_tokens = p_prompt_tokens,
        completion_tokens = p_completion_tokens, error_reason = p_error_reason,
        error_message = p_error_message, end_time = p_end_time,
        start_time = coalesce(r.start_time, p_end_time)
        WHERE r.tenant = p_tenant AND r.run_id = p_run_id;
    PERFORM pg_notify(p_channel, p_doorbell);
    RETURN QUERY SELECT 'ok'::text, v_first;
END
$$;
"""


def _with_trace_id(begin_run: str) -> str:
    """Version 1's begin_run with one more parameter, the run's trace id, stored with it
    (a new overload: replicas not yet upgraded go on calling the old one)."""
    steps = (
        ("p_shards integer)", "p_shards integer, p_trace_id text)"),
        ("owner, replica_id)\n    VALUES (", "owner, replica_id, trace_id)\n    VALUES ("),
        ("p_owner, p_replica_id);", "p_owner, p_replica_id, p_trace_id);"),
    )
    for old, new in steps:
        assert begin_run.count(old) == 1, old
        begin_run = begin_run.replace(old, new)
    return begin_run


# Version 3: runs keep the trace id of the call that started them.
_V3_TRACE_IDS = "ALTER TABLE runs ADD COLUMN trace_id TEXT NOT NULL DEFAULT '';\n" + _with_trace_id(
    _V1_BEGIN_RUN
)


def _with_usage(finish_run: str) -> str:
    """Version 1's finish_run with one more parameter, the run's model calls, stored with
    it and added to usage accounting with its tokens (a new overload: replicas not yet
    upgraded go on calling the old one, and their runs are not counted)."""
    steps = (
        ("p_shards integer)", "p_shards integer, p_model_calls bigint)"),
        (
            "completion_tokens = p_completion_tokens,",
            "completion_tokens = p_completion_tokens, model_calls = p_model_calls,",
        ),
        (
            "    PERFORM pg_notify(p_channel, p_doorbell);",
            RECORD_USAGE + "    PERFORM pg_notify(p_channel, p_doorbell);",
        ),
        # A run deleted meanwhile (with its agent or session) is counted too: what it
        # used was used.
        (
            "    IF NOT FOUND THEN\n        RETURN QUERY SELECT 'gone'",
            "    IF NOT FOUND THEN\n" + RECORD_USAGE + "        RETURN QUERY SELECT 'gone'",
        ),
    )
    for old, new in steps:
        assert finish_run.count(old) == 1, old
        finish_run = finish_run.replace(old, new)
    return finish_run


# Version 4: usage accounting (runs, model calls and tokens per tenant, agent and hour).
_V4_USAGE = V4_USAGE_TABLES + _with_usage(_V1_FINISH_RUN)


# Version 5: a run's write checks the revision its turn's window was read at.
_V5_WINDOW_CHECK = with_window_check(_with_trace_id(_V1_BEGIN_RUN))


# Version 6: the write of a turn started without a read checks the agent's revision.
_V6_AGENT_CHECK = with_agent_check(_V5_WINDOW_CHECK)

MIGRATIONS: list[str] = [
    _V1 + _V1_BEGIN_RUN + _V1_FINISH_RUN,
    V2_RUN_EVENTS,
    _V3_TRACE_IDS,
    _V4_USAGE,
    _V5_WINDOW_CHECK,
    _V6_AGENT_CHECK,
]


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
