"""`--profile`: py-spy samples of the orchestrator, summarised as time per operation.

py-spy records raw collapsed stacks ("frame;frame;frame count" lines); the summary
divides the sampled time by the operations done meanwhile, by function and by the part
of the stack (grpc, openai, protobuf, ...) the time is spent in.
"""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from .config import PY, RESULTS, ROOT, Mode
from .driver import Case, measure
from .results import Results

T = TypeVar("T")

PROFILE_RATE = 250  # samples per second
# py-spy needs a moment to attach; the load starts after it.
ATTACH_S = 0.3

# The first prefix a stack frame's short path starts with names its area.
AREAS = (
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
)


def py_spy() -> str | None:
    """The py-spy binary, if installed (`uv pip install py-spy`)."""
    local = Path(PY).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


async def py_spy_during(
    spy: str, pid: int, seconds: int, raw: Path, load: Callable[[], Awaitable[T]]
) -> T:
    """Record `pid` for `seconds` into `raw` while awaiting `load`; returns its result."""
    argv = [spy, "record", "--pid", str(pid), "--duration", str(seconds)]
    argv += ["--rate", str(PROFILE_RATE), "--format", "raw", "--nonblocking", "--output", str(raw)]
    quiet = asyncio.subprocess.DEVNULL
    spy_proc = await asyncio.create_subprocess_exec(*argv, stdout=quiet, stderr=quiet)
    await asyncio.sleep(ATTACH_S)
    result = await load()
    try:
        await asyncio.wait_for(spy_proc.wait(), seconds + 30)
    except TimeoutError:
        spy_proc.kill()
        await spy_proc.wait()
    return result


async def profile_case(case: Case, name: str, results: Results, mode: Mode) -> None:
    """Measure the case once more with py-spy sampling the orchestrator; summarise the
    samples as microseconds per operation by function."""
    spy = py_spy()
    orch = case.procs.get("orchestrator")
    if spy is None or orch is None:
        print("  (profile skipped: py-spy is not installed: uv pip install py-spy)")
        return
    seconds = max(int(mode.duration * 3), 6)
    raw = RESULTS / f"profile-{name}.txt"
    print(f"profiling the orchestrator during {case.label} for {seconds} s ...", flush=True)
    sample = await py_spy_during(
        spy,
        orch.pid,
        seconds,
        raw,
        lambda: measure(case.op, case.concurrency, seconds - 0.5, case.procs),
    )
    if not raw.exists():
        print("  (py-spy wrote no profile; it needs ptrace permission)")
        return
    # The py-spy window is `seconds` long; scale the ops of the measured part to it.
    ops = sample.rate * seconds
    unit = {"runs/s": "run", "QPS": "call"}.get(case.unit, "op")
    summary = summarise_profile(raw, ops, unit)
    out = RESULTS / f"profile-{name}-summary.txt"
    header = (
        f"{case.label}: {sample.rate:,.0f} {case.unit} while profiled; orchestrator CPU "
        f"{sample.cpu.get('orchestrator', 0) / max(sample.ops, 1) * 1e6:,.0f} us/op\n"
    )
    out.write_text(header + summary)
    results.profiles[name] = str(out.relative_to(ROOT))
    print(header + summary, flush=True)


def frame_parts(frame: str) -> tuple[str, str]:
    """('function', 'file') of a py-spy frame 'function (path/file.py:line)'."""
    name, _, rest = frame.partition(" (")
    path = rest.rstrip(")").rsplit(":", 1)[0]
    return name, path


def short_path(path: str) -> str:
    """The path from its package on (site-packages/..., the stdlib, our server)."""
    for marker in ("site-packages/", "orchestrator_server/", "lib/python3"):
        if marker in path:
            rest = path.split(marker, 1)[1]
            return "orchestrator_server/" + rest if marker == "orchestrator_server/" else rest
    return path


def area(path: str) -> str:
    """Which part of the stack a file belongs to."""
    short = short_path(path)
    for prefix, name in AREAS:
        if short.startswith(prefix) or f"/{prefix}" in short:
            return name
    return short.split("/", 1)[0] or "?"


@dataclass
class StackCounts:
    """Samples by leaf function (self), by any function on the stack (inclusive), and by
    the area of the leaf."""

    total: int = 0
    self_cost: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    areas: Counter[str] = field(default_factory=Counter)

    def add(self, frames: list[str], count: int) -> None:
        self.total += count
        leaf_name, leaf_path = frame_parts(frames[-1])
        self.self_cost[f"{leaf_name} ({short_path(leaf_path)})"] += count
        self.areas[area(leaf_path)] += count
        # A recursive function counts once per sample.
        on_stack = (f"{name} ({short_path(path)})" for name, path in map(frame_parts, frames))
        for key in dict.fromkeys(on_stack):
            self.inclusive[key] += count


def count_stacks(raw: Path) -> StackCounts:
    """Read py-spy's raw output."""
    counts = StackCounts()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [f for f in stack.split(";") if " (" in f]
        if frames:
            counts.add(frames, int(count_text))
    return counts


def summarise_profile(raw: Path, ops: float, unit: str, rate: int = PROFILE_RATE) -> str:
    """Self and inclusive cost per operation by function, and self cost by area."""
    counts = count_stacks(raw)
    if not counts.total or not ops:
        return "no samples\n"

    def us(count: int) -> str:
        return f"{count / rate / ops * 1e6:8.0f} us/{unit}"

    def top(counter: Counter[str] | list[tuple[str, int]], n: int | None = None) -> list[str]:
        items = counter.most_common(n) if isinstance(counter, Counter) else counter
        return [f"  {us(c)}  {k}" for k, c in items]

    ours = [(k, c) for k, c in counts.inclusive.most_common() if "orchestrator_server/" in k]
    lines = [
        f"{counts.total} samples at {rate} Hz over {ops:,.0f} {unit}s "
        f"= {counts.total / rate / ops * 1e6:,.0f} us of Python-visible time per {unit}",
        "\nself time by area:",
        *top(counts.areas, 12),
        "\nself time by function (top 25):",
        *top(counts.self_cost, 25),
        "\ninclusive time, orchestrator_server functions (top 25):",
        *top(ours[:25]),
        "\ninclusive time, all functions (top 30):",
        *top(counts.inclusive, 30),
    ]
    return "\n".join(lines) + "\n"
