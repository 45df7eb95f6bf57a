"""Shared fixtures: a real development model server and a real orchestrator server.

Both listen on ephemeral loopback ports; tests talk to the orchestrator through the
generated stubs over a real channel, and the orchestrator reaches the development model
through the real openai client over HTTP. Nothing is patched.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import network_guard
import pytest

from helpers import LiveServer, start_live_server
from orchestrator_devmodel import DevModelAdmin, DevModelConfig, DevModelServer

network_guard.install()
# Provider keys must never be needed (or leaked) by the tests.
os.environ.pop("OPENAI_API_KEY", None)


@pytest.fixture
async def devmodel() -> AsyncIterator[DevModelServer]:
    """A development model server in this process (its HTTP is real)."""
    server = DevModelServer(DevModelConfig())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def admin(devmodel: DevModelServer) -> AsyncIterator[DevModelAdmin]:
    """The development model server's scripting API."""
    client = DevModelAdmin(devmodel.base_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def live(devmodel: DevModelServer, tmp_path: Path) -> AsyncIterator[LiveServer]:
    """An orchestrator on 127.0.0.1:0 with a fresh SQLite file, using the dev model."""
    server = await start_live_server(tmp_path / "orchestrator.db", devmodel.base_url)
    try:
        yield server
    finally:
        await server.stop()
