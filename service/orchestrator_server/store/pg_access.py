"""API keys and the audit trail in the PostgreSQL store (the `AccessStore` port).

Audit fields may carry text from a rejected request; PostgreSQL's TEXT cannot hold NUL,
so NULs are replaced by U+FFFD in what the trail keeps (it is a record for people, and
the rest of the event is kept rather than the batch refused).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core.access import AccessRole
from ..core.access_port import ApiKey, AuditEvent, AuditQuery
from .postgres import PostgresStore
from .sqlite_rows import Row

_KEY_COLUMNS = (
    "key_id, tenant, display_name, roles, creator, create_time, expire_time, revoke_time, "
    "last_use_time, secret_hash"
)
_AUDIT_COLUMNS = (
    "tenant, time, principal, method, resource, outcome, reason, peer, authentication, seq"
)


def _clean(text: str) -> str:
    return text.replace("\x00", "\ufffd")


def _key_from_row(row: Row) -> ApiKey:
    roles = frozenset(AccessRole(r) for r in str(row[3]).split(",") if r)
    values = list(row)
    return ApiKey(values[0], values[1], values[2], roles, *values[4:])


class PostgresAccessStore:
    """The `AccessStore` on a PostgresStore's database."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def insert_api_key(self, key: ApiKey) -> None:
        """Store a new key."""
        await self._store.transact(
            lambda conn: conn.execute(
                f"INSERT INTO api_keys({_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, "
                "$8, $9, $10)",
                key.key_id,
                key.tenant,
                _clean(key.display_name),
                ",".join(sorted(r.value for r in key.roles)),
                _clean(key.creator),
                key.create_time,
                key.expire_time,
                key.revoke_time,
                key.last_use_time,
                key.secret_hash,
            )
        )

    async def api_key(self, key_id: str) -> ApiKey | None:
        """A key by id."""
        row = await self._store.fetchrow(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = $1", _clean(key_id)
        )
        return None if row is None else _key_from_row(row)

    async def list_api_keys(self, tenant: str, *, after: str | None, limit: int) -> list[ApiKey]:
        """A tenant's keys in id order."""
        rows = await self._store.fetch(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE tenant = $1 AND key_id > $2 "
            "ORDER BY key_id LIMIT $3",
            tenant,
            after or "",
            limit,
        )
        return [_key_from_row(r) for r in rows]

    async def revoke_api_key(self, tenant: str, key_id: str, now: float) -> ApiKey | None:
        """Revoke a key of the tenant (keeping an earlier revoke time)."""
        row = await self._store.transact(
            lambda conn: conn.fetchrow(
                "UPDATE api_keys SET revoke_time = coalesce(revoke_time, $3) "
                f"WHERE key_id = $1 AND tenant = $2 RETURNING {_KEY_COLUMNS}",
                _clean(key_id),
                tenant,
                now,
            )
        )
        return None if row is None else _key_from_row(row)

    async def touch_api_key(self, key_id: str, now: float) -> None:
        """Record a key's last use."""
        await self._store.transact(
            lambda conn: conn.execute(
                "UPDATE api_keys SET last_use_time = $2 WHERE key_id = $1", key_id, now
            )
        )

    async def append_audit(self, events: Sequence[AuditEvent]) -> None:
        """Append events in one transaction."""
        rows = [
            (
                e.tenant,
                e.time,
                *(
                    _clean(v)
                    for v in (
                        e.principal,
                        e.method,
                        e.resource,
                        e.outcome,
                        e.reason,
                        e.peer,
                        e.authentication,
                    )
                ),
            )
            for e in events
        ]
        await self._store.transact(
            lambda conn: conn.executemany(
                "INSERT INTO audit_events(tenant, time, principal, method, resource, outcome, "
                "reason, peer, authentication) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                rows,
            )
        )

    async def list_audit(self, tenant: str, query: AuditQuery) -> list[AuditEvent]:
        """A tenant's events newest first."""
        where = ["tenant = $1"]
        params: list[Any] = [tenant]
        for clause, value in (
            ("seq < {}", query.before),
            ("time >= {}", query.start_time),
            ("time < {}", query.end_time),
            ("principal = {}", query.principal or None),
            ("method = {}", query.method or None),
        ):
            if value is not None:
                params.append(value)
                where.append(clause.format(f"${len(params)}"))
        params.append(query.limit)
        rows = await self._store.fetch(
            f"SELECT {_AUDIT_COLUMNS} FROM audit_events WHERE {' AND '.join(where)} "
            f"ORDER BY seq DESC LIMIT ${len(params)}",
            *params,
        )
        return [AuditEvent(*row) for row in rows]

    async def prune_audit(self, before: float, limit: int) -> int:
        """Delete at most `limit` events older than `before`."""
        status = await self._store.transact(
            lambda conn: conn.execute(
                "DELETE FROM audit_events WHERE seq IN (SELECT seq FROM audit_events "
                "WHERE time < $1 ORDER BY seq LIMIT $2)",
                before,
                limit,
            )
        )
        return int(status.rsplit(" ", 1)[-1])
