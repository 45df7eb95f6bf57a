"""API keys, the audit trail and the page-token secret in the SQLite store (the
`AccessStore` port): the same file, writer thread and read connection as the rest."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..core.access import AccessRole
from ..core.access_port import ApiKey, AuditEvent, AuditQuery

if TYPE_CHECKING:
    from .sqlite import SQLiteStore

_KEY_COLUMNS = (
    "key_id, tenant, display_name, roles, creator, create_time, expire_time, revoke_time, "
    "last_use_time, secret_hash"
)
_AUDIT_COLUMNS = (
    "tenant, time, principal, method, resource, outcome, reason, peer, authentication, seq"
)


def create_secret(conn: sqlite3.Connection) -> bytes:
    """The installation's page-token secret, created by the first caller."""
    conn.execute(
        "INSERT OR IGNORE INTO meta(key, value) VALUES ('page_token_secret', ?)",
        (secrets.token_hex(32),),
    )
    value = conn.execute("SELECT value FROM meta WHERE key = 'page_token_secret'").fetchone()
    return bytes.fromhex(value[0])


def _key_from_row(row: Sequence[Any]) -> ApiKey:
    roles = frozenset(AccessRole(r) for r in str(row[3]).split(",") if r)
    return ApiKey(row[0], row[1], row[2], roles, *row[4:])


def _revoke(conn: sqlite3.Connection, tenant: str, key_id: str, now: float) -> ApiKey | None:
    conn.execute(
        "UPDATE api_keys SET revoke_time = coalesce(revoke_time, ?) "
        "WHERE key_id = ? AND tenant = ?",
        (now, key_id, tenant),
    )
    row = conn.execute(
        f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ? AND tenant = ?", (key_id, tenant)
    ).fetchone()
    return None if row is None else _key_from_row(row)


def _insert_key(conn: sqlite3.Connection, key: ApiKey) -> None:
    conn.execute(
        f"INSERT INTO api_keys({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            key.key_id,
            key.tenant,
            key.display_name,
            ",".join(sorted(r.value for r in key.roles)),
            key.creator,
            key.create_time,
            key.expire_time,
            key.revoke_time,
            key.last_use_time,
            key.secret_hash,
        ),
    )


def _append_audit(conn: sqlite3.Connection, events: Sequence[AuditEvent]) -> None:
    conn.executemany(
        "INSERT INTO audit_events(tenant, time, principal, method, resource, outcome, reason, "
        "peer, authentication) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                e.tenant,
                e.time,
                e.principal,
                e.method,
                e.resource,
                e.outcome,
                e.reason,
                e.peer,
                e.authentication,
            )
            for e in events
        ],
    )


def _prune(conn: sqlite3.Connection, before: float, limit: int) -> int:
    return int(
        conn.execute(
            "DELETE FROM audit_events WHERE seq IN (SELECT seq FROM audit_events "
            "WHERE time < ? ORDER BY seq LIMIT ?)",
            (before, limit),
        ).rowcount
    )


def _touch(conn: sqlite3.Connection, key_id: str, now: float) -> None:
    conn.execute("UPDATE api_keys SET last_use_time = ? WHERE key_id = ?", (now, key_id))


class SQLiteAccessStore:
    """The `AccessStore` on a SQLiteStore's file."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    async def insert_api_key(self, key: ApiKey) -> None:
        """Store a new key."""
        await self._store.write(_insert_key, key)

    async def api_key(self, key_id: str) -> ApiKey | None:
        """A key by id (a point read on the loop)."""
        rows = self._store.read(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,))
        return _key_from_row(rows[0]) if rows else None

    async def list_api_keys(self, tenant: str, *, after: str | None, limit: int) -> list[ApiKey]:
        """A tenant's keys in id order."""
        rows = self._store.read(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE tenant = ? AND key_id > ? "
            "ORDER BY key_id LIMIT ?",
            (tenant, after or "", limit),
        )
        return [_key_from_row(r) for r in rows]

    async def revoke_api_key(self, tenant: str, key_id: str, now: float) -> ApiKey | None:
        """Revoke a key of the tenant (keeping an earlier revoke time)."""
        return await self._store.write(_revoke, tenant, key_id, now)

    async def touch_api_key(self, key_id: str, now: float) -> None:
        """Record a key's last use."""
        await self._store.write(_touch, key_id, now)

    async def append_audit(self, events: Sequence[AuditEvent]) -> None:
        """Append events in one transaction."""
        await self._store.write(_append_audit, list(events))

    async def list_audit(self, tenant: str, query: AuditQuery) -> list[AuditEvent]:
        """A tenant's events newest first: the filters are evaluated by SQLite while it
        walks the tenant's index backwards, on the scanner thread (a filter that matches
        little may walk far)."""
        where = ["tenant = ?"]
        params: list[Any] = [tenant]
        for clause, value in (
            ("seq < ?", query.before),
            ("time >= ?", query.start_time),
            ("time < ?", query.end_time),
            ("principal = ?", query.principal or None),
            ("method = ?", query.method or None),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = (
            f"SELECT {_AUDIT_COLUMNS} FROM audit_events WHERE {' AND '.join(where)} "
            "ORDER BY seq DESC LIMIT ?"
        )
        rows = await self._store.scan(sql, [*params, query.limit])
        return [AuditEvent(*row) for row in rows]

    async def prune_audit(self, before: float, limit: int) -> int:
        """Delete at most `limit` events older than `before`."""
        return await self._store.write(_prune, before, limit)
