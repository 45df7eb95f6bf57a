"""`orchestrator serve --workers 2`: two processes on one port, each a replica."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import asyncpg
import grpc
from replica_helpers import create_agent

from helpers import ServerProcess, final_of, free_port, run_turn
from orchestrator.v1 import orchestrator_service_pb2_grpc as pb_grpc
from orchestrator_devmodel import DevModelServer


async def leases(db: str) -> int:
    conn = await asyncpg.connect(db)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM replicas"))
    finally:
        await conn.close()


async def test_two_workers_serve_one_port_and_stop_together(
    postgres_url: str, devmodel: DevModelServer, tmp_path: Path
) -> None:
    log = tmp_path / "workers.log"
    server = ServerProcess(
        postgres_url, devmodel.base_url, free_port(), log_path=log, extra_args=("--workers", "2")
    )
    server.start()
    assert server.proc is not None
    try:
        await server.wait_serving()
        async with asyncio.timeout(30):  # both workers took a lease (another process)
            while True:
                if await leases(postgres_url) == 2:
                    break
                await asyncio.sleep(0.05)
        # Separate connections land on either worker; every call works on both.
        channels = [
            grpc.aio.insecure_channel(server.address, options=[("grpc.channel_id", i)])
            for i in range(8)
        ]
        try:
            stubs = [pb_grpc.OrchestratorServiceStub(c) for c in channels]
            await create_agent(stubs[0])
            for i, stub in enumerate(stubs):
                events = await run_turn(stub, f"w{i}", session_id=f"s{i}")
                assert final_of(events).output == f"Echo: w{i}"
        finally:
            for channel in channels:
                await channel.close()
        server.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(server.proc.wait, 30) == 0
        assert await leases(postgres_url) == 0  # each gave its lease up
    finally:
        if server.proc.poll() is None:
            server.kill()
    assert "Traceback" not in log.read_text()
