"""The plumbing of the PostgreSQL store: its pool, transactions and reads, each failing
fast with UNAVAILABLE / STORE_UNAVAILABLE when the database cannot be reached."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import asyncpg

from ..core.errors import Reason, UnavailableError
from .pg_runs import UNREACHABLE, Conn

R = TypeVar("R")
P = ParamSpec("P")
# Attempts of a transaction PostgreSQL aborts for a deadlock or serialisation conflict.
_RETRIES = 3


def unavailable() -> UnavailableError:
    """The error of a call the database could not serve now."""
    return UnavailableError(
        "the database cannot be reached; retry with backoff", reason=Reason.STORE_UNAVAILABLE
    )


async def keep_session(_conn: asyncpg.Connection) -> None:
    """The pools' reset of a released connection: nothing beyond what asyncpg always does
    (roll back an open transaction, drop listeners). Its default also sends
    `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`, a round trip per
    release that doubled a one-row read (0.41 -> 0.19 ms here); pooled connections never
    take session-level state: advisory locks are transaction-level, cursors live in
    transactions, nothing is SET, and the doorbell listens on a connection of its own."""


class PostgresPlumbing:
    """A connection pool with error mapping (the base of PostgresStore)."""

    _pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        """The connection pool (open() first)."""
        assert self._pool is not None, "store is not open"
        return self._pool

    async def transact(
        self,
        fn: Callable[Concatenate[Conn, P], Awaitable[R]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """fn(conn, ...) in a transaction (retried: see _retried)."""

        async def attempt() -> R:
            async with self.pool.acquire() as conn, conn.transaction():
                return await fn(conn, *args, **kwargs)

        return await _retried(attempt)

    async def call(
        self,
        fn: Callable[Concatenate[Conn, P], Awaitable[R]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """fn(conn, ...) outside a transaction, for one statement, which is atomic by
        itself: a round trip less than BEGIN ... COMMIT (retried: see _retried)."""

        async def attempt() -> R:
            async with self.pool.acquire() as conn:
                return await fn(conn, *args, **kwargs)

        return await _retried(attempt)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """A read outside a transaction."""
        try:
            return await self.pool.fetch(sql, *args)
        except UNREACHABLE:
            raise unavailable() from None

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        """A one-row read outside a transaction."""
        try:
            return await self.pool.fetchrow(sql, *args)
        except UNREACHABLE:
            raise unavailable() from None

    async def ping(self) -> bool:
        """Whether the database answers now."""
        try:
            await self.pool.fetchval("SELECT 1", timeout=2)
        except (*UNREACHABLE, asyncpg.PostgresError):  # type: ignore[misc]
            return False
        return True


async def _retried(attempt: Callable[[], Awaitable[R]]) -> R:
    """attempt(), again when PostgreSQL aborted it for a deadlock or a serialisation
    conflict; STORE_UNAVAILABLE when the database cannot be reached (or keeps aborting)."""
    for number in range(_RETRIES):
        try:
            return await attempt()
        except asyncpg.TransactionRollbackError:
            if number == _RETRIES - 1:
                raise unavailable() from None
        except UNREACHABLE:
            raise unavailable() from None
    raise AssertionError("unreachable")
