"""The PostgreSQL store: several replicas on one database act as one service.

asyncpg on the event loop with a connection pool (a point read is one round trip, no
thread hop). Every operation that cannot reach the database fails fast with UNAVAILABLE
/ STORE_UNAVAILABLE (connect timeout, command timeout); the pool replaces broken
connections by itself, so replicas recover when the database returns. Transactions that
PostgreSQL aborts for a deadlock or a serialisation conflict are retried.

Agents are cached with their revision and update time; every read asks the database
whether the cached version is current (one round trip that returns the spec only when it
changed), so a replica never serves an agent older than a write acknowledged anywhere.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Sequence

import asyncpg

from ..core.errors import QuotaExceededError
from ..core.quotas import DEFAULT_QUOTAS, StorageQuotas
from ..core.store_port import (
    AgentChangedError,
    AgentRevision,
    SessionOwnerError,
    SessionRevision,
    TurnStart,
)
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
from . import (
    pg_agents,
    pg_counters,
    pg_history,
    pg_journal,
    pg_rows,
    pg_runs,
    pg_turn_start,
    pg_usage,
)
from .agent_cache import AgentCache
from .history_cache import HistoryCache
from .pg_outcomes import UnrecordedEnds
from .pg_plumbing import keep_session, unavailable
from .pg_replicas import DEFAULT_LEASE_SECONDS, PostgresCoordination
from .pg_runs import UNREACHABLE, Conn
from .pg_schema import migrate
from .pg_teams import PostgresTeams
from .turn_guesses import TurnGuesses

log = logging.getLogger(__name__)


class PostgresStore(PostgresTeams):
    """The `Store` (and, through PostgresAccessStore, the `AccessStore`) on PostgreSQL."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        agent_cache_size: int = 10_000,
        quotas: StorageQuotas = DEFAULT_QUOTAS,
        command_timeout: float = 30.0,
        replica: bool = True,
    ) -> None:
        self._url = url
        self._pool_size = pool_size
        self._lease_seconds = lease_seconds
        self._quotas = quotas
        self._command_timeout = command_timeout
        self._agents = AgentCache(max_entries=agent_cache_size)
        self._history = HistoryCache()
        self._guesses = TurnGuesses(self._agents, self._history)
        self._replica = replica  # False: a tool (create-api-key) that runs no turns
        self._ends = UnrecordedEnds(self._finish)
        self._pool: asyncpg.Pool | None = None
        self.coordination: PostgresCoordination | None = None

    # -- plumbing -----------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, migrate (once across replicas), take this replica's lease."""
        self._pool = await asyncpg.create_pool(
            self._url,
            # No floor: asyncpg would keep reconnecting it in the background (and log each
            # failure) while the database is down; connections open on demand.
            min_size=0,
            max_size=self._pool_size,
            timeout=5,  # connecting
            command_timeout=self._command_timeout,
            max_inactive_connection_lifetime=120,
            reset=keep_session,
        )
        async with self._pool.acquire() as conn:
            await migrate(conn)
        if not self._replica:
            return
        self.coordination = coordination = PostgresCoordination(
            self._url, self._pool, self._lease_seconds
        )
        coordination.after_heartbeat(self._ends.flush)
        coordination.on_session_end(self._guesses.saw)
        coordination.on_agent_change(lambda tenant, agent: self._agents.forget((tenant, agent)))
        self._guesses.listening = lambda: coordination.listening
        await self.coordination.start()

    async def close(self) -> None:
        """Give the lease up and close every connection."""
        if self.coordination is not None:
            await self.coordination.stop()
        if self._pool is not None:
            with contextlib.suppress(*UNREACHABLE):
                await self._pool.close()
            self._pool = None

    @property
    def replica_id(self) -> str:
        """This replica's current lease id."""
        assert self.coordination is not None, "store is not open"
        return self.coordination.replica_id

    async def page_token_secret(self) -> bytes:
        """The installation's page-token secret, shared by every replica."""

        async def create(conn: Conn) -> bytes:
            await conn.execute(
                "INSERT INTO meta(key, value) VALUES ('page_token_secret', $1) "
                "ON CONFLICT DO NOTHING",
                secrets.token_hex(32),
            )
            value = await conn.fetchval("SELECT value FROM meta WHERE key = 'page_token_secret'")
            return bytes.fromhex(value)

        return await self.transact(create)

    # -- agents -------------------------------------------------------------------------

    async def create_agent(self, tenant: str, new: NewAgent) -> tuple[Agent, bool]:
        """Insert an agent, or return the existing one under if_not_exists."""
        return await self.transact(pg_agents.create_agent, tenant, new, self._quotas)

    async def get_agent(self, tenant: str, agent_id: str) -> Agent | None:
        """One agent: the cached spec if the database says it is current, else the new
        one (one round trip either way)."""
        key = (tenant, agent_id)
        cached = self._agents.get(key)
        row = await self.fetchrow(
            pg_agents.REVISION_CHECKED_READ,
            tenant,
            agent_id,
            cached.revision if cached else 0,
            cached.update_time if cached else 0.0,
        )
        if row is None:
            self._agents.forget(key)
            return None
        return pg_agents.checked_agent(self._agents, key, cached, row)

    async def list_agents(
        self, tenant: str, *, after: str | None, limit: int, label_filter: dict[str, str]
    ) -> list[Agent]:
        """A page of agents in id order."""
        sql, params = pg_agents.list_agents_query(tenant, after, limit, label_filter)
        return [pg_agents.agent_from_record(r) for r in await self.fetch(sql, *params)]

    async def update_agent(
        self, tenant: str, agent_id: str, spec: AgentSpec, *, expected_revision: int | None
    ) -> Agent:
        """Replace the spec, bumping the revision (every replica's cached copy is
        dropped: this one's now, the others' when they hear of it)."""
        self._agents.forget((tenant, agent_id))
        return await self.transact(
            pg_agents.update_agent, tenant, agent_id, spec, expected_revision
        )

    async def delete_agent(
        self, tenant: str, agent_id: str, *, expected_revision: int | None
    ) -> None:
        """Delete the agent with its conversations and runs."""
        self._history.forget(tenant, agent_id)
        self._agents.forget((tenant, agent_id))
        await self.transact(pg_agents.delete_agent, tenant, agent_id, expected_revision)

    async def set_default_agent(self, tenant: str, agent_id: str) -> Agent:
        """Make the agent its tenant's default."""
        return await self.transact(pg_agents.set_default_agent, tenant, agent_id)

    async def default_agent_id(self, tenant: str) -> str | None:
        """The tenant's default agent id, if any."""
        row = await self.fetchrow("SELECT default_agent_id FROM tenants WHERE tenant = $1", tenant)
        return row[0] if row and row[0] else None

    # -- conversations ------------------------------------------------------------------

    async def load_history(
        self, tenant: str, agent_id: str, session_id: str, limit: int
    ) -> list[Message]:
        """The last `limit` messages, oldest first (see pg_history)."""
        key = (tenant, agent_id, session_id)
        return await pg_history.read_window(self.fetch, self._history, key, limit)

    async def list_messages(
        self, tenant: str, agent_id: str, session_id: str, *, after: int, limit: int
    ) -> list[Message]:
        """Messages after a sequence number, oldest first."""
        rows = await self.fetch(
            f"SELECT {pg_rows.MESSAGE_COLUMNS} FROM messages WHERE tenant = $1 AND "
            "agent_id = $2 AND session_id = $3 AND seq > $4 ORDER BY seq LIMIT $5",
            tenant,
            agent_id,
            session_id,
            after,
            limit,
        )
        return [pg_rows.message_from_record(r) for r in rows]

    async def list_sessions(
        self, tenant: str, agent_id: str, *, after: str | None, limit: int, owner: str | None = None
    ) -> list[Session]:
        """Sessions of an agent in id order (only `owner`'s, unless None)."""
        rows = await self.fetch(
            "SELECT agent_id, session_id, message_count, create_time, update_time, owner "
            "FROM sessions WHERE tenant = $1 AND agent_id = $2 AND session_id > $3 "
            "AND ($4::text IS NULL OR owner = $4) ORDER BY session_id LIMIT $5",
            tenant,
            agent_id,
            after or "",
            owner,
            limit,
        )
        return [Session(*r) for r in rows]

    async def session_owner(self, tenant: str, agent_id: str, session_id: str) -> str | None:
        """The principal owning a session, or None."""
        row = await self.fetchrow(
            "SELECT owner FROM sessions WHERE tenant = $1 AND agent_id = $2 AND session_id = $3",
            tenant,
            agent_id,
            session_id,
        )
        return None if row is None else str(row[0])

    async def read_turn_start(
        self, tenant: str, agent_id: str, session_id: str, text: str
    ) -> TurnStart:
        """The agent, the session's owner, its window and the quota's answer in one
        round trip (see pg_turn_start)."""
        key = (tenant, agent_id, session_id)

        def fits(stored: int) -> Exception | None:
            return self._quotas.turn_refusal(tenant, stored, text)

        start = await pg_turn_start.read_turn_start(
            self.fetchrow, self.fetch, self._agents, self._history, key, fits
        )
        if start.owner is not None:
            self._guesses.saw(*key)
        return start

    def guess_turn_start(self, tenant: str, agent_id: str, session_id: str) -> TurnStart | None:
        """The start of a session's first turn, without a read (see turn_guesses)."""
        return self._guesses.guess((tenant, agent_id, session_id))

    async def delete_session(self, tenant: str, agent_id: str, session_id: str) -> int:
        """Delete a session; SESSION_BUSY while any replica runs a turn in it."""
        self._history.forget(tenant, agent_id, session_id)
        return await self.transact(_delete_session, tenant, agent_id, session_id)

    async def append_messages(
        self, tenant: str, agent_id: str, session_id: str, messages: Sequence[Message]
    ) -> None:
        """Append a turn's tool steps (fenced like its outcome)."""
        await self.transact(
            pg_runs.append_turn_messages, tenant, agent_id, session_id, messages, time.time()
        )

    # -- runs ---------------------------------------------------------------------------

    async def check_turn_fits(self, tenant: str, text: str) -> None:
        """QUOTA_EXCEEDED if the turn's input would take the tenant past its bytes."""
        stored = await self.call(pg_counters.usage, tenant, "message_bytes")
        self._quotas.check_turn(tenant, stored, text)

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
        """Insert the run under its session's lock (one turn per session everywhere), in
        one statement: its own transaction."""
        args = (self._quotas, self.replica_id, queue_if_busy, window_at, agent_at)
        key = (tenant, run.agent_id, run.session_id)
        self._guesses.saw(*key)
        refused = False
        try:
            stored = await self.call(pg_runs.begin_run, tenant, run, user_message, *args)
        except BaseException as error:
            if isinstance(error, AgentChangedError):  # the turn starts again from a read
                self._agents.forget(key[:2])
            refused = isinstance(error, SessionOwnerError | QuotaExceededError)
            raise
        finally:
            if agent_at is not None:  # a guessed start's write (see turn_guesses)
                self._guesses.answered(tenant, refused=refused)
        return stored

    def may_begin_at_once(self, run: Run) -> bool:
        """Never: a write is a round trip, started as early as possible instead."""
        return False

    def begin_run_at_once(self, tenant: str, run: Run, user_message: Message | None) -> Run | None:
        """Never: every write is a round trip."""
        return None

    async def mark_running(
        self, tenant: str, run_id: str, start_time: float, user_message: Message
    ) -> bool:
        """Claim a queued run if it heads its session's queue and nothing runs there."""
        return await self.transact(pg_runs.claim_queued, tenant, run_id, start_time, user_message)

    async def finish_run(self, tenant: str, run: Run, messages: Sequence[Message]) -> list[Message]:
        """Record the outcome (fenced) and ring the session's doorbell; an outcome the
        database could not take is kept and written when it is back (pg_outcomes)."""
        return await self._ends.write(tenant, run, messages)

    async def _finish(self, tenant: str, run: Run, messages: Sequence[Message]) -> list[Message]:
        return await self.call(pg_runs.finish_run, tenant, run, messages)

    async def get_run(self, tenant: str, run_id: str) -> Run | None:
        """One run, or None."""
        row = await self.fetchrow(
            f"SELECT {pg_rows.RUN_COLUMNS} FROM runs WHERE tenant = $1 AND run_id = $2",
            tenant,
            run_id,
        )
        return None if row is None else pg_rows.run_from_record(row)

    async def find_run_by_request(self, tenant: str, agent_id: str, request_id: str) -> Run | None:
        """The run an idempotency key created."""
        row = await self.fetchrow(
            f"SELECT {pg_rows.RUN_COLUMNS} FROM runs WHERE tenant = $1 AND agent_id = $2 "
            "AND request_id = $3",
            tenant,
            agent_id,
            request_id,
        )
        return None if row is None else pg_rows.run_from_record(row)

    async def list_usage(self, tenant: str, query: UsageQuery) -> list[UsageRow]:
        """Usage rows, newest period first (see core/usage.py)."""
        sql, params = pg_usage.list_usage_query(tenant, query)
        return [UsageRow(*row) for row in await self.fetch(sql, *params)]

    async def list_runs(self, tenant: str, query: RunQuery) -> list[Run]:
        """Runs newest first."""
        sql, params = pg_runs.list_runs_query(tenant, query)
        return [pg_rows.run_from_record(r) for r in await self.fetch(sql, *params)]

    async def interrupt_unfinished_runs(self, end_time: float) -> int:
        """Only runs whose replica's lease expired: live peers' runs are left alone."""
        assert self.coordination is not None, "store is not open"
        try:
            return await self.coordination.reap()
        except UNREACHABLE:
            raise unavailable() from None


async def _delete_session(conn: Conn, tenant: str, agent_id: str, session_id: str) -> int:
    """The session's rows, and its runs' events in the journal (one transaction)."""
    deleted = await pg_runs.delete_session(conn, tenant, agent_id, session_id)
    where = "agent_id = $2 AND session_id = $3"
    await pg_journal.forget_events(conn, tenant, where, agent_id, session_id)
    return deleted
