"""The JournalStore on PostgreSQL: chunks of run events in `run_events`, their total size
in `journal_usage`. A flush of any number of runs' chunks is one statement, which also
rings each run's doorbell (NOTIFY at commit) so that followers on other replicas read the
new chunks at once. A chunk written again (the first write's outcome unknown) replaces
the stored one, which it contains."""

from __future__ import annotations

from collections.abc import Sequence

from ..core.journal_port import EventChunk, enough_to_free
from .pg_plumbing import PostgresPlumbing
from .pg_runs import CHANNEL, Conn

# Schema version 2 (pg_schema.MIGRATIONS).
V2_RUN_EVENTS = """
CREATE TABLE run_events (tenant TEXT NOT NULL, run_id TEXT NOT NULL, agent_id TEXT NOT NULL,
    session_id TEXT NOT NULL, position BIGINT NOT NULL, end_position BIGINT NOT NULL,
    first_seq BIGINT NOT NULL, last_seq BIGINT NOT NULL, data BYTEA NOT NULL,
    create_time DOUBLE PRECISION NOT NULL, PRIMARY KEY (tenant, run_id, position));
CREATE INDEX run_events_by_session ON run_events(tenant, agent_id, session_id);
CREATE INDEX run_events_by_time ON run_events(create_time);
CREATE TABLE journal_usage (bytes BIGINT NOT NULL);
INSERT INTO journal_usage(bytes) VALUES (0);
"""

# EventChunk's fields, in order: rows are written with chunk.row() and read back
# with EventChunk(*row).
_COLUMNS = (
    "tenant, run_id, agent_id, session_id, position, end_position, first_seq, last_seq, "
    "data, create_time"
)

_APPEND = f"""
WITH given AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[],
        $6::bigint[], $7::bigint[], $8::bigint[], $9::bytea[], $10::float8[])
        AS g({_COLUMNS})),
replaced AS (
    SELECT octet_length(e.data) AS size FROM run_events e JOIN given g
        USING (tenant, run_id, position) WHERE e.end_position <= g.end_position),
added AS (
    INSERT INTO run_events AS e ({_COLUMNS}) SELECT g.* FROM given g
        WHERE EXISTS (SELECT 1 FROM runs r WHERE r.tenant = g.tenant AND r.run_id = g.run_id)
        ON CONFLICT (tenant, run_id, position) DO UPDATE
            SET end_position = excluded.end_position, first_seq = excluded.first_seq,
                last_seq = excluded.last_seq, data = excluded.data
            WHERE e.end_position <= excluded.end_position
        RETURNING tenant, run_id, octet_length(data) AS size),
counted AS (
    UPDATE journal_usage SET bytes = bytes + (SELECT coalesce(sum(size), 0) FROM added)
        - (SELECT coalesce(sum(size), 0) FROM replaced))
SELECT pg_notify($11, 'events' || chr(31) || tenant || chr(31) || run_id)
    FROM (SELECT DISTINCT tenant, run_id FROM added) d
"""

_DELETE_OLD = (
    "DELETE FROM run_events WHERE (tenant, run_id, position) IN (SELECT tenant, run_id, "
    "position FROM run_events WHERE create_time < $1 ORDER BY create_time LIMIT $2) "
    "RETURNING octet_length(data)"
)
_OLDEST = (
    "SELECT tenant, run_id, position, octet_length(data) FROM run_events "
    "ORDER BY create_time LIMIT $1"
)
_DELETE_CHOSEN = (
    "DELETE FROM run_events WHERE (tenant, run_id, position) IN (SELECT * FROM "
    "unnest($1::text[], $2::text[], $3::bigint[])) RETURNING octet_length(data)"
)


async def forget_events(conn: Conn, tenant: str, where: str, *params: str) -> None:
    """Delete the chunks of the tenant's runs matching `where` ($2, ...), deleted with
    their agent or session."""
    rows = await conn.fetch(
        f"DELETE FROM run_events WHERE tenant = $1 AND {where} RETURNING octet_length(data)",
        tenant,
        *params,
    )
    if rows:
        await conn.execute("UPDATE journal_usage SET bytes = bytes - $1", sum(r[0] for r in rows))


async def _prune(conn: Conn, before: float, max_bytes: int, limit: int) -> int:
    rows = await conn.fetch(_DELETE_OLD, before, limit)
    if not rows:
        size = await conn.fetchval("SELECT bytes FROM journal_usage")
        if size <= max_bytes:
            return 0
        oldest = [tuple(row) for row in await conn.fetch(_OLDEST, limit)]
        chosen = enough_to_free(oldest, size - max_bytes)
        keys = list(zip(*[row[:3] for row in chosen], strict=True))
        rows = await conn.fetch(_DELETE_CHOSEN, *keys) if keys else []
    await conn.execute("UPDATE journal_usage SET bytes = bytes - $1", sum(r[0] for r in rows))
    return len(rows)


class PostgresJournalStore:
    """Run event chunks on a PostgresStore's database."""

    def __init__(self, store: PostgresPlumbing) -> None:
        self._store = store

    async def append_run_events(self, chunks: Sequence[EventChunk]) -> None:
        """Store chunks (one statement) and ring their runs' doorbells."""
        columns = list(zip(*[c.row() for c in chunks], strict=True))
        await self._store.fetch(_APPEND, *columns, CHANNEL)

    async def run_events(
        self, tenant: str, run_id: str, after: int, limit: int, from_position: int = 0
    ) -> list[EventChunk]:
        """A run's chunks after `after`, in order."""
        rows = await self._store.fetch(
            f"SELECT {_COLUMNS} FROM run_events WHERE tenant = $1 AND run_id = $2 "
            "AND position >= $3 AND (last_seq >= $4 OR position = (SELECT max(position) "
            "FROM run_events WHERE tenant = $1 AND run_id = $2)) ORDER BY position LIMIT $5",
            tenant,
            run_id,
            from_position,
            after,
            limit,
        )
        return [EventChunk(*row) for row in rows]

    async def prune_run_events(self, before: float, max_bytes: int, limit: int) -> int:
        """Delete a batch of chunks past the retention."""
        return await self._store.transact(_prune, before, max_bytes, limit)
