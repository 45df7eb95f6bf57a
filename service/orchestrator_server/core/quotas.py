"""Per-tenant storage quotas: what a store refuses to grow past.

A store enforces them inside the write that would exceed them (so that concurrent
creates cannot overshoot), and answers QUOTA_EXCEEDED with a QuotaFailure naming the
tenant. Stored bytes count the UTF-8 text of a tenant's messages (contents and tool
calls as the store keeps them) and run records (input and output), the bulk of what
turns store. Only the start of a turn is refused for them: a turn that was accepted
always records its output, even if that takes the tenant over (by at most the output of
its turns in flight).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import QuotaExceededError
from .pagination import text_bytes

DEFAULT_MAX_AGENTS_PER_TENANT = 10_000
DEFAULT_MAX_TEAMS_PER_TENANT = 1_000
DEFAULT_MAX_STORED_BYTES_PER_TENANT = 1024**3


@dataclass(frozen=True, slots=True)
class StorageQuotas:
    """How much one tenant may keep in the store."""

    max_agents_per_tenant: int = DEFAULT_MAX_AGENTS_PER_TENANT
    max_teams_per_tenant: int = DEFAULT_MAX_TEAMS_PER_TENANT
    max_stored_bytes_per_tenant: int = DEFAULT_MAX_STORED_BYTES_PER_TENANT

    def check_count(self, tenant: str, kind: str, existing: int) -> None:
        """QUOTA_EXCEEDED unless `tenant` may create one more `kind` (agents, teams)."""
        limit: int = getattr(self, f"max_{kind}_per_tenant")
        if existing >= limit:
            raise QuotaExceededError(
                f"tenant '{tenant}' has {limit} {kind}, its limit; delete some first",
                subject=f"tenant:{tenant}",
                quota=f"max_{kind}_per_tenant",
                limit=limit,
            )

    def check_turn(self, tenant: str, stored: int, text: str) -> None:
        """QUOTA_EXCEEDED unless a turn whose input is `text` fits the tenant's stored
        bytes: the input is stored twice, in the run record and the user message."""
        limit = self.max_stored_bytes_per_tenant
        if stored + 2 * text_bytes(text) > limit:
            raise QuotaExceededError(
                f"tenant '{tenant}' stores {stored:,} bytes of messages and this turn "
                f"would take it past its limit of {limit:,}; delete sessions to make room",
                subject=f"tenant:{tenant}",
                quota="max_stored_bytes_per_tenant",
                limit=limit,
            )

    def turn_refusal(self, tenant: str, stored: int, text: str) -> QuotaExceededError | None:
        """check_turn's refusal, returned (None: the turn fits)."""
        try:
            self.check_turn(tenant, stored, text)
        except QuotaExceededError as refusal:
            return refusal
        return None


DEFAULT_QUOTAS = StorageQuotas()
