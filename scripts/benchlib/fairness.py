"""Section fairness: a second tenant's time to first delta while one tenant holds 5,000
Run streams on the same provider.

One dev model server and one orchestrator with the provider's default max_concurrency
(256 calls in flight): the provider's limiter (core/fair_limiter.py) is what shares the
slots among tenants. The dev model answers tenant A's prompts (they name a HOLD_MESSAGE
variant) after about `--fair-latency-ms` and tenant B's at once, so that B's time to
first delta is the orchestrator's overhead plus the wait for a provider slot, not the
model's latency.

Why 5 s by default: A's 5,000 streams then want 256 / 5 s = 51 turns/s, which the
orchestrator serves on 2 cores (~55% CPU), so A's turns queue for the provider, which is
the case the target is about. At 1 s they would want 256/s; the orchestrator does ~80/s
there at 100% CPU, the provider's slots are not even all taken, and B's turns wait for
the server itself (seconds; gRPC cancels calls it leaves unaccepted for 30 s):
`--fair-latency-ms 1000` measures that.

Each repeat: B alone (turns started every B_INTERVAL_S, each on its own stream, timed
client-side from sending the start to the first delta); then A's load, in a subprocess
(fair_load.py) so that its thousands of streams do not share the bench's event loop with
B's timing: 5,000 streams, each with a turn in flight at all times once ramped up; B
again while A holds them; then A's streams are cancelled and the server left to settle.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from orchestrator.v1 import run_pb2
from orchestrator_devmodel import DevModelAdmin

from .agents import create_agent, tenant
from .config import PY, QUESTION, WORK, Mode
from .driver import busy_cpu_seconds, one
from .fair_load import DONE_PREFIX, HELD_PREFIX
from .results import Figure, Results, percentile
from .scale_db import remove_db
from .servers import (
    Child,
    orchestrator_env,
    orchestrator_stub,
    read_ready_line,
    spawn,
    start_devmodel,
    start_orchestrator,
    stop,
)

if TYPE_CHECKING:
    from orchestrator.v1.orchestrator_service_pb2_grpc import OrchestratorServiceAsyncStub

TENANT_A = "bench-fair-a"
TENANT_B = "bench-fair-b"
AGENT_ID = "fair-agent"  # one in each tenant
# A's calls take 0.5x to 1.5x `--fair-latency-ms` (mean 1x), in VARIANTS steps, each turn
# one at random: calls of one fixed latency, admitted in a burst by the ramp, free their
# slots in waves one latency apart (at 5 s, B then waited ~0.7 s for the next wave), which
# measures the phase of the waves rather than how slots are shared; a real model's
# latency varies from call to call.
VARIANTS = 21
HOLD_MESSAGE = "Benchmark hold-slot-{variant:02d}. question, please answer."
B_INTERVAL_S = 0.25  # between the starts of B's turns: one at a time while they are fast
B_TIMEOUT_S = 60.0  # a B turn behind a saturated server may take seconds; still bounded
# A's 5,000 streams were all started after 12-25 s on 2 cores (~80 s at a 1 s latency).
RAMP_WAIT_S = 300.0
SETTLE_WAIT_S = 90.0
LOAD_CHANNELS = 8


class LoadFailed(RuntimeError):
    """Tenant A's streams were not all held: the section has no figure under load."""


@dataclass
class Probe:
    """B's turns of one phase: client-side first delta and RunStarted, server-side first
    delta (RunCompleted), in ms; the provider's calls in flight sampled meanwhile."""

    first: list[float] = field(default_factory=list)
    started: list[float] = field(default_factory=list)
    server_first: list[float] = field(default_factory=list)
    in_flight: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failed_after: list[float] = field(default_factory=list)  # ms from the start to the error


async def timed_turn(stub: OrchestratorServiceAsyncStub, session_id: str, probe: Probe) -> None:
    """One turn of tenant B on its own stream."""
    request = run_pb2.RunRequest(
        start=run_pb2.StartTurn(agent_id=AGENT_ID, session_id=session_id, message=QUESTION)
    )
    began = time.perf_counter()
    first = started = 0.0
    try:
        call = stub.Run(one(request), metadata=tenant(TENANT_B), timeout=B_TIMEOUT_S)
        async for event in call:
            kind = event.WhichOneof("event")
            if kind == "run_started":
                started = time.perf_counter() - began
            elif kind == "text_delta" and not first:
                first = time.perf_counter() - began
            elif kind == "run_completed":
                probe.server_first.append(event.run_completed.time_to_first_delta_ms)
    except grpc.aio.AioRpcError as error:
        lived = time.perf_counter() - began
        probe.errors.append(f"{error.code().name} after {lived:.1f} s: {error.details()}")
        probe.failed_after.append(lived * 1000)
        return
    probe.first.append(first * 1000)
    probe.started.append(started * 1000)


async def sample_in_flight(admin: DevModelAdmin, probe: Probe) -> None:
    """The dev model's calls in flight every 0.5 s, until cancelled: whether the provider's
    slots were all taken while B was measured."""
    while True:
        stats = await admin.stats()
        probe.in_flight.append(int(stats["in_flight"]))
        await asyncio.sleep(0.5)


async def probe_b(
    stub: OrchestratorServiceAsyncStub, admin: DevModelAdmin, turns: int, tag: str
) -> Probe:
    """`turns` turns of B, one started every B_INTERVAL_S (not after the previous one
    ends: a slow turn does not delay the next one's start, nor stretch the phase)."""
    probe = Probe()
    sampler = asyncio.create_task(sample_in_flight(admin, probe))
    tasks = []
    for i in range(turns):
        tasks.append(asyncio.create_task(timed_turn(stub, f"b-{tag}-{i}", probe)))
        await asyncio.sleep(B_INTERVAL_S)
    await asyncio.gather(*tasks)
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    return probe


def waits(probe: Probe) -> list[float]:
    """Every turn's time to first delta; a failed turn's is at least its lifetime, which
    stands in for it (percentiles are then lower bounds)."""
    return probe.first + probe.failed_after


def record_probe(fig: Figure, probe: Probe) -> None:
    """One repeat of a phase: p50 as the sample, the rest as extras."""
    fig.samples.append(percentile(waits(probe), 50))
    fig.add_extra("p99_ms", percentile(waits(probe), 99))
    fig.add_extra("max_ms", max(waits(probe)))
    fig.add_extra("failed", len(probe.errors))
    fig.add_extra("run_started_p50_ms", percentile(probe.started, 50))
    fig.add_extra("server_first_p50_ms", percentile(probe.server_first, 50))
    fig.add_extra("provider_in_flight_min", min(probe.in_flight))
    fig.add_extra("provider_in_flight_median", statistics.median(probe.in_flight))


def probe_line(name: str, probe: Probe) -> str:
    failed = ""
    if probe.errors:
        failed = (
            f"; {len(probe.errors)} of {len(waits(probe))} turns FAILED (counted at their "
            f"lifetime), e.g. {probe.errors[0]}"
        )
    return (
        f"{name}: first delta p50 {percentile(waits(probe), 50):.1f} ms, "
        f"p99 {percentile(waits(probe), 99):.1f} ms (RunStarted p50 "
        f"{percentile(probe.started, 50):.1f} ms, server-side first delta p50 "
        f"{percentile(probe.server_first, 50):.1f} ms); provider calls in flight "
        f"{min(probe.in_flight)}-{max(probe.in_flight)}{failed}"
    )


def hold_rules(latency_ms: float) -> list[dict[str, Any]]:
    """The dev model's rules for A's prompts: variant k answers after (0.5 + k/20) x
    `latency_ms`; B's prompts match none and are answered at once."""
    return [
        {
            "name": f"tenant-a-{k:02d}",
            "match": {"contains": HOLD_MESSAGE.format(variant=k).split()[1]},
            "reply": {"latency_ms": latency_ms * (0.5 + k / (VARIANTS - 1))},
        }
        for k in range(VARIANTS)
    ]


def fairness_env(model_url: str, streams: int) -> dict[str, str]:
    """The orchestrator's environment: the provider at its default max_concurrency, and
    the run and stream caps raised so that all of A's streams (and B's) are admitted."""
    env = orchestrator_env(model_url)
    room = str(streams + 1000)
    for cap in ("RUNS", "RUNS_PER_TENANT", "STREAMS", "STREAMS_PER_TENANT"):
        env[f"ORCHESTRATOR_MAX_{cap}"] = room
    return env


async def start_load(address: str, streams: int, tag: str) -> tuple[Child, dict[str, Any]]:
    """Tenant A's streams in their own process; returns once every stream has a turn in
    flight, with the load's report."""
    argv = [PY, "-m", "scripts.benchlib.fair_load", "--address", address]
    argv += ["--tenant", TENANT_A, "--agent", AGENT_ID, "--message", HOLD_MESSAGE]
    argv += ["--variants", str(VARIANTS)]
    argv += ["--streams", str(streams), "--channels", str(LOAD_CHANNELS), "--tag", tag]
    argv += ["--max-hold-s", "180", "--timeout", str(RAMP_WAIT_S + 300)]
    try:
        child, held = await spawn("fair-load", argv, ready_prefix=HELD_PREFIX, wait_s=RAMP_WAIT_S)
    except RuntimeError as error:  # not held within RAMP_WAIT_S
        raise LoadFailed(str(error)) from error
    report: dict[str, Any] = json.loads(held)
    if report["errors"]:
        await stop(child)
        raise LoadFailed(f"tenant A's streams failed: {report['errors']} {report['examples']}")
    return child, report


async def stop_load(child: Child) -> dict[str, Any]:
    """Cancel A's streams (SIGTERM); the load's last report."""
    with contextlib.suppress(ProcessLookupError):
        child.proc.send_signal(signal.SIGTERM)
    done = await read_ready_line(child.proc, DONE_PREFIX, 120.0)
    await stop(child)
    if done is None:
        raise LoadFailed("tenant A's load did not report its end (see logs/fair-load.log)")
    report: dict[str, Any] = json.loads(done)
    return report


async def settle(admin: DevModelAdmin) -> float:
    """Wait until the provider has no call in flight (the server has wound A's cancelled
    turns down); seconds waited."""
    began = time.perf_counter()
    deadline = began + SETTLE_WAIT_S
    while time.perf_counter() < deadline:
        if (await admin.stats())["in_flight"] == 0:
            break
        await asyncio.sleep(0.25)
    await asyncio.sleep(1.0)  # the run records of the last cancellations
    return time.perf_counter() - began


@dataclass
class Bench:
    """What every repeat of the section uses."""

    stub: OrchestratorServiceAsyncStub
    admin: DevModelAdmin
    orch: Child
    address: str
    mode: Mode
    alone: Figure
    loaded: Figure


async def under_load(bench: Bench, repeat: int) -> Probe:
    """A's load, B's turns while it holds, A cancelled; figures of the load as extras."""
    streams = bench.mode.fair_streams
    began = time.perf_counter()
    load, held = await start_load(bench.address, streams, f"r{repeat}")
    ramp_s = time.perf_counter() - began
    # CPU while B is measured: the orchestrator's, the load generator's, the machine's
    # (of 100% per core; the rest of the machine's is the bench, the dev model and others).
    cpu0 = (bench.orch.cpu_seconds(), load.cpu_seconds(), busy_cpu_seconds())
    t0 = time.perf_counter()
    try:
        probe = await probe_b(bench.stub, bench.admin, bench.mode.fair_turns, f"l{repeat}")
    finally:
        cpu1 = (bench.orch.cpu_seconds(), load.cpu_seconds(), busy_cpu_seconds())
        elapsed = time.perf_counter() - t0
        pcts = [(b - a) / elapsed * 100 for a, b in zip(cpu0, cpu1, strict=True)]
        orch_pct, load_pct, machine_pct = pcts
        end = await stop_load(load)
    if end["errors"]:
        raise LoadFailed(f"tenant A's streams failed: {end['errors']} {end['examples']}")
    a_rate = (end["turns"] - held["turns"]) / (end["now"] - held["now"])
    settle_s = await settle(bench.admin)
    fig = bench.loaded
    fig.add_extra("ramp_s", ramp_s)
    fig.add_extra("orchestrator_cpu_pct", orch_pct)
    fig.add_extra("load_generator_cpu_pct", load_pct)
    fig.add_extra("machine_cpu_pct", machine_pct)
    fig.add_extra("a_turns_per_s", a_rate)
    fig.add_extra("settle_s", settle_s)
    print(
        f"  A: {streams:,} streams all started after {ramp_s:.1f} s; while held, A's turns "
        f"completed {a_rate:.0f}/s; CPU while B was measured: orchestrator {orch_pct:.0f}%, "
        f"A's load generator {load_pct:.0f}%, whole machine {machine_pct:.0f}% of "
        f"{os.cpu_count()}00%; provider idle {settle_s:.1f} s after A's streams were cancelled",
        flush=True,
    )
    return probe


async def fairness_round(bench: Bench, repeat: int) -> None:
    """B alone, then B while A holds its streams."""
    alone = await probe_b(bench.stub, bench.admin, bench.mode.fair_turns, f"a{repeat}")
    record_probe(bench.alone, alone)
    print(f"  [{repeat + 1}/{bench.mode.fair_repeats}] " + probe_line("B alone", alone), flush=True)
    loaded = await under_load(bench, repeat)
    record_probe(bench.loaded, loaded)
    label = f"B, A holding {bench.mode.fair_streams:,} streams"
    print(f"  [{repeat + 1}/{bench.mode.fair_repeats}] " + probe_line(label, loaded), flush=True)


def figures(results: Results, mode: Mode, latency_ms: float) -> tuple[Figure, Figure]:
    alone = results.figure(
        "fairness.alone_ttfd_ms", "fairness", "tenant B first delta p50, alone", "ms"
    )
    loaded = results.figure(
        "fairness.loaded_ttfd_ms",
        "fairness",
        f"tenant B first delta p50, A holding {mode.fair_streams:,} streams",
        "ms",
    )
    loaded.note = (
        f"A's model calls {latency_ms / 2:.0f}-{latency_ms * 1.5:.0f} ms (mean "
        f"{latency_ms:.0f}), B's immediate; provider max_concurrency "
        f"default (256), a freed slot to the waiting tenant holding fewest; "
        f"ORCHESTRATOR_MAX_RUNS, _RUNS_PER_TENANT, "
        f"_STREAMS, _STREAMS_PER_TENANT raised to {mode.fair_streams + 1000:,} so that "
        f"A's streams are admitted"
    )
    return alone, loaded


async def fairness_section(mode: Mode, results: Results, args: argparse.Namespace) -> None:
    """B's time to first delta alone and while A holds `mode.fair_streams` streams."""
    WORK.mkdir(parents=True, exist_ok=True)
    db = WORK / "fairness.db"
    remove_db(db)
    async with contextlib.AsyncExitStack() as stack:
        _, model_url = await start_devmodel(stack, "devmodel-fairness", 0)
        admin = DevModelAdmin(model_url)
        stack.push_async_callback(admin.aclose)
        await admin.set_rules(hold_rules(args.fair_latency_ms))
        env = fairness_env(model_url, mode.fair_streams)
        orch, address, _ = await start_orchestrator("fairness", db, env)
        stack.push_async_callback(stop, orch)
        stub = orchestrator_stub(stack, address)
        for name in (TENANT_A, TENANT_B):
            await create_agent(stub, AGENT_ID, name)
        await probe_b(stub, admin, 10, "warm")
        alone, loaded = figures(results, mode, args.fair_latency_ms)
        bench = Bench(stub, admin, orch, address, mode, alone, loaded)
        try:
            for repeat in range(mode.fair_repeats):
                await fairness_round(bench, repeat)
        except LoadFailed as error:
            # The other sections' figures are still written; the target shows n/a.
            results.skipped["fairness"] = str(error)
            print(f"  FAILED: {error}", flush=True)
            return
        delta = loaded.value - alone.value
        print(f"  B's first delta p50 under A's load: {delta:+.1f} ms vs alone", flush=True)
