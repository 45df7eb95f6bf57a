"""`make bench`: the orchestrator against the limits of its stack and against its peer.

Everything runs on this machine in one invocation; every server under test is a
subprocess (the echo server, the development model server, `orchestrator serve`), the
load generator and the in-process peer (the OpenAI Agents SDK) run here. Each figure is
the median over `--repeats` measurements of `--duration` seconds, taken in interleaved
rounds (A B C, A B C, ...) so that a noisy neighbour hits every figure alike; compare
the ratios, which are measured in the same run.

Sections (`--only a,b`):
  limits  bare grpc.aio bidi stream (1 request -> 20 messages), bare unary echo, bare
          openai AsyncOpenAI streaming calls (20 tokens) to the dev model server;
  runs    `Run` through the orchestrator with persisted memory: a fresh session per run
          and one session per worker (history grows), c=1 and c=32; runs/s, tokens/s,
          time to first delta (client-side, from sending the start to the first delta);
  peer    OpenAI Agents SDK `Runner.run_streamed` in process, with and without
          `SQLiteSession`, c=32;
  agents  CreateAgent / GetAgent / ListAgents QPS at 16 in flight vs the bare unary echo;
  scale   100k agents + 1M messages (generated once, cached in bench-results/): start to
          SERVING, ListAgents page p50, idle RSS; 1,000 concurrent Run streams at 1 s
          model latency;
  team    RunTeam fan-out (8 members at 200 ms) -- skipped while the RPC does not exist.

    .venv/bin/python scripts/bench.py [--quick] [--only runs,peer] [--profile]

Writes bench-results/results.json, bench-results/bench.png (copied to docs/bench.png
by a full run of every section), server logs in bench-results/logs/, and with
`--profile` py-spy profiles of the orchestrator (bench-results/profile-*.txt).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The load generator forks server subprocesses while gRPC is active; gRPC's fork handlers
# are not needed for fork+exec and only print warnings.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import grpc
import psutil
from grpc_health.v1 import health_pb2
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from orchestrator.v1 import (
    agent_pb2,
    orchestrator_service_pb2,
    orchestrator_service_pb2_grpc,
    run_pb2,
)
from orchestrator_devmodel.net import free_port

if TYPE_CHECKING:
    from orchestrator.v1.orchestrator_service_pb2_grpc import OrchestratorServiceAsyncStub

INHERITED = frozenset(os.environ)
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results"
LOGS = RESULTS / "logs"
PY = sys.executable
ECHO_SERVER = ROOT / "scripts" / "bench_echo_server.py"
SECTIONS = ("limits", "runs", "peer", "agents", "scale", "team")

TOKENS = 20
SYSTEM = "You are a benchmark agent."
QUESTION = "Benchmark question, please answer."
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": QUESTION},
]
OP_TIMEOUT = 30.0  # seconds; every single call is bounded
ECHO_REQUEST = b"\n\x0bbench-agent" + b"\x00" * 16  # about a GetAgentRequest


# -- results ------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], pct: int) -> float:
    """The pct-th percentile (inclusive method), NaN for no values."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[pct - 1])


@dataclass
class Figure:
    """One measured figure: its value in each repeat, and secondary metrics per repeat."""

    key: str
    section: str
    label: str
    unit: str
    samples: list[float] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)
    note: str = ""

    @property
    def value(self) -> float:
        return median(self.samples)

    def x(self, name: str) -> float:
        """Median of a secondary metric."""
        return median(self.extra.get(name, []))

    def add_extra(self, name: str, value: float) -> None:
        self.extra.setdefault(name, []).append(value)

    def to_json(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "label": self.label,
            "unit": self.unit,
            "median": self.value,
            "samples": self.samples,
            "extra_median": {k: median(v) for k, v in self.extra.items()},
            "extra": self.extra,
            "note": self.note,
        }


@dataclass
class Target:
    """A performance target: a measured quantity against a threshold."""

    name: str
    measured: float
    threshold: float
    higher_is_better: bool
    unit: str  # "x" for ratios, else the unit of an absolute figure
    detail: str

    @property
    def status(self) -> str:
        if self.measured != self.measured:  # NaN: not measured
            return "n/a"
        ok = (
            self.measured >= self.threshold
            if self.higher_is_better
            else self.measured <= self.threshold
        )
        return "PASS" if ok else "MISS"

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "status": self.status}


class Results:
    """All figures of the run, by key."""

    def __init__(self) -> None:
        self.figures: dict[str, Figure] = {}
        self.skipped: dict[str, str] = {}
        self.profiles: dict[str, str] = {}

    def figure(self, key: str, section: str, label: str, unit: str) -> Figure:
        if key not in self.figures:
            self.figures[key] = Figure(key, section, label, unit)
        return self.figures[key]

    def value(self, key: str) -> float:
        fig = self.figures.get(key)
        return fig.value if fig else float("nan")

    def extra(self, key: str, name: str) -> float:
        fig = self.figures.get(key)
        return fig.x(name) if fig else float("nan")


# -- processes ----------------------------------------------------------------------------


@dataclass
class Child:
    """A server subprocess."""

    name: str
    proc: asyncio.subprocess.Process
    started: float  # time.perf_counter() just before the exec

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        try:
            times = psutil.Process(self.pid).cpu_times()
        except psutil.Error:
            return float("nan")
        return float(times.user + times.system)

    def rss_mb(self) -> float:
        return float(psutil.Process(self.pid).memory_info().rss) / 2**20


async def spawn(
    name: str,
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    ready_prefix: str | None = None,
    wait_s: float = 60.0,
) -> tuple[Child, str]:
    """Start a subprocess (stderr to bench-results/logs/NAME.log); with `ready_prefix`,
    wait for the stdout line starting with it and return the rest of that line."""
    LOGS.mkdir(parents=True, exist_ok=True)
    env = dict(env if env is not None else os.environ)
    if (
        env.get("GRPC_ENABLE_FORK_SUPPORT") == "false"
        and "GRPC_ENABLE_FORK_SUPPORT" not in INHERITED
    ):
        del env["GRPC_ENABLE_FORK_SUPPORT"]
    with (LOGS / f"{name}.log").open("ab") as log:
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE if ready_prefix else asyncio.subprocess.DEVNULL,
            stderr=log,
            env=env,
            cwd=ROOT,
            start_new_session=True,  # a Ctrl-C on the bench does not hit the servers first
        )
    child = Child(name, proc, started)
    CHILDREN.append(child)
    if ready_prefix is None:
        return child, ""
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(wait_s):
            for _ in range(1000):
                line = (await proc.stdout.readline()).decode()
                if not line:
                    break
                if line.startswith(ready_prefix):
                    return child, line[len(ready_prefix) :].strip()
    except TimeoutError:
        pass
    await stop(child)
    raise RuntimeError(f"{name} did not report '{ready_prefix}' (see {LOGS / name}.log)")


CHILDREN: list[Child] = []


async def stop(child: Child, wait_s: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it does not exit in time."""
    if child.proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        child.proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(child.proc.wait(), wait_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            child.proc.kill()
        await child.proc.wait()


async def start_devmodel(
    stack: contextlib.AsyncExitStack, name: str, latency_ms: float
) -> tuple[Child, str]:
    """The dev model server (20-token answers, no recording); returns it and its URL."""
    argv = [PY, "-m", "orchestrator_devmodel", "--port", "0"]
    argv += ["--default-tokens", str(TOKENS), "--no-record"]
    if latency_ms:
        argv += ["--latency-ms", str(latency_ms)]
    child, url = await spawn(name, argv, ready_prefix="DEVMODEL_LISTENING")
    stack.push_async_callback(stop, child)
    return child, url


async def start_echo(stack: contextlib.AsyncExitStack) -> tuple[Child, str]:
    """The bare generic-handler grpc.aio server; returns it and its address."""
    child, address = await spawn(
        "echo",
        [PY, str(ECHO_SERVER), "--port", "0", "--messages", str(TOKENS)],
        ready_prefix="ECHO_LISTENING",
    )
    stack.push_async_callback(stop, child)
    return child, address


def orchestrator_env(model_url: str, max_concurrency: int | None = None) -> dict[str, str]:
    """Environment pointing the orchestrator at a dev model server only."""
    provider: dict[str, Any] = {"name": "dev", "base_url": model_url, "default_model": "dev-echo"}
    if max_concurrency is not None:
        provider["max_concurrency"] = max_concurrency
    env = dict(os.environ)
    env["ORCHESTRATOR_PROVIDERS"] = json.dumps([provider])
    env["ORCHESTRATOR_DEV_MODEL"] = "off"
    env.pop("ORCHESTRATOR_CONFIG", None)
    return env


async def start_orchestrator(
    name: str, db: Path, env: dict[str, str], *, wait_s: float = 60.0
) -> tuple[Child, str, float]:
    """`orchestrator serve` on a free port; returns it, its address and the seconds from
    the exec to the health service answering SERVING."""
    address = f"127.0.0.1:{free_port()}"
    argv = [PY, "-m", "orchestrator_server.cli", "serve", "--address", address]
    argv += ["--db", str(db), "--grace", "2", "--log-level", "WARNING"]
    child, _ = await spawn(name, argv, env=env)
    try:
        serving = await wait_serving(child, address, wait_s)
    except BaseException:
        await stop(child)
        raise
    return child, address, serving


async def health_check(channel: grpc.aio.Channel, wait_s: float) -> int:
    """The overall health status (generic call: the health stub's typing is sync-only)."""
    check: grpc.aio.UnaryUnaryMultiCallable[
        health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
    ] = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    reply = await check(health_pb2.HealthCheckRequest(), timeout=wait_s)
    return int(reply.status)


async def wait_serving(child: Child, address: str, wait_s: float) -> float:
    """Poll the port, then the health service, until SERVING; seconds since the exec."""
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if child.proc.returncode is not None:
            raise RuntimeError(f"{child.name} exited (see {LOGS / child.name}.log)")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 0.5)
        except (OSError, TimeoutError):
            await asyncio.sleep(0.005)
            continue
        writer.close()
        break
    async with grpc.aio.insecure_channel(address) as channel:
        while time.monotonic() < deadline:
            try:
                if await health_check(channel, 1.0) == health_pb2.HealthCheckResponse.SERVING:
                    return time.perf_counter() - child.started
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.005)
    raise RuntimeError(f"{child.name} not SERVING within {wait_s} s")


# -- the measurement loop -------------------------------------------------------------------

# An operation returns (seconds to the first delta or 0.0, units delivered, e.g. tokens).
Op = Callable[[int], Awaitable[tuple[float, int]]]


@dataclass
class Sample:
    """One timed measurement of an operation at some concurrency."""

    ops: int
    elapsed: float
    latencies: list[float]
    firsts: list[float]
    units: int
    cpu: dict[str, float]  # CPU seconds used by each process meanwhile

    @property
    def rate(self) -> float:
        return self.ops / self.elapsed if self.elapsed else float("nan")


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores)."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


async def measure(op: Op, concurrency: int, duration: float, procs: dict[str, Child]) -> Sample:
    """Run `concurrency` workers issuing `op` back to back for `duration` seconds."""
    latencies: list[float] = []
    firsts: list[float] = []
    units = 0
    deadline = time.perf_counter() + duration

    async def worker(index: int) -> None:
        nonlocal units
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            first, n = await asyncio.wait_for(op(index), OP_TIMEOUT)
            latencies.append(time.perf_counter() - began)
            if first:
                firsts.append(first)
            units += n

    me = psutil.Process()
    everyone = {**procs, **{c.name: c for c in CHILDREN if c.proc.returncode is None}}
    before = {name: child.cpu_seconds() for name, child in everyone.items()}
    client_before = sum(me.cpu_times()[:2])
    busy_before = busy_cpu_seconds()
    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    used = {name: child.cpu_seconds() - before[name] for name, child in everyone.items()}
    cpu = {name: used[name] for name in procs}
    cpu["client"] = sum(me.cpu_times()[:2]) - client_before
    ours = cpu["client"] + sum(v for v in used.values() if v == v)
    # CPU used by processes that are not part of the benchmark (a noisy neighbour).
    cpu["foreign"] = max(busy_cpu_seconds() - busy_before - ours, 0.0)
    return Sample(len(latencies), elapsed, latencies, firsts, units, cpu)


@dataclass
class Case:
    """A throughput figure: an operation at a concurrency, measured in rounds."""

    key: str
    section: str
    label: str
    unit: str
    concurrency: int
    op: Op
    procs: dict[str, Child]
    setup: Callable[[int], Awaitable[None]] | None = None  # called with the repeat index
    # Values the operation reports besides its timing (e.g. the server's own TTFD).
    collect: dict[str, list[float]] = field(default_factory=dict)


def record(fig: Figure, sample: Sample, collected: dict[str, list[float]] | None = None) -> None:
    """Add one repeat's sample to its figure."""
    fig.samples.append(sample.rate)
    fig.add_extra("ops", sample.ops)
    fig.add_extra("latency_p50_ms", percentile(sample.latencies, 50) * 1000)
    fig.add_extra("latency_p99_ms", percentile(sample.latencies, 99) * 1000)
    if sample.firsts:
        fig.add_extra("first_p50_ms", percentile(sample.firsts, 50) * 1000)
        fig.add_extra("first_p99_ms", percentile(sample.firsts, 99) * 1000)
    if sample.units:
        fig.add_extra("units_per_s", sample.units / sample.elapsed)
    for name, seconds in sample.cpu.items():
        fig.add_extra(f"cpu_pct.{name}", seconds / sample.elapsed * 100)
        if name != "foreign":
            fig.add_extra(f"cpu_us_per_op.{name}", seconds / max(sample.ops, 1) * 1e6)
    for name, values in (collected or {}).items():
        if values:
            fig.add_extra(f"{name}_p50", percentile(values, 50))
            fig.add_extra(f"{name}_p99", percentile(values, 99))


async def run_rounds(cases: Sequence[Case], results: Results, mode: Mode) -> None:
    """Warm every case up, then measure them in interleaved rounds."""
    for case in cases:
        if case.setup is not None:
            await case.setup(-1)
        await measure(case.op, case.concurrency, mode.warmup, case.procs)
    for repeat in range(mode.repeats):
        for case in cases:
            if case.setup is not None:
                await case.setup(repeat)
            for values in case.collect.values():
                values.clear()
            sample = await measure(case.op, case.concurrency, mode.duration, case.procs)
            fig = results.figure(case.key, case.section, case.label, case.unit)
            record(fig, sample, case.collect)
            first = (
                f", first p50 {percentile(sample.firsts, 50) * 1000:.2f} ms"
                if sample.firsts
                else ""
            )
            foreign = sample.cpu["foreign"] / sample.elapsed * 100
            noisy = f"  (other processes used {foreign:.0f}% CPU)" if foreign > 15 else ""
            print(
                f"  [{repeat + 1}/{mode.repeats}] {case.label}: {sample.rate:,.0f} "
                f"{case.unit}{first}{noisy}",
                flush=True,
            )


# -- operations -----------------------------------------------------------------------------


async def one(item: Any) -> AsyncIterator[Any]:
    """A request stream of one message, then half-close."""
    yield item


def grpc_stream_op(channel: grpc.aio.Channel) -> Op:
    """Bare bidi stream: one request, 20 messages back."""
    method: grpc.aio.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(
        "/bench.Echo/Stream"
    )

    async def op(_: int) -> tuple[float, int]:
        began = time.perf_counter()
        first = 0.0
        n = 0
        async for _message in method(one(ECHO_REQUEST), timeout=OP_TIMEOUT):
            if not n:
                first = time.perf_counter() - began
            n += 1
        assert n == TOKENS, n
        return first, n

    return op


def grpc_unary_op(channel: grpc.aio.Channel) -> Op:
    """Bare unary echo."""
    method: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        "/bench.Echo/Unary"
    )

    async def op(_: int) -> tuple[float, int]:
        await method(ECHO_REQUEST, timeout=OP_TIMEOUT)
        return 0.0, 0

    return op


def openai_op(client: AsyncOpenAI) -> Op:
    """Bare streamed chat completion (the same request the orchestrator makes)."""

    async def op(_: int) -> tuple[float, int]:
        began = time.perf_counter()
        first = 0.0
        n = 0
        stream = await client.chat.completions.create(
            model="dev-echo",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                if not n:
                    first = time.perf_counter() - began
                n += 1
        assert n == TOKENS, n
        return first, n

    return op


def start_turn(agent_id: str, session_id: str) -> run_pb2.RunRequest:
    return run_pb2.RunRequest(
        start=run_pb2.StartTurn(agent_id=agent_id, session_id=session_id, message=QUESTION)
    )


async def run_turn(
    stub: OrchestratorServiceAsyncStub,
    agent_id: str,
    session_id: str,
    wait_s: float,
    server_ttfd: list[float] | None = None,
) -> tuple[float, int]:
    """One turn on its own Run stream: (seconds to the first text delta, tokens); the
    server's own time to first delta (RunCompleted) is appended to `server_ttfd`.

    Tokens are counted in the text, not as messages: the server sends deltas that queued
    up while the stream was busy as one message."""
    began = time.perf_counter()
    first = 0.0
    n = 0
    completed = False
    async for event in stub.Run(one(start_turn(agent_id, session_id)), timeout=wait_s):
        kind = event.WhichOneof("event")
        if kind == "text_delta":
            if not n:
                first = time.perf_counter() - began
            n += len(event.text_delta.text.split())
        elif kind == "run_completed":
            completed = True
            if server_ttfd is not None:
                server_ttfd.append(event.run_completed.time_to_first_delta_ms)
    assert completed, "no run_completed"
    assert n == TOKENS, n
    return first, n


class Counters:
    """Unique ids for operations (per process run)."""

    def __init__(self) -> None:
        self._next = 0

    def take(self) -> int:
        self._next += 1
        return self._next


def run_op(
    stub: OrchestratorServiceAsyncStub,
    agent_id: str,
    sessions: str,
    collect: dict[str, list[float]],
) -> tuple[Op, Any]:
    """A Run turn; `sessions` = "fresh" (a new session per run) or "worker" (one session
    per worker and repeat, so the history grows and is sent with every call)."""
    ids = Counters()
    state = {"repeat": 0}

    async def setup(repeat: int) -> None:
        state["repeat"] = repeat + 1

    async def op(worker: int) -> tuple[float, int]:
        fresh = sessions == "fresh"
        session = f"f{ids.take()}" if fresh else f"w{worker}-r{state['repeat']}"
        return await run_turn(stub, agent_id, session, OP_TIMEOUT, server_ttfd)

    server_ttfd = collect.setdefault("server_first_ms", [])
    return op, setup


def sdk_ops(client: AsyncOpenAI, db_path: Path) -> tuple[Op, Op, Callable[[int], Awaitable[None]]]:
    """The Agents SDK: Runner.run_streamed without memory, and with SQLiteSession (one
    session per worker and repeat, like the orchestrator's "worker" sessions)."""
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        Runner,
        SQLiteSession,
        set_tracing_disabled,
    )

    set_tracing_disabled(True)
    model = OpenAIChatCompletionsModel(model="dev-echo", openai_client=client)
    agent: Any = Agent(name="bench", instructions=SYSTEM, model=model)
    sessions: dict[int, Any] = {}

    async def setup(repeat: int) -> None:
        for session in sessions.values():
            session.close()
        sessions.clear()
        for worker in range(64):
            sessions[worker] = SQLiteSession(f"w{worker}-r{repeat + 1}", db_path)

    async def turn(session: Any) -> tuple[float, int]:
        began = time.perf_counter()
        first = 0.0
        n = 0
        result = Runner.run_streamed(agent, QUESTION, session=session)
        async for event in result.stream_events():
            if event.type == "raw_response_event" and event.data.type == (
                "response.output_text.delta"
            ):
                if not n:
                    first = time.perf_counter() - began
                n += 1
        assert n == TOKENS, n
        return first, n

    async def plain(_: int) -> tuple[float, int]:
        return await turn(None)

    async def with_session(worker: int) -> tuple[float, int]:
        return await turn(sessions[worker])

    return plain, with_session, setup


# -- sections -----------------------------------------------------------------------------


@dataclass
class Mode:
    """How long and how often to measure."""

    duration: float
    repeats: int
    warmup: float
    scale_agents: int
    scale_messages: int
    streams: int
    serving_repeats: int
    list_pages: int


FULL = Mode(2.0, 5, 1.0, 100_000, 1_000_000, 1000, 3, 200)
QUICK = Mode(1.0, 2, 0.3, 100_000, 1_000_000, 1000, 2, 50)


async def create_agent(
    stub: OrchestratorServiceAsyncStub, agent_id: str, tenant: str = "default"
) -> None:
    await stub.CreateAgent(
        orchestrator_service_pb2.CreateAgentRequest(
            agent=agent_pb2.Agent(agent_id=agent_id, system_message=SYSTEM),
            if_not_exists=True,
        ),
        metadata=(("x-tenant-id", tenant),),
        timeout=OP_TIMEOUT,
    )


async def bounded_gather(n: int, limit: int, fn: Callable[[int], Awaitable[None]]) -> None:
    """fn(0..n-1) with at most `limit` in flight."""
    queue = iter(range(n))

    async def worker() -> None:
        for i in queue:
            await fn(i)

    await asyncio.gather(*(worker() for _ in range(limit)))


async def throughput_sections(
    selected: set[str], mode: Mode, results: Results, args: argparse.Namespace
) -> None:
    """Sections limits, runs, peer and agents: their servers run side by side and the
    cases are measured in interleaved rounds."""
    async with contextlib.AsyncExitStack() as stack:
        work = RESULTS / "work"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        cases: list[Case] = []
        procs: dict[str, Child] = {}
        need_model = selected & {"limits", "runs", "peer"}
        model_url = ""
        if need_model:
            procs["devmodel"], model_url = await start_devmodel(stack, "devmodel", 0)

        if "limits" in selected or "agents" in selected:
            echo, echo_address = await start_echo(stack)
            echo_channel = grpc.aio.insecure_channel(echo_address)
            stack.push_async_callback(echo_channel.close)
            ep = {"echo": echo}
            if "limits" in selected:
                stream = grpc_stream_op(echo_channel)
                cases += [
                    Case(
                        "limits.grpc_stream_c1",
                        "limits",
                        "bare grpc bidi stream (20 msgs), c=1",
                        "streams/s",
                        1,
                        stream,
                        ep,
                    ),
                    Case(
                        "limits.grpc_stream_c32",
                        "limits",
                        "bare grpc bidi stream (20 msgs), c=32",
                        "streams/s",
                        32,
                        stream,
                        ep,
                    ),
                ]
            cases.append(
                Case(
                    "limits.grpc_unary_c16",
                    "limits",
                    "bare grpc unary echo, 16 in flight",
                    "QPS",
                    16,
                    grpc_unary_op(echo_channel),
                    ep,
                )
            )

        if "limits" in selected:
            client = AsyncOpenAI(
                base_url=model_url, api_key="bench", max_retries=0, timeout=OP_TIMEOUT
            )
            stack.push_async_callback(client.close)
            op = openai_op(client)
            mp = {"devmodel": procs["devmodel"]}
            cases += [
                Case(
                    "limits.openai_c1",
                    "limits",
                    "bare openai stream (20 tokens), c=1",
                    "calls/s",
                    1,
                    op,
                    mp,
                ),
                Case(
                    "limits.openai_c32",
                    "limits",
                    "bare openai stream (20 tokens), c=32",
                    "calls/s",
                    32,
                    op,
                    mp,
                ),
            ]

        if selected & {"runs", "agents"}:
            env = orchestrator_env(model_url or "http://127.0.0.1:9/v1")
            orch, address, _ = await start_orchestrator("orchestrator", work / "bench.db", env)
            stack.push_async_callback(stop, orch)
            procs["orchestrator"] = orch
            channel = grpc.aio.insecure_channel(address)
            stack.push_async_callback(channel.close)
            stub: OrchestratorServiceAsyncStub = (
                orchestrator_service_pb2_grpc.OrchestratorServiceStub(channel)
            )
            if "runs" in selected:
                await create_agent(stub, "bench-agent")
                op_p = {"orchestrator": orch, "devmodel": procs["devmodel"]}
                for key, label, conc, sessions in (
                    ("runs.fresh_c1", "orchestrated Run, new session each, c=1", 1, "fresh"),
                    ("runs.fresh_c32", "orchestrated Run, new session each, c=32", 32, "fresh"),
                    (
                        "runs.memory_c32",
                        "orchestrated Run, session per worker (memory), c=32",
                        32,
                        "worker",
                    ),
                ):
                    collect: dict[str, list[float]] = {}
                    op, setup = run_op(stub, "bench-agent", sessions, collect)
                    cases.append(Case(key, "runs", label, "runs/s", conc, op, op_p, setup, collect))
            if "agents" in selected:
                cases += await agent_cases(stub, {"orchestrator": orch})

        if "peer" in selected:
            sdk_client = AsyncOpenAI(
                base_url=model_url, api_key="bench", max_retries=0, timeout=OP_TIMEOUT
            )
            stack.push_async_callback(sdk_client.close)
            plain, with_session, sdk_setup = sdk_ops(sdk_client, work / "sdk_sessions.db")
            mp = {"devmodel": procs["devmodel"]}
            cases += [
                Case(
                    "peer.sdk_c32",
                    "peer",
                    "Agents SDK run_streamed, no memory, c=32",
                    "runs/s",
                    32,
                    plain,
                    mp,
                ),
                Case(
                    "peer.sdk_sqlite_c32",
                    "peer",
                    "Agents SDK run_streamed + SQLiteSession, c=32",
                    "runs/s",
                    32,
                    with_session,
                    mp,
                    sdk_setup,
                ),
            ]

        order = {k: i for i, k in enumerate(CASE_ORDER)}
        cases.sort(key=lambda c: order.get(c.key, 99))
        print(
            f"measuring {len(cases)} cases: {mode.repeats} x {mode.duration:g} s each, interleaved",
            flush=True,
        )
        await run_rounds(cases, results, mode)

        if args.profile and "runs" in selected:
            for key, name in (
                ("runs.memory_c32", "runs-c32-memory"),
                ("runs.fresh_c32", "runs-c32-fresh"),
            ):
                await profile_case(next(c for c in cases if c.key == key), name, results, mode)
        if args.profile and "agents" in selected:
            for key, name in (("agents.create_c16", "create-c16"), ("agents.get_c16", "get-c16")):
                await profile_case(next(c for c in cases if c.key == key), name, results, mode)


CASE_ORDER = [
    "limits.grpc_stream_c1",
    "limits.grpc_stream_c32",
    "limits.grpc_unary_c16",
    "limits.openai_c1",
    "limits.openai_c32",
    "runs.fresh_c1",
    "runs.fresh_c32",
    "runs.memory_c32",
    "peer.sdk_c32",
    "peer.sdk_sqlite_c32",
    "agents.create_c16",
    "agents.get_c16",
    "agents.list_c16",
]


async def agent_cases(stub: OrchestratorServiceAsyncStub, procs: dict[str, Child]) -> list[Case]:
    """CreateAgent, GetAgent and ListAgents at 16 in flight (separate tenants)."""
    list_tenant = (("x-tenant-id", "bench-list"),)
    create_tenant = (("x-tenant-id", "bench-create"),)
    n_agents = 1000
    print(f"creating {n_agents} agents for GetAgent/ListAgents ...", flush=True)

    async def make(i: int) -> None:
        await create_agent(stub, f"agent-{i:05d}", "bench-list")

    await bounded_gather(n_agents, 16, make)
    ids = Counters()

    async def create(_: int) -> tuple[float, int]:
        await stub.CreateAgent(
            orchestrator_service_pb2.CreateAgentRequest(
                agent=agent_pb2.Agent(agent_id=f"c{ids.take()}", system_message=SYSTEM)
            ),
            metadata=create_tenant,
            timeout=OP_TIMEOUT,
        )
        return 0.0, 0

    rng = random.Random(8)

    async def get(_: int) -> tuple[float, int]:
        await stub.GetAgent(
            orchestrator_service_pb2.GetAgentRequest(
                agent_id=f"agent-{rng.randrange(n_agents):05d}"
            ),
            metadata=list_tenant,
            timeout=OP_TIMEOUT,
        )
        return 0.0, 0

    tokens: dict[int, str] = {}

    async def list_page(worker: int) -> tuple[float, int]:
        reply = await stub.ListAgents(
            orchestrator_service_pb2.ListAgentsRequest(
                page_size=100, page_token=tokens.get(worker, "")
            ),
            metadata=list_tenant,
            timeout=OP_TIMEOUT,
        )
        tokens[worker] = reply.next_page_token
        return 0.0, len(reply.agents)

    return [
        Case("agents.create_c16", "agents", "CreateAgent, 16 in flight", "QPS", 16, create, procs),
        Case("agents.get_c16", "agents", "GetAgent, 16 in flight", "QPS", 16, get, procs),
        Case(
            "agents.list_c16",
            "agents",
            "ListAgents (100/page of 1000), 16 in flight",
            "QPS",
            16,
            list_page,
            procs,
        ),
    ]


# -- profiling ------------------------------------------------------------------------------


def py_spy() -> str | None:
    """The py-spy binary, if installed (`uv pip install py-spy`)."""
    local = Path(PY).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


async def profile_case(case: Case, name: str, results: Results, mode: Mode) -> None:
    """Measure the case once more with py-spy sampling the orchestrator; summarise the
    samples as microseconds per operation by function."""
    spy = py_spy()
    orch = case.procs.get("orchestrator")
    if spy is None or orch is None:
        print("  (profile skipped: py-spy is not installed: uv pip install py-spy)")
        return
    seconds = max(int(mode.duration * 3), 6)
    rate = 250
    raw = RESULTS / f"profile-{name}.txt"
    print(f"profiling the orchestrator during {case.label} for {seconds} s ...", flush=True)
    spy_proc = await asyncio.create_subprocess_exec(
        spy,
        "record",
        "--pid",
        str(orch.pid),
        "--duration",
        str(seconds),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--nonblocking",
        "--output",
        str(raw),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(0.3)
    sample = await measure(case.op, case.concurrency, seconds - 0.5, case.procs)
    try:
        await asyncio.wait_for(spy_proc.wait(), seconds + 30)
    except TimeoutError:
        spy_proc.kill()
        await spy_proc.wait()
    if not raw.exists():
        print("  (py-spy wrote no profile; it needs ptrace permission)")
        return
    # The py-spy window is `seconds` long; scale the ops of the measured part to it.
    ops = sample.rate * seconds
    unit = {"runs/s": "run", "QPS": "call"}.get(case.unit, "op")
    summary = summarise_profile(raw, rate, ops, unit)
    out = RESULTS / f"profile-{name}-summary.txt"
    header = (
        f"{case.label}: {sample.rate:,.0f} {case.unit} while profiled; orchestrator CPU "
        f"{sample.cpu.get('orchestrator', 0) / max(sample.ops, 1) * 1e6:,.0f} us/op\n"
    )
    out.write_text(header + summary)
    results.profiles[name] = str(out.relative_to(ROOT))
    print(header + summary, flush=True)


def _frame_parts(frame: str) -> tuple[str, str]:
    """('function', 'file') of a py-spy frame 'function (path/file.py:line)'."""
    name, _, rest = frame.partition(" (")
    path = rest.rstrip(")").rsplit(":", 1)[0]
    return name, path


def _short(path: str) -> str:
    for marker in ("site-packages/", "orchestrator_server/", "lib/python3"):
        if marker in path:
            return (
                path.split(marker, 1)[1]
                if marker != "orchestrator_server/"
                else ("orchestrator_server/" + path.split(marker, 1)[1])
            )
    return path


def _area(path: str) -> str:
    """Which part of the stack a file belongs to."""
    short = _short(path)
    for prefix, area in (
        ("orchestrator_server/", "orchestrator"),
        ("grpc", "grpc"),
        ("openai", "openai"),
        ("httpx", "httpx"),
        ("httpcore", "httpx"),
        ("h11", "httpx"),
        ("anyio", "anyio"),
        ("pydantic", "pydantic"),
        ("google/protobuf", "protobuf"),
        ("sqlite", "sqlite"),
        ("asyncio", "asyncio"),
        ("concurrent", "threads"),
        ("threading", "threads"),
        ("uvloop", "asyncio"),
    ):
        if short.startswith(prefix) or f"/{prefix}" in short:
            return area
    return short.split("/", 1)[0] or "?"


def summarise_profile(raw: Path, rate: int, ops: float, unit: str) -> str:
    """Self and inclusive cost per operation by function, and self cost by area."""
    self_cost: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if " (" in f]
        if not frames:
            continue
        total += count
        leaf_name, leaf_path = _frame_parts(frames[-1])
        self_cost[f"{leaf_name} ({_short(leaf_path)})"] += count
        areas[_area(leaf_path)] += count
        seen: set[str] = set()
        for frame in frames:
            name, path = _frame_parts(frame)
            key = f"{name} ({_short(path)})"
            if key not in seen:
                seen.add(key)
                incl[key] += count
    if not total or not ops:
        return "no samples\n"

    def us(count: int) -> str:
        return f"{count / rate / ops * 1e6:8.0f} us/{unit}"

    lines = [
        f"{total} samples at {rate} Hz over {ops:,.0f} {unit}s "
        f"= {total / rate / ops * 1e6:,.0f} us of Python-visible time per {unit}"
    ]
    lines.append("\nself time by area:")
    lines += [f"  {us(c)}  {k}" for k, c in areas.most_common(12)]
    lines.append("\nself time by function (top 25):")
    lines += [f"  {us(c)}  {k}" for k, c in self_cost.most_common(25)]
    lines.append("\ninclusive time, orchestrator_server functions (top 25):")
    ours = [(k, c) for k, c in incl.most_common() if "orchestrator_server/" in k][:25]
    lines += [f"  {us(c)}  {k}" for k, c in ours]
    lines.append("\ninclusive time, all functions (top 30):")
    lines += [f"  {us(c)}  {k}" for k, c in incl.most_common(30)]
    return "\n".join(lines) + "\n"


# -- scale ----------------------------------------------------------------------------------

SCALE_MARKER = "bench_scale"


def scale_db_path(mode: Mode) -> Path:
    return RESULTS / f"scale-{mode.scale_agents}a-{mode.scale_messages}m.db"


def schema_version() -> int:
    """The schema version the server in this tree migrates to."""
    from orchestrator_server.store.migrations import MIGRATIONS

    return len(MIGRATIONS)


def cached_scale_state(path: Path, mode: Mode) -> tuple[bool, int]:
    """(whether the cached file holds the generated rows, its schema version)."""
    if not path.exists():
        return False, 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (SCALE_MARKER,)).fetchone()
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error:
        return False, 0
    return bool(row) and row[0] == f"{mode.scale_agents}/{mode.scale_messages}", version


async def ensure_scale_db(mode: Mode) -> Path:
    """The cached 100k-agent / 1M-message database (generated on first use; migrated by
    the server when the schema has moved on since)."""
    path = scale_db_path(mode)
    populated, version = cached_scale_state(path, mode)
    env = orchestrator_env("http://127.0.0.1:9/v1")
    if populated:
        if version != schema_version():
            print(
                f"migrating the cached scale database (schema v{version} -> "
                f"v{schema_version()}) ...",
                flush=True,
            )
            child, _, _ = await start_orchestrator("scale-migrate", path, env)
            await stop(child)
        print(f"using the cached scale database {path.relative_to(ROOT)}", flush=True)
        return path
    remove_db(path)
    print(
        f"generating {path.relative_to(ROOT)} ({mode.scale_agents:,} agents, "
        f"{mode.scale_messages:,} messages; cached for later runs) ...",
        flush=True,
    )
    began = time.perf_counter()
    # The server creates the schema (its migrations), then we write rows directly.
    child, _, _ = await start_orchestrator("scale-schema", path, env)
    await stop(child)
    await asyncio.to_thread(populate, path, mode.scale_agents, mode.scale_messages)
    print(
        f"  generated in {time.perf_counter() - began:.1f} s "
        f"({path.stat().st_size / 2**20:.0f} MiB)",
        flush=True,
    )
    return path


def populate(path: Path, n_agents: int, n_messages: int) -> None:
    """Agents a000000.., sessions of 20 messages (10 turns, with their runs) spread over
    the first agents, all in tenant "default"."""
    from orchestrator_server.core.types import AgentSpec, ModelSpec
    from orchestrator_server.store.sqlite import spec_to_json

    per_session = 20
    now = time.time() - 86_400
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")

        def agents() -> Iterator[tuple[Any, ...]]:
            for i in range(n_agents):
                spec = spec_to_json(
                    AgentSpec(
                        system_message=f"You are agent {i}, a helpful assistant.",
                        description=f"generated agent {i}",
                        model=ModelSpec(),
                        labels={"team": f"t{i % 100}"},
                    )
                )
                yield ("default", f"a{i:06d}", spec, now + i * 1e-3, now + i * 1e-3, 1)

        conn.executemany(
            "INSERT INTO agents(tenant, agent_id, spec, create_time, update_time, revision) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            agents(),
        )
        conn.execute(
            "INSERT OR REPLACE INTO tenants(tenant, default_agent_id) VALUES ('default', ?)",
            ("a000000",),
        )
        n_sessions = n_messages // per_session
        user = "Please summarise the quarterly figures for the northern region."
        answer = " ".join(f"tok{k}" for k in range(1, TOKENS + 1))

        def session_keys() -> Iterator[tuple[int, str, str]]:
            for k in range(n_sessions):
                yield k, f"a{k % n_agents:06d}", f"s{k // n_agents}"

        conn.executemany(
            "INSERT INTO sessions(tenant, agent_id, session_id, message_count, create_time, "
            "update_time) VALUES ('default', ?, ?, ?, ?, ?)",
            ((a, s, per_session, now, now + 10) for _, a, s in session_keys()),
        )

        def run_id(k: int, turn: int) -> str:
            return f"run_{int((now + k * 0.01) * 1e6):014x}{k * 16 + turn:012x}"

        def messages() -> Iterator[tuple[Any, ...]]:
            for k, a, s in session_keys():
                for seq in range(1, per_session + 1):
                    turn = (seq - 1) // 2
                    role, content = ("user", user) if seq % 2 else ("assistant", answer)
                    yield (a, s, seq, role, content, run_id(k, turn), now + k * 0.01 + seq)

        conn.executemany(
            "INSERT INTO messages(tenant, agent_id, session_id, seq, role, content, tool_calls, "
            "tool_call_id, run_id, create_time) VALUES ('default', ?, ?, ?, ?, ?, '[]', '', ?, ?)",
            messages(),
        )

        def runs() -> Iterator[tuple[Any, ...]]:
            for k, a, s in session_keys():
                for turn in range(per_session // 2):
                    t = now + k * 0.01 + 2 * turn
                    yield (run_id(k, turn), a, s, user, t, answer, 12, TOKENS, t, t + 0.05)

        conn.executemany(
            "INSERT INTO runs(tenant, run_id, agent_id, session_id, status, input, create_time, "
            "request_id, parent_run_id, output, prompt_tokens, completion_tokens, error_reason, "
            "error_message, start_time, end_time) VALUES ('default', ?, ?, ?, 'completed', ?, ?, "
            "'', '', ?, ?, ?, '', '', ?, ?)",
            runs(),
        )
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
            (SCALE_MARKER, f"{n_agents}/{n_messages}"),
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def remove_db(path: Path) -> None:
    """Delete a SQLite file with its WAL and shared-memory files."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def copy_db(source: Path, target: Path) -> None:
    remove_db(target)
    shutil.copyfile(source, target)


async def scale_section(mode: Mode, results: Results, args: argparse.Namespace) -> None:
    """Start-up, list latency and memory on a big database; 1,000 streams at 1 s."""
    cached = await ensure_scale_db(mode)
    work = RESULTS / "work"
    work.mkdir(parents=True, exist_ok=True)
    db = work / "scale.db"
    copy_db(cached, db)
    async with contextlib.AsyncExitStack() as stack:
        _, model_url = await start_devmodel(stack, "devmodel-1s", 1000)
        # The provider's default cap of 256 calls in flight would queue 1,000 streams in
        # four waves; an operator serving 1,000 streams raises it (max_concurrency).
        env = orchestrator_env(model_url, max_concurrency=args.provider_concurrency)

        fig_empty = results.figure(
            "scale.serving_empty_s", "scale", "start to SERVING, empty database", "s"
        )
        fig_serving = results.figure(
            "scale.serving_s",
            "scale",
            f"start to SERVING, {mode.scale_agents // 1000}k agents / "
            f"{mode.scale_messages // 1_000_000}M messages",
            "s",
        )
        fig_pyc = results.figure(
            "scale.serving_pyc_s",
            "scale",
            "start to SERVING, same, bytecode cached",
            "s",
        )
        # This environment sets PYTHONDONTWRITEBYTECODE=1 and the venv is installed without
        # compiled bytecode, so every start compiles openai & co. from source; a private
        # pycache shows the start-up of a deployment that ships bytecode.
        pyc_env = dict(env)
        pyc_env.pop("PYTHONDONTWRITEBYTECODE", None)
        pyc_env["PYTHONPYCACHEPREFIX"] = str(RESULTS / "pycache")
        warm = work / "pyc-warm.db"
        remove_db(warm)
        child, _, _ = await start_orchestrator("scale-pyc-warm", warm, pyc_env)
        await stop(child)
        for repeat in range(mode.serving_repeats):
            empty = work / f"empty-{repeat}.db"
            remove_db(empty)
            child, _, seconds = await start_orchestrator("scale-empty", empty, env)
            await stop(child)
            fig_empty.samples.append(seconds)
            child, _, seconds = await start_orchestrator("scale-pyc", db, pyc_env)
            await stop(child)
            fig_pyc.samples.append(seconds)
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
        stack.push_async_callback(stop, child)
        orch = child
        address = f"127.0.0.1:{_port_of(orch)}"
        rss_start = orch.rss_mb()

        channel = grpc.aio.insecure_channel(address)
        stack.push_async_callback(channel.close)
        stub: OrchestratorServiceAsyncStub = orchestrator_service_pb2_grpc.OrchestratorServiceStub(
            channel
        )
        # ListAgents pages, one at a time, walking the first pages of 100k agents.
        fig_list = results.figure(
            "scale.list_page_ms", "scale", "ListAgents page of 100 (100k agents), c=1", "ms"
        )
        for _repeat in range(mode.repeats):
            token = ""
            latencies: list[float] = []
            for _ in range(mode.list_pages):
                began = time.perf_counter()
                reply = await stub.ListAgents(
                    orchestrator_service_pb2.ListAgentsRequest(page_size=100, page_token=token),
                    timeout=OP_TIMEOUT,
                )
                latencies.append(time.perf_counter() - began)
                assert len(reply.agents) == 100
                token = reply.next_page_token
            fig_list.samples.append(percentile(latencies, 50) * 1000)
            fig_list.add_extra("p99_ms", percentile(latencies, 99) * 1000)
        print(f"  ListAgents page p50 {fig_list.value:.2f} ms", flush=True)
        await asyncio.sleep(1.0)
        fig_rss = results.figure("scale.idle_rss_mb", "scale", "idle RSS of the server", "MB")
        fig_rss.samples.append(orch.rss_mb())
        fig_rss.add_extra("rss_after_start_mb", rss_start)
        print(f"  idle RSS {fig_rss.value:.0f} MB (after start {rss_start:.0f} MB)", flush=True)

        # 1,000 concurrent Run streams, each its own agent and new session, at 1 s latency.
        fig_streams = results.figure(
            "scale.streams_s",
            "scale",
            f"{mode.streams:,} concurrent Run streams at 1 s model latency",
            "s",
        )
        fig_streams.note = f"provider max_concurrency={args.provider_concurrency}"
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
        if args.profile:
            await profile_streams(stub, orch, mode, results)


def _port_of(child: Child) -> int:
    for conn in psutil.Process(child.pid).net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN:
            return int(conn.laddr.port)
    raise RuntimeError("server listens on no port")


async def streams_once(
    stub: OrchestratorServiceAsyncStub, n: int, tag: str, orch: Child
) -> tuple[float, dict[str, float]]:
    """n Run streams at once; wall time until the last completes."""
    me = psutil.Process()
    cpu0 = orch.cpu_seconds()
    client0 = sum(me.cpu_times()[:2])
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
    cpu = {"orchestrator": orch.cpu_seconds() - cpu0, "client": sum(me.cpu_times()[:2]) - client0}
    cpu["machine"] = busy_cpu_seconds() - busy0
    return wall, cpu


async def profile_streams(
    stub: OrchestratorServiceAsyncStub, orch: Child, mode: Mode, results: Results
) -> None:
    spy = py_spy()
    if spy is None:
        return
    raw = RESULTS / "profile-streams-1000.txt"
    rate = 250
    seconds = 20  # longer than the run: py-spy does not count idle samples
    print("profiling the orchestrator during 1,000 streams ...", flush=True)
    spy_proc = await asyncio.create_subprocess_exec(
        spy,
        "record",
        "--pid",
        str(orch.pid),
        "--duration",
        str(seconds),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--nonblocking",
        "--output",
        str(raw),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(0.3)
    wall, _ = await streams_once(stub, mode.streams, "prof", orch)
    await asyncio.wait_for(spy_proc.wait(), seconds + 30)
    if raw.exists():
        summary = summarise_profile(raw, rate, mode.streams, "run")
        out = RESULTS / "profile-streams-1000-summary.txt"
        out.write_text(f"{mode.streams} streams in {wall:.2f} s while profiled\n" + summary)
        results.profiles["streams-1000"] = str(out.relative_to(ROOT))
        print(summary, flush=True)


# -- team -----------------------------------------------------------------------------------


def collaboration_messages() -> Any:
    """The module holding Team / RunTeamRequest (collaboration_pb2 once it exists)."""
    import importlib

    try:
        return importlib.import_module("orchestrator.v1.collaboration_pb2")
    except ImportError:
        return orchestrator_service_pb2


async def team_section(mode: Mode, results: Results) -> None:
    """RunTeam fan-out: 8 members and a coordinator, every model call 200 ms. Written
    against the planned API (CreateTeam(team{team_id, members, coordinator}),
    RunTeam(RunTeamRequest{team_id, task}) -> stream of events); skipped with a message
    while the stub lacks the RPC or the server answers UNIMPLEMENTED."""
    message = "RunTeam not available in this build"
    pb: Any = orchestrator_service_pb2
    collab = collaboration_messages()
    stub_class: Any = orchestrator_service_pb2_grpc.OrchestratorServiceStub
    with grpc.insecure_channel("127.0.0.1:9") as probe_channel:
        probe = stub_class(probe_channel)
        present = hasattr(probe, "RunTeam") and hasattr(probe, "CreateTeam")
    if not present or not hasattr(collab, "RunTeamRequest") or not hasattr(collab, "Team"):
        results.skipped["team"] = message
        print(f"  skipped: {message}", flush=True)
        return
    latency_ms = 200.0
    members = 8
    work = RESULTS / "work"
    work.mkdir(parents=True, exist_ok=True)
    async with contextlib.AsyncExitStack() as stack:
        _, model_url = await start_devmodel(stack, "devmodel-200ms", latency_ms)
        db = work / "team.db"
        remove_db(db)
        orch, address, _ = await start_orchestrator("team", db, orchestrator_env(model_url))
        stack.push_async_callback(stop, orch)
        channel = grpc.aio.insecure_channel(address)
        stack.push_async_callback(channel.close)
        stub: Any = orchestrator_service_pb2_grpc.OrchestratorServiceStub(channel)
        member_ids = [f"member-{i}" for i in range(members)]
        for agent_id in [*member_ids, "coordinator"]:
            await create_agent(stub, agent_id)
        team_id = "bench-team"
        try:
            await stub.CreateTeam(
                pb.CreateTeamRequest(
                    team=collab.Team(team_id=team_id, members=member_ids, coordinator="coordinator")
                ),
                timeout=OP_TIMEOUT,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
            results.skipped["team"] = message + " (the server answers UNIMPLEMENTED)"
            print(f"  skipped: {results.skipped['team']}", flush=True)
            return

        async def once() -> float:
            began = time.perf_counter()
            call = stub.RunTeam(
                collab.RunTeamRequest(team_id=team_id, task=QUESTION), timeout=OP_TIMEOUT
            )
            if hasattr(call, "__aiter__"):
                async for _event in call:
                    pass
            else:
                await call
            return time.perf_counter() - began

        async def member_once(i: int) -> float:
            began = time.perf_counter()
            await run_turn(stub, "member-0", f"single-{i}", OP_TIMEOUT)
            return time.perf_counter() - began

        await once()
        await member_once(0)
        fig = results.figure(
            "team.fanout_s",
            "team",
            f"RunTeam, {members} members + coordinator at {latency_ms:.0f} ms",
            "s",
        )
        single = results.figure(
            "team.member_s", "team", f"one member's Run at {latency_ms:.0f} ms", "s"
        )
        for repeat in range(mode.repeats):
            fig.samples.append(await once())
            single.samples.append(await member_once(repeat + 1))
        print(f"  RunTeam: {fig.value:.3f} s; one member {single.value:.3f} s", flush=True)


# -- report ---------------------------------------------------------------------------------


def targets(results: Results) -> list[Target]:
    """The issue's targets, as ratios measured in this run."""
    r = results
    runs = r.value("runs.memory_c32")
    ttfd_overhead = r.extra("runs.fresh_c1", "first_p50_ms") - r.extra(
        "limits.openai_c1", "first_p50_ms"
    )
    echo = r.value("limits.grpc_unary_c16")
    # member + coordinator: two orchestrated turns at the team's model latency.
    team_budget = 1.3 * 2 * r.value("team.member_s")
    return [
        Target(
            "orchestrated runs/s c=32 vs bare openai calls/s c=32",
            runs / r.value("limits.openai_c32"),
            0.65,
            True,
            "x",
            "runs.memory_c32 / limits.openai_c32",
        ),
        Target(
            "orchestrated runs/s c=32 vs Agents SDK + SQLiteSession",
            runs / r.value("peer.sdk_sqlite_c32"),
            2.0,
            True,
            "x",
            "runs.memory_c32 / peer.sdk_sqlite_c32",
        ),
        Target(
            "time to first delta p50 overhead vs bare openai (c=1)",
            ttfd_overhead,
            1.0,
            False,
            "ms",
            "runs.fresh_c1 first_p50 - limits.openai_c1 first_p50",
        ),
        Target(
            "CreateAgent QPS vs bare unary echo",
            r.value("agents.create_c16") / echo,
            0.5,
            True,
            "x",
            "agents.create_c16 / limits.grpc_unary_c16",
        ),
        Target(
            "GetAgent QPS vs bare unary echo",
            r.value("agents.get_c16") / echo,
            0.7,
            True,
            "x",
            "agents.get_c16 / limits.grpc_unary_c16",
        ),
        Target(
            "start to SERVING, 100k agents / 1M messages",
            r.value("scale.serving_s"),
            1.0,
            False,
            "s",
            "scale.serving_s",
        ),
        Target(
            "ListAgents page p50, 100k agents",
            r.value("scale.list_page_ms"),
            5.0,
            False,
            "ms",
            "scale.list_page_ms",
        ),
        Target(
            "idle RSS, 100k agents / 1M messages",
            r.value("scale.idle_rss_mb"),
            150.0,
            False,
            "MB",
            "scale.idle_rss_mb",
        ),
        Target(
            "1,000 streams at 1 s model latency",
            r.value("scale.streams_s"),
            1.5,
            False,
            "s",
            "scale.streams_s",
        ),
        Target(
            "team fan-out vs 1.3 x (member + coordinator)",
            r.value("team.fanout_s"),
            team_budget,
            False,
            "s",
            "team.fanout_s",
        ),
    ]


RATIO_BASE = {
    "limits.grpc_stream_c32": "limits.grpc_stream_c1",
    "limits.openai_c32": "limits.openai_c1",
    "runs.fresh_c1": "limits.openai_c1",
    "runs.fresh_c32": "limits.openai_c32",
    "runs.memory_c32": "limits.openai_c32",
    "peer.sdk_c32": "limits.openai_c32",
    "peer.sdk_sqlite_c32": "limits.openai_c32",
    "agents.create_c16": "limits.grpc_unary_c16",
    "agents.get_c16": "limits.grpc_unary_c16",
    "agents.list_c16": "limits.grpc_unary_c16",
    "scale.serving_s": "scale.serving_empty_s",
    "scale.serving_pyc_s": "scale.serving_s",
    "team.fanout_s": "team.member_s",
}


def fmt(value: float, digits: int = 0) -> str:
    if value != value:
        return "-"
    return f"{value:,.{digits}f}"


def print_report(results: Results) -> None:
    """The figures with their ratios, then the targets."""
    print("\n" + "=" * 108)
    print(f"{'figure':<56} {'median':>12} {'unit':<10} {'ratio':>16}  samples")
    print("-" * 108)
    section = ""
    for key, fig in results.figures.items():
        if fig.section != section:
            section = fig.section
            print(f"[{section}]")
        digits = 2 if fig.unit in {"s", "ms"} else 0
        base = RATIO_BASE.get(key)
        ratio = ""
        if base and base in results.figures:
            ratio = f"{fig.value / results.value(base):.2f}x {base.split('.')[1]}"
        samples = ", ".join(fmt(s, digits) for s in fig.samples)
        print(
            f"  {fig.label:<54} {fmt(fig.value, digits):>12} {fig.unit:<10} {ratio:>16}  "
            f"[{samples}]"
        )
        if "first_p50_ms" in fig.extra:
            extra = (
                f"first delta p50 {fig.x('first_p50_ms'):.2f} ms, "
                f"p99 {fig.x('first_p99_ms'):.2f} ms"
            )
            if "server_first_ms_p50" in fig.extra:
                extra += f" (server-side p50 {fig.x('server_first_ms_p50'):.2f} ms)"
            if "units_per_s" in fig.extra and fig.unit != "streams/s":
                extra += f"; {fig.x('units_per_s'):,.0f} tokens/s"
            print(f"  {'':<4}{extra}")
        cpu = {k.split(".", 1)[1]: v for k, v in fig.extra.items() if k.startswith("cpu_us")}
        if cpu:
            parts = ", ".join(f"{name} {median(v):,.0f}" for name, v in cpu.items())
            foreign = fig.extra.get("cpu_pct.foreign", [])
            noise = f"; other processes {max(foreign):.0f}% CPU at worst" if foreign else ""
            print(f"  {'':<4}CPU us/op: {parts}{noise}")
    for name, message in results.skipped.items():
        print(f"[{name}]\n  skipped: {message}")
    print("\n" + "=" * 108)
    print(f"{'target':<58} {'measured':>10} {'needed':>12}  result")
    print("-" * 108)
    for t in targets(results):
        sign = ">=" if t.higher_is_better else "<="
        digits = 2
        measured = fmt(t.measured, digits) + (t.unit if t.unit == "x" else f" {t.unit}")
        needed = f"{sign} {t.threshold:.2f}" + (t.unit if t.unit == "x" else f" {t.unit}")
        print(f"  {t.name:<56} {measured:>10} {needed:>12}  {t.status}")
    print("=" * 108, flush=True)


def environment(mode: Mode, args: argparse.Namespace) -> dict[str, Any]:
    import importlib.metadata as md

    def version(name: str) -> str:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "-"

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    try:
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "service", "proto", "client/python"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        ).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        dirty = []
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": commit,
        # Uncommitted changes in the code under test (the bench measures the working tree).
        "uncommitted": dirty,
        "load_average_at_end": os.getloadavg(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "client_loop": "asyncio" if args.no_uvloop else "uvloop",
        "mode": dataclasses.asdict(mode),
        "quick": args.quick,
        "versions": {
            n: version(n) for n in ("grpcio", "openai", "openai-agents", "protobuf", "uvloop")
        },
    }


def write_json(results: Results, mode: Mode, args: argparse.Namespace, path: Path) -> None:
    data = {
        "environment": environment(mode, args),
        "figures": {k: f.to_json() for k, f in results.figures.items()},
        "targets": [t.to_json() for t in targets(results)],
        "skipped": results.skipped,
        "profiles": results.profiles,
    }
    path.write_text(json.dumps(data, indent=2, allow_nan=True) + "\n")


def chart(results: Results, path: Path) -> None:
    """Four panels: run throughput, time to first delta, agent management, targets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = results
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    grey, blue, orange, green, red = "#9e9e9e", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"

    def bars(ax: Any, items: list[tuple[str, str, str]], title: str, unit: str) -> None:
        shown = [(label, r.value(key), color) for label, key, color in items if key in r.figures]
        if not shown:
            ax.set_axis_off()
            ax.set_title(title + " (not measured)")
            return
        labels = [s[0] for s in shown]
        values = [s[1] for s in shown]
        ax.barh(labels, values, color=[s[2] for s in shown])
        ax.invert_yaxis()
        ax.set_title(title)
        ax.set_xlabel(unit)
        top = max(values)
        for i, value in enumerate(values):
            ax.text(value + top * 0.01, i, f"{value:,.0f}", va="center", fontsize=8)
        ax.set_xlim(0, top * 1.15)

    bars(
        axes[0][0],
        [
            ("bare grpc stream (20 msgs)", "limits.grpc_stream_c32", grey),
            ("bare openai stream (20 tok)", "limits.openai_c32", grey),
            ("orchestrator Run, new sessions", "runs.fresh_c32", blue),
            ("orchestrator Run, memory", "runs.memory_c32", blue),
            ("Agents SDK", "peer.sdk_c32", orange),
            ("Agents SDK + SQLiteSession", "peer.sdk_sqlite_c32", orange),
        ],
        "Streams / runs per second, concurrency 32 (higher is better)",
        "per second",
    )
    bars(
        axes[1][0],
        [
            ("bare unary echo", "limits.grpc_unary_c16", grey),
            ("CreateAgent", "agents.create_c16", blue),
            ("GetAgent", "agents.get_c16", blue),
            ("ListAgents (100/page)", "agents.list_c16", blue),
        ],
        "Agent management, 16 in flight (higher is better)",
        "QPS",
    )

    ax = axes[0][1]
    groups = [
        ("openai c=1", "limits.openai_c1", grey),
        ("Run c=1", "runs.fresh_c1", blue),
        ("openai c=32", "limits.openai_c32", grey),
        ("Run c=32", "runs.memory_c32", blue),
    ]
    shown = [(label, key, color) for label, key, color in groups if key in r.figures]
    if shown:
        xs = range(len(shown))
        p50 = [r.extra(k, "first_p50_ms") for _, k, _ in shown]
        p99 = [r.extra(k, "first_p99_ms") for _, k, _ in shown]
        ax.bar([x - 0.2 for x in xs], p50, 0.4, color=[c for *_, c in shown], label="p50")
        ax.bar(
            [x + 0.2 for x in xs], p99, 0.4, color=[c for *_, c in shown], alpha=0.45, label="p99"
        )
        ax.set_xticks(list(xs), [s[0] for s in shown])
        for x, a, b in zip(xs, p50, p99, strict=True):
            ax.text(x - 0.2, a, f"{a:.1f}", ha="center", va="bottom", fontsize=8)
            ax.text(x + 0.2, b, f"{b:.1f}", ha="center", va="bottom", fontsize=8)
        ax.legend()
    ax.set_title("Time to first delta, client-side (lower is better)")
    ax.set_ylabel("ms (p50 solid, p99 light)")

    ax = axes[1][1]
    ts = [t for t in targets(r) if t.status != "n/a"]
    if ts:
        # How far each target is met: >= 1 means met, whichever way the target points.
        def score(t: Target) -> float:
            if t.higher_is_better:
                return t.measured / t.threshold
            return t.threshold / t.measured if t.measured > 0 else 3.0

        names = [t.name.replace(" vs ", "\nvs ") for t in ts]
        scores = [min(score(t), 3.0) for t in ts]
        colors = [green if t.status == "PASS" else red for t in ts]
        ax.barh(names, scores, color=colors)
        ax.invert_yaxis()
        ax.axvline(1.0, color="black", linewidth=1)
        for i, (t, sc) in enumerate(zip(ts, scores, strict=True)):
            text = f"{t.measured:.2f}{t.unit}" if t.unit == "x" else f"{t.measured:.2f} {t.unit}"
            ax.text(sc, i, f" {text} {t.status}", va="center", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xlim(0, 3.6)
        ax.set_xlabel("target met by a factor of (1 = just met; capped at 3)")
        ax.set_title("Targets (green PASS, red MISS)")
    else:
        ax.set_axis_off()
    fig.suptitle(
        f"Agent orchestrator benchmark ({os.cpu_count()} cores, one machine, "
        f"medians of repeated runs)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- main -----------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace) -> int:
    mode = QUICK if args.quick else FULL
    if args.duration:
        mode = dataclasses.replace(mode, duration=args.duration)
    if args.repeats:
        mode = dataclasses.replace(mode, repeats=args.repeats)
    selected = set(args.only.split(",")) if args.only else set(SECTIONS)
    unknown = selected - set(SECTIONS)
    if unknown:
        print(f"unknown sections: {', '.join(sorted(unknown))} (have {', '.join(SECTIONS)})")
        return 2
    RESULTS.mkdir(exist_ok=True)
    results = Results()
    began = time.perf_counter()
    print(
        f"bench: sections {', '.join(s for s in SECTIONS if s in selected)}; "
        f"{'quick' if args.quick else 'full'} mode; {os.cpu_count()} cores",
        flush=True,
    )
    load = os.getloadavg()[0]
    if load > 0.5:
        print(
            f"note: load average {load:.1f} before starting: other processes share the "
            "cores, figures will be noisier (compare ratios; each sample notes the CPU "
            "other processes used)",
            flush=True,
        )
    if selected & {"limits", "runs", "peer", "agents"}:
        await throughput_sections(selected, mode, results, args)
    if "scale" in selected:
        print("[scale]", flush=True)
        await scale_section(mode, results, args)
    if "team" in selected:
        print("[team]", flush=True)
        await team_section(mode, results)
    print_report(results)
    write_json(results, mode, args, RESULTS / "results.json")
    chart(results, RESULTS / "bench.png")
    if selected == set(SECTIONS) and not args.quick:
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(RESULTS / "bench.png", ROOT / "docs" / "bench.png")
    print(
        f"wrote bench-results/results.json and bench-results/bench.png "
        f"in {time.perf_counter() - began:.0f} s"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a ~1 minute smoke run")
    parser.add_argument("--only", default="", help=f"comma-separated: {','.join(SECTIONS)}")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds per measurement")
    parser.add_argument("--repeats", type=int, default=0, help="measurements per figure")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the orchestrator during Run c=32, CreateAgent and the "
        "1,000 streams (needs py-spy)",
    )
    parser.add_argument(
        "--provider-concurrency",
        type=int,
        default=2048,
        help="the dev provider's max_concurrency in the scale section",
    )
    parser.add_argument("--no-uvloop", action="store_true", help="load generator on asyncio")
    args = parser.parse_args()
    if args.no_uvloop:
        return asyncio.run(main_async(args))
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
