"""Section replicas: several orchestrator processes on one PostgreSQL database.

- CancelRun sent to another replica than the one running the turn: the time from sending
  it to the development model seeing its upstream request closed (both clocks are this
  machine's).
- `serve --workers 2` against `--workers 1`: runs/s at c=32 with persisted memory, and
  the 1,000 concurrent streams at 1 s model latency. The client opens several channels:
  the kernel spreads connections (not calls) over the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, cast

import asyncpg
import grpc

from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator.v1 import orchestrator_service_pb2_grpc, run_pb2
from orchestrator_devmodel import DevModelAdmin
from scripts.pg_cluster import create_database

from .agents import create_agent
from .config import OP_TIMEOUT, Mode
from .driver import one
from .results import Results, percentile
from .runs import AGENT_ID, run_turn, start_turn
from .servers import (
    orchestrator_env,
    serve_orchestrator,
    start_devmodel,
    start_orchestrator,
    start_postgres,
    stop,
)

if TYPE_CHECKING:
    from orchestrator.v1.orchestrator_service_pb2_grpc import OrchestratorServiceAsyncStub

CHANNELS = 16  # client connections to a --workers server
STREAM_LATENCY_MS = 1000.0


async def replicas_section(mode: Mode, results: Results, provider_concurrency: int) -> None:
    """Cross-replica cancel latency, and one worker against two."""
    async with contextlib.AsyncExitStack() as stack:
        server = await start_postgres(stack)
        await measure_cancel(stack, server, mode, results)
        for workers in (1, 2):
            await measure_workers(server, workers, mode, results, provider_concurrency)


async def until_in_flight(admin: DevModelAdmin, count: int) -> None:
    """Wait (polling the model server: another process) until `count` requests are open."""
    async with asyncio.timeout(OP_TIMEOUT):
        while True:
            if (await admin.stats())["in_flight"] >= count:
                return
            await asyncio.sleep(0.002)


async def measure_cancel(
    stack: contextlib.AsyncExitStack, server: str, mode: Mode, results: Results
) -> None:
    """CancelRun on replica B of a turn replica A runs, until the upstream request closes."""
    _, model_url = await start_devmodel(stack, "devmodel-cancel", 0, record=True)
    admin = DevModelAdmin(model_url)
    stack.push_async_callback(admin.aclose)
    await admin.set_rules([{"match": {"contains": "Benchmark"}, "reply": {"stall": True}}])
    db = await create_database(server)
    _, runner = await serve_orchestrator(stack, "replica-a", db, model_url)
    _, canceller = await serve_orchestrator(stack, "replica-b", db, model_url)
    await create_agent(runner, AGENT_ID)
    fig = results.figure(
        "replicas.cancel_ms", "replicas", "CancelRun on another replica: upstream closed", "ms"
    )
    for repeat in range(mode.repeats):
        latencies = []
        for i in range(10 if mode.repeats < 5 else 20):
            call = runner.Run(one(start_turn(AGENT_ID, f"c{repeat}-{i}")))
            started = cast(run_pb2.RunEvent, await call.read())
            await until_in_flight(admin, 1)
            sent = time.time()
            await canceller.CancelRun(pb.CancelRunRequest(run_id=started.run_id))
            closed = await admin.events(outcome="client_disconnected", wait=5)
            latencies.append((closed[-1]["finished_at"] - sent) * 1000)
            await admin.clear_events()
            call.cancel()
        fig.samples.append(percentile(latencies, 50))
        fig.add_extra("p99_ms", percentile(latencies, 99))
        print(
            f"  [{repeat + 1}/{mode.repeats}] cross-replica CancelRun: p50 "
            f"{percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms",
            flush=True,
        )


def stubs_for(stack: contextlib.AsyncExitStack, address: str) -> list[OrchestratorServiceAsyncStub]:
    """CHANNELS stubs, each on its own connection (a subchannel pool of its own)."""
    stubs = []
    for i in range(CHANNELS):
        channel = grpc.aio.insecure_channel(address, options=[("grpc.channel_id", i)])
        stack.push_async_callback(channel.close)
        stubs.append(orchestrator_service_pb2_grpc.OrchestratorServiceStub(channel))
    return stubs


async def wait_replicas(db: str, count: int) -> None:
    """Until `count` replicas hold a lease (every worker is up)."""
    conn = await asyncpg.connect(db)
    try:
        async with asyncio.timeout(60):
            while True:
                if await conn.fetchval("SELECT count(*) FROM replicas") >= count:
                    return
                await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def closed_loop_rate(
    stubs: list[OrchestratorServiceAsyncStub], concurrency: int, seconds: float, tag: str
) -> float:
    """Runs/s of `concurrency` workers, each on its own session (memory grows)."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        nonlocal done
        stub = stubs[index % len(stubs)]
        while time.perf_counter() < deadline:
            await run_turn(stub, AGENT_ID, f"{tag}-w{index}", OP_TIMEOUT)
            done += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return done / (time.perf_counter() - began)


async def streams_wall(stubs: list[OrchestratorServiceAsyncStub], n: int, tag: str) -> float:
    """Seconds until `n` streams started at once have all completed."""
    began = time.perf_counter()
    await asyncio.gather(
        *(run_turn(stubs[i % len(stubs)], AGENT_ID, f"{tag}-{i}", OP_TIMEOUT) for i in range(n))
    )
    return time.perf_counter() - began


async def measure_workers(
    server: str,
    workers: int,
    mode: Mode,
    results: Results,
    provider_concurrency: int,
) -> None:
    """runs/s at c=32 (memory) and 1,000 streams at 1 s latency with `workers` workers."""
    async with contextlib.AsyncExitStack() as stack:
        _, fast_url = await start_devmodel(stack, f"devmodel-w{workers}", 0)
        _, slow_url = await start_devmodel(stack, f"devmodel-1s-w{workers}", STREAM_LATENCY_MS)
        for kind, url in (("runs", fast_url), ("streams", slow_url)):
            db = await create_database(server)
            env = orchestrator_env(url, max_concurrency=provider_concurrency)
            orch, address, _ = await start_orchestrator(
                f"workers{workers}-{kind}", db, env, extra_argv=["--workers", str(workers)]
            )
            stack.push_async_callback(stop, orch)
            await wait_replicas(db, workers)
            stubs = stubs_for(stack, address)
            await create_agent(stubs[0], AGENT_ID)
            if kind == "runs":
                await measure_worker_runs(stubs, workers, mode, results)
            else:
                await measure_worker_streams(stubs, workers, mode, results)


async def measure_worker_runs(
    stubs: list[OrchestratorServiceAsyncStub], workers: int, mode: Mode, results: Results
) -> None:
    fig = results.figure(
        f"replicas.runs_w{workers}",
        "replicas",
        f"Run c=32 with memory on PostgreSQL, --workers {workers}",
        "runs/s",
    )
    await closed_loop_rate(stubs, 32, mode.warmup, "warm")
    for repeat in range(mode.repeats):
        rate = await closed_loop_rate(stubs, 32, mode.duration, f"r{repeat}")
        fig.samples.append(rate)
        print(f"  [{repeat + 1}/{mode.repeats}] {fig.label}: {rate:,.0f} runs/s", flush=True)


async def measure_worker_streams(
    stubs: list[OrchestratorServiceAsyncStub], workers: int, mode: Mode, results: Results
) -> None:
    fig = results.figure(
        f"replicas.streams_w{workers}",
        "replicas",
        f"{mode.streams:,} streams at 1 s model latency, --workers {workers}",
        "s",
    )
    await streams_wall(stubs, 50, "warm")
    for repeat in range(max(mode.repeats // 2, 1)):
        wall = await streams_wall(stubs, mode.streams, f"r{repeat}")
        fig.samples.append(wall)
        print(f"  [{repeat + 1}] {fig.label}: {wall:.2f} s", flush=True)
