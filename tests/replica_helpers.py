"""Several replicas (separate `orchestrator serve` processes) on one PostgreSQL database,
clients that spread their calls over them, and what the replica tests share."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from helpers import ServerProcess, free_port
from orchestrator.v1 import agent_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator.v1 import orchestrator_service_pb2_grpc as pb_grpc

# Short leases keep the failure tests quick; production defaults to 10 s.
LEASE_SECONDS = 2.0


@dataclass
class Replicas:
    """Running replicas of one database."""

    processes: list[ServerProcess]
    db: str

    @property
    def addresses(self) -> list[str]:
        return [p.address for p in self.processes]

    @asynccontextmanager
    async def channels(self) -> AsyncIterator[list[pb_grpc.OrchestratorServiceStub]]:
        """One stub per replica."""
        opened = [grpc.aio.insecure_channel(a) for a in self.addresses]
        try:
            yield [pb_grpc.OrchestratorServiceStub(c) for c in opened]
        finally:
            for channel in opened:
                await channel.close()

    @asynccontextmanager
    async def round_robin(self) -> AsyncIterator[pb_grpc.OrchestratorServiceStub]:
        """One channel whose calls go to the replicas in turn (client-side round robin)."""
        target = "ipv4:" + ",".join(self.addresses)
        options = [("grpc.lb_policy_name", "round_robin")]
        async with grpc.aio.insecure_channel(target, options=options) as channel:
            yield pb_grpc.OrchestratorServiceStub(channel)


def replica_processes(
    db: str, model_url: str, count: int, logs: Path, **env: str
) -> list[ServerProcess]:
    """`count` replica processes (not started) with short leases."""
    settings = {"ORCHESTRATOR_LEASE_SECONDS": str(LEASE_SECONDS), **env}
    return [
        ServerProcess(db, model_url, free_port(), env=settings, log_path=logs / f"replica{i}.log")
        for i in range(count)
    ]


def assert_clean_logs(processes: list[ServerProcess]) -> None:
    """No replica logged a traceback, whatever the test did to it."""
    for process in processes:
        assert process.log_path is not None
        log = process.log_path.read_text(errors="replace")
        assert "Traceback" not in log, log[-4000:]


async def run_status(stub: pb_grpc.OrchestratorServiceStub, run_id: str) -> int:
    reply = await stub.GetRun(pb.GetRunRequest(run_id=run_id))
    return int(reply.run.status)


async def until_status(
    stub: pb_grpc.OrchestratorServiceStub, run_ids: list[str], status: int, within: float
) -> float:
    """Wait until every run has `status` (another process writes it: polling is all
    there is); the seconds it took. TimeoutError after `within` seconds."""
    started = time.monotonic()
    async with asyncio.timeout(within):
        while True:
            statuses = [await run_status(stub, run_id) for run_id in run_ids]
            if all(s == status for s in statuses):
                return time.monotonic() - started
            await asyncio.sleep(0.05)


async def create_agent(stub: pb_grpc.OrchestratorServiceStub, agent_id: str = "shared") -> None:
    """The agent the replica tests run (the tenant's default)."""
    await stub.CreateAgent(
        pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id=agent_id), set_as_default=True)
    )
