"""PostgreSQL stopped and started again under load: calls fail fast with UNAVAILABLE /
STORE_UNAVAILABLE, health says NOT_SERVING meanwhile, the replicas recover by themselves
within seconds, and every run ends with a recorded outcome."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from replica_helpers import Replicas, assert_clean_logs, create_agent, replica_processes

from helpers import error_info, final_of, run_turn
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator.v1 import run_pb2
from orchestrator_devmodel import DevModelAdmin, DevModelServer
from scripts.pg_cluster import PostgresCluster, create_database

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
async def own_cluster() -> AsyncIterator[PostgresCluster]:
    """A PostgreSQL of this test alone (it is stopped and started)."""
    cluster = await asyncio.to_thread(PostgresCluster().start)
    try:
        yield cluster
    finally:
        await asyncio.to_thread(cluster.stop)


async def health_of(address: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=2
        )
        return int(reply.status)


async def until_health(replicas: Replicas, status: int, within: float) -> float:
    """Seconds until every replica reports `status` (another process's state: polled)."""
    started = time.monotonic()
    async with asyncio.timeout(within):
        while True:
            if [await health_of(a) for a in replicas.addresses] == [status] * 2:
                break
            await asyncio.sleep(0.05)
    return time.monotonic() - started


async def load(
    stubs: list[object], worker: int, outcomes: Counter[str], stop: asyncio.Event
) -> None:
    """Turns one after another on the worker's own session, alternating replicas."""
    turn = 0
    while not stop.is_set():
        stub = stubs[(worker + turn) % len(stubs)]
        turn += 1
        try:
            events = await run_turn(stub, f"w{worker} t{turn}", session_id=f"w{worker}")
            assert final_of(events).output == f"Echo: w{worker} t{turn}"
            outcomes["ok"] += 1
        except grpc.aio.AioRpcError as error:
            outcomes[f"{error.code().name}/{error_info(error).reason}"] += 1
            await asyncio.sleep(0.05)  # a client's backoff


async def test_postgres_stopped_and_started_under_load(
    own_cluster: PostgresCluster, devmodel: DevModelServer, admin: DevModelAdmin, tmp_path: Path
) -> None:
    await admin.set_rules([{"match": {"contains": "t"}, "reply": {"latency_ms": 50}}])
    db = await create_database(own_cluster.url)
    processes = replica_processes(db, devmodel.base_url, 2, tmp_path)
    for process in processes:
        process.start()
    replicas = Replicas(processes, db)
    try:
        for process in processes:
            await process.wait_serving()
        async with replicas.channels() as stubs:
            await create_agent(stubs[0])
            outcomes: Counter[str] = Counter()
            stop = asyncio.Event()
            workers = [asyncio.ensure_future(load(stubs, i, outcomes, stop)) for i in range(8)]
            await admin.events(wait=10, min_count=40)  # the load runs

            await asyncio.to_thread(own_cluster.stop_server, "fast")
            down = await until_health(replicas, NOT_SERVING, within=10)
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stubs[1].GetAgent(pb.GetAgentRequest(agent_id="shared"), timeout=5)
            assert time.monotonic() - started < 1.0  # fails fast
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert error_info(refused.value).reason == "STORE_UNAVAILABLE"

            await asyncio.to_thread(own_cluster.start)
            recovered = await until_health(replicas, SERVING, within=15)
            served_before = outcomes["ok"]
            await admin.events(wait=10, min_count=len(await admin.events()) + 40)
            stop.set()
            await asyncio.gather(*workers)
            assert outcomes["ok"] > served_before
            print(f"NOT_SERVING after {down:.2f} s, SERVING {recovered:.2f} s after restart")
            print(dict(outcomes))
            # Every failure said what it was, and nothing was INTERNAL. A session whose
            # turn ended while its end could not be written reads busy until the end is
            # written (the next heartbeat after the database returns).
            allowed = {"ok", "UNAVAILABLE/STORE_UNAVAILABLE", "ABORTED/SESSION_BUSY"}
            assert set(outcomes) <= allowed, outcomes
            # Every run has an outcome (ends that could not be written are written now).
            async with asyncio.timeout(15):
                while True:
                    runs = await stubs[0].ListRuns(pb.ListRunsRequest(page_size=1000))
                    unfinished = [
                        r.run_id
                        for r in runs.runs
                        if r.status in (run_pb2.RUN_STATUS_RUNNING, run_pb2.RUN_STATUS_QUEUED)
                    ]
                    if not unfinished:
                        break
                    await asyncio.sleep(0.1)  # written by a heartbeat of another process
    finally:
        for process in processes:
            if process.proc is not None and process.proc.poll() is None:
                process.kill()
    assert_clean_logs(processes)
