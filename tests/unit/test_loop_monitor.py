"""The loop-lag monitor sees work that blocks the event loop."""

from __future__ import annotations

import asyncio
import time

from orchestrator_server.loop_monitor import LoopLagMonitor


async def test_blocking_work_shows_as_lag() -> None:
    ticked, stalled = asyncio.Event(), asyncio.Event()

    def record(lag: float) -> None:
        ticked.set()
        if lag >= 0.1:
            stalled.set()

    monitor = LoopLagMonitor(record, interval=0.01)
    monitor.start()
    try:
        await ticked.wait()
        assert monitor.reset() < 0.1
        time.sleep(0.15)  # noqa: ASYNC251 - the subject: work that blocks the loop 150 ms
        await stalled.wait()
        assert monitor.reset() >= 0.1
    finally:
        await monitor.stop()
