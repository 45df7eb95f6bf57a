"""Choosing and opening the store: a SQLite file (the embedded default) or a PostgreSQL
database (`--db postgresql://...`, for several replicas).

Anything else that looks like a URL is refused: a mistyped scheme must not silently
become a directory holding a SQLite file of that name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .config import Settings
from .core.access_port import AccessStore
from .core.coordination_port import Coordination, LocalCoordination
from .core.journal_port import JournalStore
from .core.quotas import StorageQuotas
from .core.store_port import Store
from .store.sqlite import SQLiteStore
from .store.sqlite_access import SQLiteAccessStore
from .store.sqlite_journal import SQLiteJournalStore

log = logging.getLogger("orchestrator")
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(db: str) -> bool:
    """Whether `db` names a PostgreSQL database."""
    return db.startswith(_POSTGRES_SCHEMES)


def check_db(db: str) -> None:
    """ValueError for a `db` that is neither a file path nor a PostgreSQL URL."""
    if "://" in db and not is_postgres(db):
        scheme = db.split("://", 1)[0]
        raise ValueError(
            f"db: '{scheme}://' is not a supported database; give a SQLite file path or a "
            "postgresql:// URL"
        )


@dataclass
class Stores:
    """The opened store with its access store and replica coordination."""

    store: Store
    access: AccessStore
    journal: JournalStore
    coordination: Coordination
    close: Callable[[], Awaitable[None]]
    # Called with False/True when the database becomes unreachable/reachable again.
    watch_availability: Callable[[Callable[[bool], None]], None]


def _quotas(settings: Settings) -> StorageQuotas:
    return StorageQuotas(
        settings.max_agents_per_tenant,
        settings.max_teams_per_tenant,
        settings.max_stored_bytes_per_tenant,
    )


async def open_stores(settings: Settings) -> Stores:
    """Open (and migrate) the configured store; with SQLite, mark the runs a previous
    process left unfinished (with PostgreSQL the lease reaper does that, sparing the runs
    of live replicas)."""
    check_db(settings.db)
    if is_postgres(settings.db):
        return await _open_postgres(settings)
    store = SQLiteStore(
        settings.db, synchronous=settings.sqlite_synchronous, quotas=_quotas(settings)
    )
    await store.open()
    interrupted = await store.interrupt_unfinished_runs(time.time())
    if interrupted:
        log.warning(
            "marked %d runs left unfinished by a previous process as interrupted", interrupted
        )
    return Stores(
        store,
        SQLiteAccessStore(store),
        SQLiteJournalStore(store),
        LocalCoordination(),
        store.close,
        lambda handler: None,
    )


async def _open_postgres(settings: Settings) -> Stores:
    # asyncpg is imported only by servers that use PostgreSQL.
    from .store.pg_access import PostgresAccessStore
    from .store.pg_journal import PostgresJournalStore
    from .store.postgres import PostgresStore

    store = PostgresStore(
        settings.db,
        pool_size=settings.pg_pool_size,
        lease_seconds=settings.lease_seconds,
        quotas=_quotas(settings),
    )
    await store.open()
    coordination = store.coordination
    assert coordination is not None
    log.info(
        "PostgreSQL store: replica %s, lease %.0f s",
        coordination.replica_id,
        settings.lease_seconds,
    )
    return Stores(
        store,
        PostgresAccessStore(store),
        PostgresJournalStore(store),
        coordination,
        store.close,
        coordination.on_availability,
    )
