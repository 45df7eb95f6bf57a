"""Abuse cases run against a real server with the event loop watched: a case fails if
any callback of the server's loop (which the test shares, health checks included) had to
wait over 100 ms, or if the server logged an ERROR (a traceback) while it ran.

The development model runs in a subprocess here: in this process its parsing of
megabyte requests would count against the server's loop."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator

import pytest

from helpers import LiveServer
from orchestrator_devmodel import DevModelAdmin, DevModelConfig, DevModelProcess
from stall_sampler import StallSampler

MAX_LOOP_LAG_SECONDS = 0.1


@pytest.fixture
async def devmodel() -> AsyncIterator[DevModelProcess]:
    """The development model server in its own process."""
    async with DevModelProcess(DevModelConfig()) as process:
        yield process


@pytest.fixture
async def watched(
    live: LiveServer, admin: DevModelAdmin, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[LiveServer]:
    """The live server, failing the test if its event loop stalled or it logged an ERROR.

    `admin` is set up before the window opens: its HTTP client loads a TLS context
    (~80 ms), which is the test's doing, not the server's."""
    # Modules the server imports on first use (openai takes ~0.3 s; `serve()` warms it up
    # after start-up, `create_app` does not) are imported before the watch.
    import jsonschema  # noqa: F401
    import re2  # noqa: F401

    import orchestrator_server.models.openai_chat  # noqa: F401

    # A full collection of this process's heap (the whole test session's) can take over
    # 100 ms; one that is due anyway is not the case's doing.
    gc.collect()
    # The monitor measures a stall when it wakes up after it: let it see the ones above
    # (its sleep in progress may have begun before them) before the window opens.
    monitor = live.app.loop_monitor
    await monitor.tick()
    await monitor.tick()
    monitor.reset()
    sampler = StallSampler(threshold_seconds=MAX_LOOP_LAG_SECONDS / 2)
    sampler.start()
    yield live
    lag = live.app.loop_monitor.reset()
    sampler.stop()
    assert lag < MAX_LOOP_LAG_SECONDS, (
        f"the event loop stalled for {lag * 1000:.0f} ms; {sampler.worst() or 'no busy period'}"
    )
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], f"the server logged errors: {errors[:3]}"
