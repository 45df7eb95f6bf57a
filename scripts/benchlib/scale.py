"""Section scale: the orchestrator on a big database, and 1,000 streams at once.

On the cached 100k-agent / 1M-message database: start to SERVING (next to an empty
database, and with bytecode cached), the p50 of a ListAgents page, idle RSS; then 1,000
concurrent Run streams with the model answering after 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.v1 import orchestrator_service_pb2

from .config import OP_TIMEOUT, RESULTS, ROOT, WORK, Mode
from .driver import busy_cpu_seconds, own_cpu_seconds
from .profiling import py_spy, py_spy_during, summarise_profile
from .results import Results, percentile
from .runs import run_turn
from .scale_db import copy_db, ensure_scale_db, remove_db
from .servers import (
    Child,
    orchestrator_env,
    orchestrator_stub,
    start_devmodel,
    start_orchestrator,
    stop,
)

if TYPE_CHECKING:
    from orchestrator.v1.orchestrator_service_pb2_grpc import OrchestratorServiceAsyncStub

STREAM_MODEL_LATENCY_MS = 1000
PAGE_SIZE = 100


async def scale_section(mode: Mode, results: Results, args: argparse.Namespace) -> None:
    """Start-up, list latency and memory on a big database; 1,000 streams at 1 s."""
    cached = await ensure_scale_db(mode)
    WORK.mkdir(parents=True, exist_ok=True)
    db = WORK / "scale.db"
    copy_db(cached, db)
    async with contextlib.AsyncExitStack() as stack:
        _, model_url = await start_devmodel(stack, "devmodel-1s", STREAM_MODEL_LATENCY_MS)
        # The provider's default cap of 256 calls in flight would queue 1,000 streams in
        # four waves; an operator serving 1,000 streams raises it (max_concurrency).
        env = orchestrator_env(model_url, max_concurrency=args.provider_concurrency)
        orch = await measure_startup(mode, results, env, db)
        stack.push_async_callback(stop, orch)
        rss_start = orch.rss_mb()
        stub = orchestrator_stub(stack, f"127.0.0.1:{orch.listening_port()}")
        # After SERVING the server warms up in the background for about a second (model
        # clients, imports, gc.freeze): the list latency is measured once it has settled,
        # and so is the idle RSS.
        await asyncio.sleep(1.5)
        await measure_list_pages(stub, mode, results)
        fig_rss = results.figure("scale.idle_rss_mb", "scale", "idle RSS of the server", "MB")
        fig_rss.samples.append(orch.rss_mb())
        fig_rss.add_extra("rss_after_start_mb", rss_start)
        print(f"  idle RSS {fig_rss.value:.0f} MB (after start {rss_start:.0f} MB)", flush=True)
        await measure_streams(stub, orch, mode, results, args.provider_concurrency)
        if args.profile:
            await profile_streams(stub, orch, mode, results)


def bytecode_env(env: dict[str, str]) -> dict[str, str]:
    """`env` with compiled bytecode written to and read from a private cache.

    This environment sets PYTHONDONTWRITEBYTECODE=1 and the venv is installed without
    compiled bytecode, so every start compiles openai & co. from source; a private
    pycache shows the start-up of a deployment that ships bytecode."""
    pyc_env = dict(env)
    pyc_env.pop("PYTHONDONTWRITEBYTECODE", None)
    pyc_env["PYTHONPYCACHEPREFIX"] = str(RESULTS / "pycache")
    return pyc_env


async def start_and_stop(name: str, db: Path, env: dict[str, str]) -> float:
    """Seconds from the exec to SERVING of a server that is stopped right after."""
    child, _, seconds = await start_orchestrator(name, db, env)
    await stop(child)
    return seconds


async def measure_startup(mode: Mode, results: Results, env: dict[str, str], db: Path) -> Child:
    """Start to SERVING on an empty and on the big database, and on the big one with
    bytecode cached; returns the last server started on the big database, running."""
    big = f"{mode.scale_agents // 1000}k agents / {mode.scale_messages // 1_000_000}M messages"
    fig_empty = results.figure(
        "scale.serving_empty_s", "scale", "start to SERVING, empty database", "s"
    )
    fig_serving = results.figure("scale.serving_s", "scale", f"start to SERVING, {big}", "s")
    fig_pyc = results.figure(
        "scale.serving_pyc_s", "scale", "start to SERVING, same, bytecode cached", "s"
    )
    pyc_env = bytecode_env(env)
    warm = WORK / "pyc-warm.db"
    remove_db(warm)
    await start_and_stop("scale-pyc-warm", warm, pyc_env)  # fills the bytecode cache
    for repeat in range(mode.serving_repeats):
        empty = WORK / f"empty-{repeat}.db"
        remove_db(empty)
        fig_empty.samples.append(await start_and_stop("scale-empty", empty, env))
        fig_pyc.samples.append(await start_and_stop("scale-pyc", db, pyc_env))
        child, _, seconds = await start_orchestrator("scale", db, env)
        fig_serving.samples.append(seconds)
        print(
            f"  [{repeat + 1}/{mode.serving_repeats}] SERVING: empty db "
            f"{fig_empty.samples[-1]:.2f} s, big db {seconds:.2f} s, big db with "
            f"bytecode cached {fig_pyc.samples[-1]:.2f} s",
            flush=True,
        )
        if repeat < mode.serving_repeats - 1:
            await stop(child)
    return child


async def measure_list_pages(
    stub: OrchestratorServiceAsyncStub, mode: Mode, results: Results
) -> None:
    """ListAgents pages, one at a time, walking the first pages of 100k agents."""
    fig_list = results.figure(
        "scale.list_page_ms", "scale", "ListAgents page of 100 (100k agents), c=1", "ms"
    )
    for _repeat in range(mode.repeats):
        token = ""
        latencies: list[float] = []
        for _ in range(mode.list_pages):
            began = time.perf_counter()
            reply = await stub.ListAgents(
                orchestrator_service_pb2.ListAgentsRequest(page_size=PAGE_SIZE, page_token=token),
                timeout=OP_TIMEOUT,
            )
            latencies.append(time.perf_counter() - began)
            assert len(reply.agents) == PAGE_SIZE
            token = reply.next_page_token
        fig_list.samples.append(percentile(latencies, 50) * 1000)
        fig_list.add_extra("p99_ms", percentile(latencies, 99) * 1000)
    print(f"  ListAgents page p50 {fig_list.value:.2f} ms", flush=True)


async def measure_streams(
    stub: OrchestratorServiceAsyncStub,
    orch: Child,
    mode: Mode,
    results: Results,
    provider_concurrency: int,
) -> None:
    """`mode.streams` concurrent Run streams, each its own agent and new session."""
    fig_streams = results.figure(
        "scale.streams_s",
        "scale",
        f"{mode.streams:,} concurrent Run streams at 1 s model latency",
        "s",
    )
    fig_streams.note = f"provider max_concurrency={provider_concurrency}"
    await streams_once(stub, 50, "warm", orch)  # open connections, warm code paths
    for repeat in range(mode.repeats):
        wall, cpu = await streams_once(stub, mode.streams, f"r{repeat}", orch)
        fig_streams.samples.append(wall)
        for name, seconds in cpu.items():
            fig_streams.add_extra(f"cpu_s.{name}", seconds)
        print(
            f"  [{repeat + 1}/{mode.repeats}] {mode.streams} streams: {wall:.2f} s "
            f"(orchestrator CPU {cpu['orchestrator']:.2f} s, client "
            f"{cpu['client']:.2f} s, whole machine {cpu['machine']:.2f} s)",
            flush=True,
        )


async def streams_once(
    stub: OrchestratorServiceAsyncStub, n: int, tag: str, orch: Child
) -> tuple[float, dict[str, float]]:
    """n Run streams at once; wall time until the last completes."""
    cpu0 = orch.cpu_seconds()
    client0 = own_cpu_seconds()
    busy0 = busy_cpu_seconds()
    began = time.perf_counter()
    outcomes = await asyncio.gather(
        *(run_turn(stub, f"a{i:06d}", f"n{tag}-{i}", OP_TIMEOUT) for i in range(n)),
        return_exceptions=True,
    )
    wall = time.perf_counter() - began
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    if errors:
        raise RuntimeError(f"{len(errors)} of {n} streams failed, e.g. {errors[0]!r}")
    cpu = {"orchestrator": orch.cpu_seconds() - cpu0, "client": own_cpu_seconds() - client0}
    cpu["machine"] = busy_cpu_seconds() - busy0
    return wall, cpu


async def profile_streams(
    stub: OrchestratorServiceAsyncStub, orch: Child, mode: Mode, results: Results
) -> None:
    """The streams once more with py-spy sampling the orchestrator."""
    spy = py_spy()
    if spy is None:
        return
    raw = RESULTS / "profile-streams-1000.txt"
    seconds = 20  # longer than the run: py-spy does not count idle samples
    print("profiling the orchestrator during 1,000 streams ...", flush=True)
    wall, _ = await py_spy_during(
        spy, orch.pid, seconds, raw, lambda: streams_once(stub, mode.streams, "prof", orch)
    )
    if raw.exists():
        summary = summarise_profile(raw, mode.streams, "run")
        out = RESULTS / "profile-streams-1000-summary.txt"
        out.write_text(f"{mode.streams} streams in {wall:.2f} s while profiled\n" + summary)
        results.profiles["streams-1000"] = str(out.relative_to(ROOT))
        print(summary, flush=True)
