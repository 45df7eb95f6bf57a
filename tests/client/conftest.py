"""Fixtures of the client tests: clients connected to the `live` server of tests/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from client_helpers import SLOW_RULE

from helpers import LiveServer
from orchestrator import AsyncOrchestrator
from orchestrator_devmodel import DevModelAdmin


@pytest.fixture
async def client(live: LiveServer) -> AsyncIterator[AsyncOrchestrator]:
    """An asyncio client of the live server."""
    async with AsyncOrchestrator(live.address, timeout=30) as orchestrator:
        yield orchestrator


@pytest.fixture
async def slow_admin(admin: DevModelAdmin) -> DevModelAdmin:
    """The dev model with SLOW_RULE loaded (messages containing "slowly" stream slowly)."""
    await admin.set_rules([SLOW_RULE])
    return admin
