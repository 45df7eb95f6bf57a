"""Model tokens per tenant per minute: refused past the limit, with the wait that helps,
and free again once the window has moved on."""

from __future__ import annotations

import pytest

from orchestrator_server.core.errors import QuotaExceededError
from orchestrator_server.core.token_window import WINDOW_SECONDS, TokenWindow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_tenant_past_its_tokens_waits_until_the_window_moves_on() -> None:
    clock = Clock()
    window = TokenWindow(limit_per_minute=100, clock=clock)
    window.record("t", 60)
    clock.now += 10
    window.record("t", 50)
    window.check("other")  # tenants are counted apart
    with pytest.raises(QuotaExceededError) as refused:
        window.check("t")
    error = refused.value
    assert error.quota == "model_tokens_per_minute_per_tenant" and error.limit == 100
    # The first 60 tokens leave the window 50 s from now; then 50 < 100 are left.
    assert error.retry_after == WINDOW_SECONDS - 10
    assert error.metadata["retry_after_seconds"] == str(WINDOW_SECONDS - 10)
    clock.now += WINDOW_SECONDS - 10
    window.check("t")


def test_calls_without_usage_cost_nothing_and_idle_tenants_are_forgotten() -> None:
    clock = Clock()
    window = TokenWindow(limit_per_minute=1, clock=clock)
    window.record("t", 0)
    window.check("t")
    window.record("t", 1)
    with pytest.raises(QuotaExceededError):
        window.check("t")
    clock.now += WINDOW_SECONDS
    window.check("t")
    assert window._buckets == {} and window._totals == {}


def test_an_estimate_charged_up_front_is_corrected_by_the_reported_usage() -> None:
    clock = Clock()
    window = TokenWindow(limit_per_minute=100, clock=clock)
    charged_at = window.charge("t", 150)  # over the limit until the call reports
    with pytest.raises(QuotaExceededError):
        window.check("t")
    window.settle("t", charged_at, 150, 40)
    window.check("t")
    window.settle("t", window.charge("t", 10), 10, 70)  # more than estimated: added
    with pytest.raises(QuotaExceededError):
        window.check("t")


def test_a_late_correction_never_touches_other_calls_and_no_usage_keeps_the_estimate() -> None:
    clock = Clock()
    window = TokenWindow(limit_per_minute=1000, clock=clock)
    first = window.charge("t", 900)
    clock.now += 30
    window.record("t", 900)  # another call
    clock.now += 35  # the first estimate has left the window
    window.settle("t", first, 900, 10)  # its refund finds nothing to take back
    window.record("t", 200)
    with pytest.raises(QuotaExceededError):
        window.check("t")  # the other call's 900 still count: 1,100
    clock.now += 60
    window.check("t")
    silent = window.charge("t", 1000)
    window.settle("t", silent, 1000, 0)  # a provider that reports no usage
    with pytest.raises(QuotaExceededError):
        window.check("t")


def test_tenants_that_went_idle_are_swept_once_a_window() -> None:
    clock = Clock()
    window = TokenWindow(limit_per_minute=100, clock=clock)
    for tenant in range(1000):
        window.record(f"t{tenant}", 1)
    clock.now += WINDOW_SECONDS + 1
    window.record("active", 1)
    assert list(window._buckets) == ["active"]
