"""Model tokens per tenant per minute: a sliding window of one-second buckets.

Checked before a turn starts and before each model call. A call is charged an estimate
of its prompt when it is sent (so that calls cancelled or failed before they report
their usage still count), corrected by the usage it reports; a tenant over its budget
is refused with QUOTA_EXCEEDED and told when enough of the window will have passed
(RetryInfo). Idle tenants' buckets are swept once a window. Counted per server process: with
several replicas each keeps its own window (a shared one belongs with the PostgreSQL
store).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from .errors import QuotaExceededError

DEFAULT_MODEL_TOKENS_PER_MINUTE_PER_TENANT = 2_000_000
WINDOW_SECONDS = 60


class TokenWindow:
    """Tokens each tenant's model calls used in the last minute, against a limit."""

    def __init__(
        self,
        limit_per_minute: int = DEFAULT_MODEL_TOKENS_PER_MINUTE_PER_TENANT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit_per_minute
        self._clock = clock
        # Per tenant: (second, tokens) buckets, oldest first, and their sum.
        self._buckets: dict[str, deque[list[int]]] = {}
        self._totals: dict[str, int] = {}
        self._next_sweep = clock() + WINDOW_SECONDS

    def check(self, tenant: str) -> None:
        """QUOTA_EXCEEDED (with the seconds to wait) if the tenant used its budget."""
        used = self._used(tenant)
        if used < self._limit:
            return
        error = QuotaExceededError(
            f"tenant '{tenant}' used {used:,} model tokens in the last minute, its limit is "
            f"{self._limit:,}",
            subject=f"tenant:{tenant}",
            quota="model_tokens_per_minute_per_tenant",
            limit=self._limit,
        )
        error.retry_after = self._seconds_until_below_limit(tenant)
        # Also in ErrorInfo: a turn refused mid-stream reports it in its RunFailed event.
        error.metadata["retry_after_seconds"] = str(math.ceil(error.retry_after))
        raise error

    def charge(self, tenant: str, estimate: int) -> int:
        """Charge a call's estimate when it is sent; the second it was charged in, for
        `settle`."""
        second = int(self._clock())
        self._add(tenant, estimate, second)
        return second

    def settle(self, tenant: str, charged_at: int, estimate: int, used: int) -> None:
        """A call reported `used` tokens: replace its estimate, in the second it was
        charged to, if that is still in the window (a correction never touches other
        calls' charges). A call reporting no usage keeps its estimate."""
        if used <= 0 or used == estimate:
            return
        if used > estimate:
            self.record(tenant, used - estimate)
            return
        for bucket in self._buckets.get(tenant, ()):
            if bucket[0] == charged_at:
                refund = min(estimate - used, bucket[1])
                bucket[1] -= refund
                self._totals[tenant] -= refund
                return

    def record(self, tenant: str, tokens: int) -> None:
        """Count tokens a model call of the tenant used."""
        self._add(tenant, tokens, int(self._clock()))

    def _add(self, tenant: str, tokens: int, second: int) -> None:
        self._sweep()
        if tokens <= 0:
            return
        buckets = self._buckets.setdefault(tenant, deque())
        if buckets and buckets[-1][0] == second:
            buckets[-1][1] += tokens
        else:
            buckets.append([second, tokens])
        self._totals[tenant] = self._totals.get(tenant, 0) + tokens
        self._expire(tenant)

    def _sweep(self) -> None:
        """Forget every tenant whose buckets all left the window (once a window)."""
        now = self._clock()
        if now < self._next_sweep:
            return
        self._next_sweep = now + WINDOW_SECONDS
        for tenant in list(self._buckets):
            self._expire(tenant)

    def _used(self, tenant: str) -> int:
        self._expire(tenant)
        return self._totals.get(tenant, 0)

    def _expire(self, tenant: str) -> None:
        buckets = self._buckets.get(tenant)
        if buckets is None:
            return
        oldest_kept = int(self._clock()) - WINDOW_SECONDS + 1
        while buckets and buckets[0][0] < oldest_kept:
            self._totals[tenant] -= buckets.popleft()[1]
        if not buckets:  # an idle tenant costs nothing
            del self._buckets[tenant], self._totals[tenant]

    def _seconds_until_below_limit(self, tenant: str) -> float:
        over = self._totals[tenant] - self._limit + 1
        now = self._clock()
        for second, tokens in self._buckets[tenant]:
            over -= tokens
            if over <= 0:
                return max(math.ceil(second + WINDOW_SECONDS - now), 1)
        return WINDOW_SECONDS
