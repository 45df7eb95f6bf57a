"""Abuse cases run against a real server with the event loop watched: a case fails if
any callback of the server's loop (which the test shares, health checks included) had to
wait over 100 ms, or if the server logged an ERROR (a traceback) while it ran."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from helpers import LiveServer

MAX_LOOP_LAG_SECONDS = 0.1


@pytest.fixture
async def watched(live: LiveServer, caplog: pytest.LogCaptureFixture) -> AsyncIterator[LiveServer]:
    """The live server, failing the test if its event loop stalled or it logged an ERROR."""
    # Modules some cases import on first use (tens of ms) are imported before the watch.
    import jsonschema  # noqa: F401
    import re2  # noqa: F401

    live.app.loop_monitor.reset()
    yield live
    lag = live.app.loop_monitor.reset()
    assert lag < MAX_LOOP_LAG_SECONDS, f"the event loop stalled for {lag * 1000:.0f} ms"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], f"the server logged errors: {errors[:3]}"
