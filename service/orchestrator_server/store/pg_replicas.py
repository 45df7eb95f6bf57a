"""Replicas on one PostgreSQL database: leases, the reaper, and the doorbell.

Lease: each replica has a row in `replicas` whose expiry it pushes forward every
lease/4 seconds (the database's clock decides). A run is covered by the lease of the
replica that stored it: one heartbeat per replica instead of one per run. When a replica
dies, any peer's reaper marks its unfinished runs INTERRUPTED once its lease expired; a
starting replica touches nothing of its live peers. A replica that finds its own lease
expired (it was stopped, or cut off from the database for longer than the lease) tells
the engine, which stops its runs; their late outcomes are fenced off by finish_run, and
the replica continues under a new id.

Doorbell: one dedicated connection LISTENs on the runs channel (a pooled connection
cannot listen). A run's end wakes the waiters of its session's queue and its
followers; a cancel request wakes the replica that executes the run. NOTIFY has no
replay, so waiters also look again by themselves (coordination_port.POLL_SECONDS), and
every waiter is woken when the listening connection is re-established.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field

import asyncpg

from ..core.coordination_port import run_key, session_key
from ..core.errors import UnavailableError
from .pg_plumbing import keep_session, unavailable
from .pg_runs import CHANNEL, DB_NOW, UNREACHABLE, doorbell

log = logging.getLogger(__name__)
DEFAULT_LEASE_SECONDS = 10.0
LISTENER_FAILURES: tuple[type[BaseException], ...] = (*UNREACHABLE, asyncpg.PostgresError)
UNREACHABLE_OR_UNAVAILABLE: tuple[type[BaseException], ...] = (*UNREACHABLE, UnavailableError)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("after-heartbeat work failed: %r", task.exception())


def new_replica_id() -> str:
    """A replica's name: host and pid for people, random bits for uniqueness."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(4)}"


@dataclass(eq=False)
class _Bell:
    rang: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait(self, at_most: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(at_most):
                await self.rang.wait()
        self.rang.clear()


class PostgresCoordination:
    """Lease, reaper and doorbell of one replica (the `Coordination` port)."""

    shared = True

    def __init__(self, url: str, pool: asyncpg.Pool, lease_seconds: float) -> None:
        self._url = url
        self._pool = pool  # the store's: cancel requests and the reaper use it
        # Heartbeat and reaper have a connection of their own: behind a thousand turns
        # queued for the store's pool, a heartbeat would wait past its own lease.
        self._lease_pool: asyncpg.Pool | None = None
        self.lease_seconds = lease_seconds
        self.replica_id = new_replica_id()
        self.available = True  # the last heartbeat reached the database
        self._bells: dict[str, set[_Bell]] = {}
        self._cancel_handlers: list[Callable[[str, str, str], None]] = []
        self._follower_handlers: list[Callable[[str, str], None]] = []
        self._session_end_handlers: list[Callable[[str, str, str], None]] = []
        self._agent_handlers: list[Callable[[str, str], None]] = []
        self._lost_handlers: list[Callable[[], None]] = []
        self._availability_handlers: list[Callable[[bool], None]] = []
        self._after_beat: list[Callable[[], Awaitable[None]]] = []
        self._after_beat_task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- the port -----------------------------------------------------------------------

    @contextlib.contextmanager
    def bell(self, key: str) -> Iterator[_Bell]:
        """Register for a doorbell for the block."""
        bell = _Bell()
        self._bells.setdefault(key, set()).add(bell)
        try:
            yield bell
        finally:
            waiting = self._bells.get(key)
            if waiting is not None:
                waiting.discard(bell)
                if not waiting:
                    del self._bells[key]

    async def request_cancel(self, tenant: str, run_id: str, superseded_by: str = "") -> None:
        """Ring the cancel doorbell; the replica executing the run cancels it."""
        try:
            await self._pool.execute(
                "SELECT pg_notify($1, $2)",
                CHANNEL,
                f"cancel\x1f{tenant}\x1f{run_id}\x1f{superseded_by}",
            )
        except UNREACHABLE:
            raise unavailable() from None

    def on_cancel(self, handler: Callable[[str, str, str], None]) -> None:
        """Register a handler of cancel requests from peers."""
        self._cancel_handlers.append(handler)

    async def announce_followers(self, runs: Sequence[tuple[str, str]]) -> None:
        """Ring the follower doorbell of each run (one statement)."""
        try:
            await self._pool.execute(
                "SELECT pg_notify($1, p) FROM unnest($2::text[]) p",
                CHANNEL,
                [f"follow\x1f{tenant}\x1f{run_id}" for tenant, run_id in runs],
            )
        except UNREACHABLE:
            raise unavailable() from None

    def on_follower(self, handler: Callable[[str, str], None]) -> None:
        """Register a handler of peers' followers."""
        self._follower_handlers.append(handler)

    def on_lease_lost(self, handler: Callable[[], None]) -> None:
        """Register a handler of this replica's lost lease."""
        self._lost_handlers.append(handler)

    def after_heartbeat(self, task: Callable[[], Awaitable[None]]) -> None:
        """Run `task` after every heartbeat that reached the database."""
        self._after_beat.append(task)

    def on_session_end(self, handler: Callable[[str, str, str], None]) -> None:
        """Register handler(tenant, agent_id, session_id) for every turn's end anywhere."""
        self._session_end_handlers.append(handler)

    def on_agent_change(self, handler: Callable[[str, str], None]) -> None:
        """Register handler(tenant, agent_id) for every agent updated or deleted anywhere."""
        self._agent_handlers.append(handler)

    @property
    def listening(self) -> bool:
        """Whether the doorbell listens now (it hears every turn's end)."""
        return self._listener is not None

    def on_availability(self, handler: Callable[[bool], None]) -> None:
        """Register handler(available) for changes of the database's reachability."""
        self._availability_handlers.append(handler)

    # -- life cycle ---------------------------------------------------------------------

    @property
    def lease_pool(self) -> asyncpg.Pool:
        assert self._lease_pool is not None, "not started"
        return self._lease_pool

    async def start(self) -> None:
        """Take a lease, start listening, and start the heartbeat and reaper."""
        self._lease_pool = await asyncpg.create_pool(
            self._url,
            min_size=0,
            max_size=1,
            timeout=5,
            command_timeout=self.lease_seconds,
            reset=keep_session,
        )
        await self._register(self.replica_id)
        await self._listen()
        self._tasks.append(asyncio.create_task(self._heartbeat(), name="replica heartbeat"))
        self._tasks.append(asyncio.create_task(self._reaper(), name="replica reaper"))

    async def stop(self) -> None:
        """Stop the tasks, stop listening and give the lease up (after the engine recorded
        the outcomes of its runs: nothing of this replica is left for the reaper)."""
        tasks = [*self._tasks, *([self._after_beat_task] if self._after_beat_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)
            self._listener = None
        with contextlib.suppress(Exception):
            await self.lease_pool.execute(
                "DELETE FROM replicas WHERE replica_id = $1", self.replica_id, timeout=2
            )
        with contextlib.suppress(*UNREACHABLE):
            await self.lease_pool.close()

    async def _register(self, replica_id: str) -> None:
        await self.lease_pool.execute(
            "INSERT INTO replicas(replica_id, host, pid, start_time, expire_time) "
            f"VALUES ($1, $2, $3, {DB_NOW}, {DB_NOW} + $4)",
            replica_id,
            socket.gethostname()[:100],
            os.getpid(),
            self.lease_seconds,
        )

    async def _listen(self) -> None:
        async with asyncio.timeout(5):
            conn = await asyncpg.connect(self._url, timeout=5)
            await conn.add_listener(CHANNEL, self._notified)
        conn.add_termination_listener(self._listener_lost)
        self._listener = conn
        self._ring_all()  # anything rung while nobody listened is looked at again

    def _listener_lost(self, _conn: object) -> None:
        self._listener = None
        self._ring_all()

    def _ring_all(self) -> None:
        for bells in self._bells.values():
            for bell in bells:
                bell.rang.set()

    def _ring(self, key: str) -> None:
        for bell in self._bells.get(key, ()):
            bell.rang.set()

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        parts = str(payload).split("\x1f")
        if parts[0] == "end" and len(parts) == 5:
            _, tenant, agent_id, session_id, run_id = parts
            for session_handler in self._session_end_handlers:
                session_handler(tenant, agent_id, session_id)
            self._ring(session_key(tenant, agent_id, session_id))
            self._ring(run_key(tenant, run_id))
        elif parts[0] == "agent" and len(parts) == 3:
            for agent_handler in self._agent_handlers:
                agent_handler(parts[1], parts[2])
        elif parts[0] == "events" and len(parts) == 3:
            self._ring(run_key(parts[1], parts[2]))
        elif parts[0] == "follow" and len(parts) == 3:
            for follower_handler in self._follower_handlers:
                follower_handler(parts[1], parts[2])
        elif parts[0] == "cancel" and len(parts) in (3, 4):
            superseded_by = parts[3] if len(parts) == 4 else ""
            for handler in self._cancel_handlers:
                handler(parts[1], parts[2], superseded_by)

    # -- heartbeat and reaper -----------------------------------------------------------

    async def _heartbeat(self) -> None:
        """Renew the lease every lease/4 s on a connection of its own, and keep the
        doorbell listening; nothing else waits in this loop (a slow reap or a busy store
        pool must not cost the lease)."""
        interval = self.lease_seconds / 4
        while True:
            try:
                await self._beat()
                self._start_after_beat()
                await self._check_listener()
            except UNREACHABLE_OR_UNAVAILABLE as error:
                log.warning("the database is unreachable: %s", error.__class__.__name__)
                self._set_available(False)
                await asyncio.sleep(min(interval, 1.0))  # look again soon, to recover fast
                continue
            except Exception:
                # Never let the heartbeat die: the lease would expire with it.
                log.exception("replica heartbeat failed")
            else:
                self._set_available(True)
            await asyncio.sleep(interval)

    async def _reaper(self) -> None:
        """Reap expired peers every lease/4 s, in a loop of its own."""
        while True:
            await asyncio.sleep(self.lease_seconds / 4)
            try:
                await self.reap()
            except UNREACHABLE_OR_UNAVAILABLE:
                pass  # the heartbeat reports the database's state
            except Exception:
                log.exception("reaping expired replicas failed")

    async def _check_listener(self) -> None:
        """Listen again if the listening connection is gone or does not answer (a
        half-open connection never reports its end)."""
        if self._listener is not None:
            try:
                await self._listener.execute("SELECT 1", timeout=self.lease_seconds / 4)
                return
            except LISTENER_FAILURES:
                self._listener.terminate()
                self._listener = None
        await self._listen()

    def _start_after_beat(self) -> None:
        """Start the after-heartbeat work in a task of its own (it uses the store's pool,
        which may be busy: the heartbeat must not wait for it), one at a time."""
        if self._after_beat_task is not None and not self._after_beat_task.done():
            return

        async def run_all() -> None:
            for task in self._after_beat:
                with contextlib.suppress(*UNREACHABLE_OR_UNAVAILABLE):
                    await task()

        self._after_beat_task = asyncio.create_task(run_all(), name="after heartbeat")
        self._after_beat_task.add_done_callback(_log_failure)

    async def _beat(self) -> None:
        renewed = await self.lease_pool.execute(
            f"UPDATE replicas SET expire_time = {DB_NOW} + $2 "
            f"WHERE replica_id = $1 AND expire_time > {DB_NOW}",
            self.replica_id,
            self.lease_seconds,
            timeout=self.lease_seconds / 4,
        )
        if renewed == "UPDATE 1":
            return
        lost, fresh = self.replica_id, new_replica_id()
        # Registered before it is used: a run stored under an unregistered id would look
        # dead to the reapers.
        await self._register(fresh)
        self.replica_id = fresh
        log.error(
            "replica %s lost its lease (stopped or cut off for longer than %.0f s): its runs "
            "are stopped and recorded INTERRUPTED; continuing as %s",
            lost,
            self.lease_seconds,
            self.replica_id,
        )
        for handler in self._lost_handlers:
            handler()

    def _set_available(self, available: bool) -> None:
        if available != self.available:
            self.available = available
            for handler in self._availability_handlers:
                handler(available)

    async def reap(self) -> int:
        """Remove the leases that expired and mark the unfinished runs they covered (and
        runs of replicas with no lease at all) INTERRUPTED; ring their doorbells. The
        DELETE re-checks each lease on its newest version, so a renewal that commits while
        this runs keeps its replica's runs alive; rows another reaper holds are skipped."""
        async with self._pool.acquire() as conn, conn.transaction():
            ended = await conn.fetch(
                f"WITH expired AS (DELETE FROM replicas WHERE expire_time < {DB_NOW} "
                "RETURNING replica_id), dead AS (SELECT r.tenant, r.run_id FROM runs r "
                "WHERE r.status IN ('queued', 'running') AND (r.replica_id IN (SELECT "
                "replica_id FROM expired) OR NOT EXISTS (SELECT 1 FROM replicas p WHERE "
                "p.replica_id = r.replica_id)) FOR UPDATE OF r SKIP LOCKED) "
                "UPDATE runs SET status = 'interrupted', error_reason = 'RUN_INTERRUPTED', "
                "error_message = convert_to('the replica running it stopped (its lease "
                f"expired)', 'UTF8'), end_time = {DB_NOW}, "
                f"start_time = coalesce(start_time, {DB_NOW}) FROM dead "
                "WHERE runs.tenant = dead.tenant AND runs.run_id = dead.run_id "
                "RETURNING runs.tenant, runs.agent_id, runs.session_id, runs.run_id"
            )
            if ended:
                await conn.execute(
                    "SELECT pg_notify($1, bell) FROM unnest($2::text[]) AS bell",
                    CHANNEL,
                    [doorbell(*row) for row in ended],
                )
        if ended:
            log.warning("marked %d runs of expired replicas INTERRUPTED", len(ended))
        return len(ended)
