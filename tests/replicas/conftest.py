"""The replica tests' fixture: three replicas on a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from replica_helpers import Replicas, assert_clean_logs, replica_processes

from orchestrator_devmodel import DevModelServer


@pytest.fixture
async def replicas(
    postgres_url: str, devmodel: DevModelServer, tmp_path: Path
) -> AsyncIterator[Replicas]:
    """Three replicas on a fresh database, all SERVING."""
    processes = replica_processes(postgres_url, devmodel.base_url, 3, tmp_path)
    for process in processes:
        process.start()
    try:
        for process in processes:
            await process.wait_serving()
        yield Replicas(processes, postgres_url)
    finally:
        for process in processes:
            if process.proc is not None and process.proc.poll() is None:
                process.kill()
    assert_clean_logs(processes)
