"""Fixtures of the unit tests: the core wired to in-process fakes of its ports."""

from __future__ import annotations

import pytest
from fakes import Core, make_core


@pytest.fixture
async def core() -> Core:
    """A core over an in-memory store and a scripted model, with agent `alpha`."""
    core = make_core()
    await core.agent("alpha")
    return core
