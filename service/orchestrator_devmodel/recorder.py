"""What the server saw: request bodies, connection lifecycle events and counters.

Requests and events live in bounded ring buffers so a long benchmark cannot grow the
server without limit; `enabled=False` (`--no-record`) skips them entirely. Counters are
always kept: they cost an increment and let benchmarks check concurrency.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from typing import Any

OUTCOMES = ("completed", "client_disconnected", "cut", "error")


class Recorder:
    """Ring buffers of requests and events, plus a waiter for tests that expect an event."""

    def __init__(self, *, enabled: bool = True, capacity: int = 10_000) -> None:
        self.enabled = enabled
        self._requests: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._events: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._changed = asyncio.Event()
        self.requests_total = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.outcomes: Counter[str] = Counter()

    def request_started(self) -> None:
        """Count a chat request entering the server."""
        self.requests_total += 1
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            self.max_in_flight = self.in_flight

    def record_request(self, entry: dict[str, Any]) -> None:
        """Keep a received request (`request_id`, `received_at`, `body`, ...)."""
        if self.enabled:
            self._requests.append(entry)

    def request_finished(self, event: dict[str, Any]) -> None:
        """Count a finished request and keep its lifecycle event; wake event waiters."""
        self.in_flight -= 1
        self.outcomes[event["outcome"]] += 1
        if self.enabled:
            self._events.append(event)
            # Waking by swapping the Event: each waiter re-checks its condition once.
            self._changed.set()
            self._changed = asyncio.Event()

    def requests(self) -> list[dict[str, Any]]:
        """Recorded requests, oldest first."""
        return list(self._requests)

    def clear_requests(self) -> None:
        """Forget recorded requests."""
        self._requests.clear()

    def events(self, outcome: str | None = None) -> list[dict[str, Any]]:
        """Recorded events, oldest first, optionally only those with `outcome`."""
        if outcome is None:
            return list(self._events)
        return [event for event in self._events if event["outcome"] == outcome]

    def clear_events(self) -> None:
        """Forget recorded events."""
        self._events.clear()

    async def wait_for_events(
        self, *, outcome: str | None, min_count: int, wait: float
    ) -> list[dict[str, Any]]:
        """Events (filtered by `outcome`) once at least `min_count` exist, or after `wait` s.

        Lets tests wait for the server to notice something without sleeping/polling.
        """
        deadline = time.monotonic() + wait
        while True:
            found = self.events(outcome)
            remaining = deadline - time.monotonic()
            if len(found) >= min_count or remaining <= 0 or not self.enabled:
                return found
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return self.events(outcome)

    def stats(self) -> dict[str, Any]:
        """Counters for `GET /_dev/stats`."""
        return {
            "requests_total": self.requests_total,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "outcomes": {name: self.outcomes.get(name, 0) for name in OUTCOMES},
            "recording": self.enabled,
        }

    def reset_stats(self) -> None:
        """Zero the counters (in-flight requests keep being counted)."""
        self.requests_total = 0
        self.max_in_flight = self.in_flight
        self.outcomes.clear()
