"""The load driver: an operation issued back to back by N workers for a fixed time.

Figures are measured in interleaved rounds (A B C, A B C, ...) so that a noisy neighbour
hits every figure alike; each sample also records the CPU every process used meanwhile,
including the CPU used by processes that are not part of the benchmark.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil

from .config import OP_TIMEOUT, Mode
from .results import Figure, Results, percentile
from .servers import CHILDREN, Child

# An operation, called with its worker's index, returns (seconds to the first delta or
# 0.0, units delivered, e.g. tokens).
Op = Callable[[int], Awaitable[tuple[float, int]]]
# Called before the warm-up (with -1) and before each repeat (with its index).
Setup = Callable[[int], Awaitable[None]]


class FirstDelta:
    """The units (messages, tokens) of one streamed operation and the seconds from its
    start to the first of them: what a streaming `Op` returns."""

    __slots__ = ("began", "first", "units")

    def __init__(self) -> None:
        self.began = time.perf_counter()
        self.first = 0.0
        self.units = 0

    def add(self, units: int) -> None:
        if not self.units:
            self.first = time.perf_counter() - self.began
        self.units += units

    def result(self, expected: int) -> tuple[float, int]:
        """(first, units), asserting that all `expected` units arrived."""
        assert self.units == expected, self.units
        return self.first, self.units


async def one(item: Any) -> AsyncIterator[Any]:
    """A request stream of one message, then half-close."""
    yield item


class Counters:
    """Unique ids for operations (per process run)."""

    def __init__(self) -> None:
        self._next = 0

    def take(self) -> int:
        self._next += 1
        return self._next


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


def own_cpu_seconds() -> float:
    """CPU seconds (user + system) of the load generator itself."""
    return float(sum(psutil.Process().cpu_times()[:2]))


class CpuMeter:
    """CPU used between construction and `used()`: by the named processes, by the load
    generator ("client") and by processes outside the benchmark ("foreign")."""

    def __init__(self, procs: dict[str, Child]) -> None:
        self.procs = procs
        # Every live server counts as ours, measured or not, so it is not taken as foreign.
        self.everyone = {**procs, **{c.name: c for c in CHILDREN if c.proc.returncode is None}}
        self.before = {name: child.cpu_seconds() for name, child in self.everyone.items()}
        self.client_before = own_cpu_seconds()
        self.busy_before = busy_cpu_seconds()

    def used(self) -> dict[str, float]:
        used = {name: c.cpu_seconds() - self.before[name] for name, c in self.everyone.items()}
        cpu = {name: used[name] for name in self.procs}
        cpu["client"] = own_cpu_seconds() - self.client_before
        ours = cpu["client"] + sum(v for v in used.values() if v == v)
        cpu["foreign"] = max(busy_cpu_seconds() - self.busy_before - ours, 0.0)
        return cpu


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

    meter = CpuMeter(procs)
    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    return Sample(len(latencies), elapsed, latencies, firsts, units, meter.used())


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
    setup: Setup | None = None
    # Values the operation reports besides its timing (e.g. the server's own TTFD).
    collect: dict[str, list[float]] = field(default_factory=dict)


def cases_of(
    section: str,
    unit: str,
    op: Op,
    procs: dict[str, Child],
    variants: Sequence[tuple[str, str, int]],
    setup: Setup | None = None,
) -> list[Case]:
    """One case per (key, label, concurrency) of the same operation."""
    return [
        Case(key, section, label, unit, conc, op, procs, setup) for key, label, conc in variants
    ]


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


def progress_line(case: Case, sample: Sample, repeat: int, repeats: int) -> str:
    """`[2/5] label: rate unit, first p50 ...`, flagging a sample taken on a busy machine."""
    first = f", first p50 {percentile(sample.firsts, 50) * 1000:.2f} ms" if sample.firsts else ""
    foreign = sample.cpu["foreign"] / sample.elapsed * 100
    noisy = f"  (other processes used {foreign:.0f}% CPU)" if foreign > 15 else ""
    return f"  [{repeat + 1}/{repeats}] {case.label}: {sample.rate:,.0f} {case.unit}{first}{noisy}"


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
            print(progress_line(case, sample, repeat, mode.repeats), flush=True)


async def bounded_gather(n: int, limit: int, fn: Callable[[int], Awaitable[None]]) -> None:
    """fn(0..n-1) with at most `limit` in flight."""
    queue = iter(range(n))

    async def worker() -> None:
        for i in queue:
            await fn(i)

    await asyncio.gather(*(worker() for _ in range(limit)))
