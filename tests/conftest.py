"""Shared fixtures: a real development model server and a real orchestrator server.

Both listen on ephemeral loopback ports; tests talk to the orchestrator through the
generated stubs over a real channel, and the orchestrator reaches the development model
through the real openai client over HTTP. Nothing is patched.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import network_guard
import pytest

from helpers import LiveServer, start_live_server
from orchestrator_devmodel import DevModelAdmin, DevModelConfig, DevModelServer
from scripts.pg_cluster import PostgresCluster, create_database

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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for the whole run: ORCHESTRATOR_TEST_POSTGRES_URL if set (its
    user must be allowed to create databases), else a throwaway cluster started from
    the installed binaries (see scripts/pg_cluster.py)."""
    configured = os.environ.get("ORCHESTRATOR_TEST_POSTGRES_URL")
    if configured:
        yield configured
        return
    cluster = PostgresCluster().start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
async def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database for one test."""
    return await create_database(postgres_server)
