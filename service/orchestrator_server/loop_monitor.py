"""How late the event loop runs: the symptom of work that blocks it.

Everything of every tenant shares one event loop, so one call that computes without
yielding (a huge number, a regular expression gone exponential, a large synchronous read)
delays all others, health checks included. The monitor sleeps a fixed interval again and
again and records how much later than asked it woke up: that lateness is the longest any
callback had to wait. It is exported as `orchestrator_event_loop_lag_seconds`, and tests
read `max_lag` to fail when the loop stalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

DEFAULT_INTERVAL_SECONDS = 0.02


class LoopLagMonitor:
    """Measures the event loop's lateness while started."""

    def __init__(
        self,
        record: Callable[[float], None] = lambda lag: None,
        interval: float = DEFAULT_INTERVAL_SECONDS,
    ) -> None:
        self._record = record
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._ticked = asyncio.Event()
        self.max_lag = 0.0

    def start(self) -> None:
        """Begin measuring on the running loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name="event loop lag monitor")

    async def tick(self) -> None:
        """Wait for the next measurement (one that began before this call may count a
        stall that happened before it: wait for two to start a clean window)."""
        self._ticked.clear()
        await self._ticked.wait()

    def reset(self) -> float:
        """The largest lag since the last reset (or start); starts a new window."""
        lag, self.max_lag = self.max_lag, 0.0
        return lag

    async def stop(self) -> None:
        """Stop measuring."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        while True:
            asked = time.monotonic()
            await asyncio.sleep(self._interval)
            lag = max(time.monotonic() - asked - self._interval, 0.0)
            self.max_lag = max(self.max_lag, lag)
            self._record(lag)
            self._ticked.set()
