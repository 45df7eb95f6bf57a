"""The storage port of access control: API keys and the audit trail.

Kept apart from the `Store` of agents and conversations: it is read on every call that
authenticates with a key, written by every audited call, and a deployment could keep it
elsewhere. The SQLite store implements both on one file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .access import AccessRole


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key (its secret only as a hash). Times are Unix seconds."""

    key_id: str
    tenant: str
    display_name: str
    roles: frozenset[AccessRole]
    creator: str
    create_time: float
    expire_time: float | None = None
    revoke_time: float | None = None
    last_use_time: float | None = None
    secret_hash: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audited call (see the AuditEvent message)."""

    tenant: str
    time: float
    principal: str
    method: str
    resource: str
    outcome: str
    reason: str = ""
    peer: str = ""
    authentication: str = ""
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which audit events to list, newest first, before sequence `before`."""

    limit: int
    before: int | None = None
    start_time: float | None = None
    end_time: float | None = None
    principal: str = ""
    method: str = ""


class AccessStore(Protocol):
    """Persistence of API keys and audit events."""

    async def insert_api_key(self, key: ApiKey) -> None:
        """Store a new key."""

    async def api_key(self, key_id: str) -> ApiKey | None:
        """A key by id (of any tenant: it is looked up before the tenant is known)."""

    async def list_api_keys(self, tenant: str, *, after: str | None, limit: int) -> list[ApiKey]:
        """A tenant's keys in id order after `after`."""

    async def revoke_api_key(self, tenant: str, key_id: str, now: float) -> ApiKey | None:
        """Mark a key revoked (keeping an earlier revoke time); None if it is not the
        tenant's."""

    async def touch_api_key(self, key_id: str, now: float) -> None:
        """Record that a key was used."""

    async def append_audit(self, events: Sequence[AuditEvent]) -> None:
        """Append audit events in one transaction."""

    async def list_audit(self, tenant: str, query: AuditQuery) -> list[AuditEvent]:
        """A tenant's audit events, newest first."""

    async def prune_audit(self, before: float, limit: int) -> int:
        """Delete at most `limit` events older than `before`; how many went."""
