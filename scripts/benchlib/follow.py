"""Section follow: FollowRun fan-out and BusyPolicy INTERRUPT.

- 1,000 followers on one running run (FollowRun from sequence 0, over 16 connections,
  attached while the model has not answered yet): whether each received every event
  the run's own stream did, in order; the orchestrator's CPU per delivered event (its
  process CPU during the run, over followers x events); and how much later a follower
  got the first text delta than the run's own stream (client-side, one clock).
- INTERRUPT: a second start on a session whose turn is running (waiting for the model),
  until its RunStarted (RUNNING) arrives: the first turn is cancelled and recorded, then
  the new one starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator.v1 import run_pb2
from orchestrator_devmodel import DevModelAdmin

from .agents import create_agent
from .config import OP_TIMEOUT, QUESTION, Mode
from .driver import one
from .replicas import stubs_for
from .results import Results, percentile
from .runs import AGENT_ID
from .servers import orchestrator_env, start_devmodel, start_orchestrator, stop

if TYPE_CHECKING:
    from orchestrator.v1.orchestrator_service_pb2_grpc import OrchestratorServiceAsyncStub

FOLLOWERS = 1000
MODEL_LATENCY_MS = 1500.0  # time for every follower to attach before the first token
TOKENS_PER_SECOND = 100.0
ANSWER = " ".join(f"w{i}" for i in range(50))  # 50 tokens: ~0.5 s of deltas


@dataclass
class Seen:
    """What one stream received: its events' wire form, and the first delta's time."""

    events: list[bytes] = field(default_factory=list)
    first_event: float = 0.0
    first_delta: float = 0.0


@dataclass
class Attached:
    """Counts followers that received their first event; set when all have."""

    expected: int
    count: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def one(self) -> None:
        self.count += 1
        if self.count == self.expected:
            self.done.set()


async def follow_section(mode: Mode, results: Results, work_dir: Path) -> None:
    """Fan-out of one run to FOLLOWERS followers, and INTERRUPT latency."""
    async with contextlib.AsyncExitStack() as stack:
        _, model_url = await start_devmodel(
            stack, "devmodel-follow", MODEL_LATENCY_MS, tokens_per_second=TOKENS_PER_SECOND
        )
        orch, address, _ = await start_orchestrator(
            "orchestrator-follow", work_dir / "follow.db", orchestrator_env(model_url)
        )
        stack.push_async_callback(stop, orch)
        stubs = stubs_for(stack, address)
        await create_agent(stubs[0], AGENT_ID)
        admin = DevModelAdmin(model_url)
        stack.push_async_callback(admin.aclose)
        await admin.set_rules([{"match": {"contains": "fan-out"}, "reply": {"text": ANSWER}}])
        for repeat in range(mode.repeats):
            await measure_fan_out(stubs, orch.cpu_seconds, results, repeat, mode.repeats)
        await measure_interrupt(stubs[0], results, mode.repeats)


async def read_stream(
    call: grpc.aio.StreamStreamCall[Any, run_pb2.RunEvent],
    seen: Seen,
    attached: Attached | None = None,
) -> None:
    while (event := await call.read()) is not grpc.aio.EOF:
        assert isinstance(event, run_pb2.RunEvent)
        seen.events.append(event.SerializeToString(deterministic=True))
        if not seen.first_event:
            seen.first_event = time.perf_counter()
            if attached is not None:
                attached.one()
        if event.WhichOneof("event") == "text_delta" and not seen.first_delta:
            seen.first_delta = time.perf_counter()


def start_message(session: str, message: str = QUESTION, **fields: object) -> run_pb2.RunRequest:
    return run_pb2.RunRequest(
        start=run_pb2.StartTurn(
            agent_id=AGENT_ID,
            session_id=session,
            message=message,
            **fields,  # type: ignore[arg-type]
        )
    )


async def measure_fan_out(
    stubs: list[OrchestratorServiceAsyncStub],
    cpu_seconds: Callable[[], float],
    results: Results,
    repeat: int,
    repeats: int,
) -> None:
    own = Seen()
    call = stubs[0].Run(one(start_message(f"fan-{repeat}", "fan-out")), timeout=OP_TIMEOUT)
    started = await call.read()
    assert isinstance(started, run_pb2.RunEvent)
    own.events.append(started.SerializeToString(deterministic=True))
    cpu_before = cpu_seconds()
    followers = [Seen() for _ in range(FOLLOWERS)]
    attached = Attached(FOLLOWERS)
    follow_start = pb.FollowRunRequest(start=pb.FollowStart(run_id=started.run_id))
    tasks = [
        asyncio.create_task(
            read_stream(
                stubs[i % len(stubs)].FollowRun(one(follow_start), timeout=OP_TIMEOUT), s, attached
            )
        )
        for i, s in enumerate(followers)
    ]
    own_events = asyncio.create_task(read_stream(call, own))
    await attached.done.wait()
    cpu_attached = cpu_seconds()
    await own_events
    await asyncio.gather(*tasks)
    cpu_live = cpu_seconds() - cpu_attached
    complete = sum(f.events == own.events for f in followers)
    live_events = sum(len(f.events) - 1 for f in followers)  # after the replayed RunStarted
    # Followers attached before the first delta (the lag of a late one is its attach time).
    on_time = [f for f in followers if f.first_event and f.first_event < own.first_delta]
    lags = [(f.first_delta - own.first_delta) * 1000 for f in on_time]
    attach_us = (cpu_attached - cpu_before) * 1e6 / FOLLOWERS
    event_us = cpu_live * 1e6 / live_events
    record_fan_out(results, complete, attach_us, event_us, lags, len(own.events))
    print(
        f"  [{repeat + 1}/{repeats}] {FOLLOWERS} followers: {complete} got all "
        f"{len(own.events)} events; CPU {attach_us:.0f} us per attach, {event_us:.1f} us per "
        f"live event delivered; first delta +{percentile(lags, 50):.1f} ms p50, "
        f"+{percentile(lags, 99):.1f} ms p99 ({len(on_time)} attached before it)",
        flush=True,
    )


def record_fan_out(
    results: Results,
    complete: int,
    attach_us: float,
    event_us: float,
    lags: list[float],
    events: int,
) -> None:
    results.figure(
        "follow.complete", "follow", f"followers (of {FOLLOWERS}) with every event", "followers"
    ).samples.append(complete)
    results.figure(
        "follow.cpu_us_per_attach", "follow", "orchestrator CPU per follower attached", "us"
    ).samples.append(attach_us)
    results.figure(
        "follow.cpu_us_per_event", "follow", "orchestrator CPU per live event delivered", "us"
    ).samples.append(event_us)
    lag = results.figure(
        "follow.first_delta_lag_ms",
        "follow",
        "a follower's first delta after the run's own stream's, p50",
        "ms",
    )
    lag.samples.append(percentile(lags, 50))
    lag.add_extra("p99_ms", percentile(lags, 99))
    lag.add_extra("events", events)


async def measure_interrupt(
    stub: OrchestratorServiceAsyncStub, results: Results, repeats: int
) -> None:
    """Start (the model answers after MODEL_LATENCY_MS), then INTERRUPT: until the new
    run's RunStarted."""
    fig = results.figure(
        "follow.interrupt_ms", "follow", "INTERRUPT: start to the new run's RunStarted", "ms"
    )
    for repeat in range(repeats):
        latencies = []
        for i in range(20):
            session = f"intr-{repeat}-{i}"
            first = stub.Run(one(start_message(session)), timeout=OP_TIMEOUT)
            await first.read()  # RunStarted: the run waits for the model
            sent = time.perf_counter()
            second = stub.Run(
                one(start_message(session, busy_policy=run_pb2.BUSY_POLICY_INTERRUPT)),
                timeout=OP_TIMEOUT,
            )
            started = await second.read()
            assert isinstance(started, run_pb2.RunEvent)
            assert started.run_started.status == run_pb2.RUN_STATUS_RUNNING
            latencies.append((time.perf_counter() - sent) * 1000)
            second.cancel()
            first.cancel()
        fig.samples.append(percentile(latencies, 50))
        fig.add_extra("p99_ms", percentile(latencies, 99))
        print(
            f"  [{repeat + 1}/{repeats}] INTERRUPT to RunStarted: p50 "
            f"{percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms",
            flush=True,
        )
