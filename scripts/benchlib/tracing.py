"""Section tracing: what OpenTelemetry tracing costs, and that the build that added it did
not slow down with it off.

Three orchestrators side by side on one dev model server, each on its own database:
- the previous build (PREVIOUS_REV, the commit before tracing, checked out into a git
  worktree and run from it with this virtualenv);
- this build with tracing off (no OTEL_* settings: no spans, no exporter);
- this build with tracing on: every RPC, run, model call and tool call a span, sampled
  always, exported over OTLP/gRPC by the SDK's batch processor to a local collector
  (scripts/otlp_sink.py, a subprocess whose CPU is charged to the figures too).
Run with persisted memory at c=32 on each, GetAgent at 16 in flight on the previous
build and on this one (off), measured in the same interleaved rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path

from .agents import IN_FLIGHT, create_agent, get_op, list_agents_made
from .config import PY, ROOT, Mode
from .driver import Case, run_rounds
from .results import Results
from .runs import AGENT_ID, run_op
from .servers import Child, serve_orchestrator, spawn, start_devmodel, stop

# The build before tracing (issue 16's first commit is its child); BENCH_PREVIOUS_REV
# names another.
PREVIOUS_REV = os.environ.get("BENCH_PREVIOUS_REV", "4eade4f")


async def previous_build(work: Path) -> Path | None:
    """A worktree of PREVIOUS_REV under `work` (None, with a note, if git cannot)."""
    tree = work / "previous-build"
    shutil.rmtree(tree, ignore_errors=True)
    proc = await asyncio.create_subprocess_exec(
        "git", "-C", str(ROOT), "worktree", "add", "--force", "--detach", str(tree),
        PREVIOUS_REV, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    if proc.returncode != 0:
        print(f"note: no previous build ({err.decode().strip()}); its figures are skipped")
        return None
    return tree


async def remove_worktree(tree: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        "git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await proc.wait()


async def start_collector(stack: contextlib.AsyncExitStack) -> tuple[Child, str]:
    """The OTLP collector subprocess; returns it and its endpoint."""
    child, endpoint = await spawn(
        "otlp-sink", [PY, str(ROOT / "scripts" / "otlp_sink.py")], ready_prefix="OTLP_LISTENING"
    )
    stack.push_async_callback(stop, child)
    return child, endpoint


def run_case(key: str, label: str, orch: Child, model: Child, stub: object, *extra: Child) -> Case:
    collect: dict[str, list[float]] = {}
    op, setup = run_op(stub, AGENT_ID, "worker", collect)  # type: ignore[arg-type]
    procs = {child.name: child for child in (orch, model, *extra)}
    return Case(key, "tracing", label, "runs/s", 32, op, procs, setup, collect)


def get_case(key: str, label: str, orch: Child, stub: object) -> Case:
    op = get_op(stub)  # type: ignore[arg-type]
    return Case(key, "tracing", label, "QPS", IN_FLIGHT, op, {orch.name: orch})


async def tracing_cases(stack: contextlib.AsyncExitStack, work: Path) -> list[Case]:
    """The orchestrators and their cases (the previous build's when git can check it
    out)."""
    model, model_url = await start_devmodel(stack, "devmodel-tracing", 0)
    collector, endpoint = await start_collector(stack)
    traced_env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_TRACES_SAMPLER": "always_on",
    }
    builds: list[tuple[str, str, dict[str, str]]] = [
        ("off", "this build, tracing off", {}),
        ("on", "this build, tracing on (OTLP to a local collector)", traced_env),
    ]
    tree = await previous_build(work)
    if tree is not None:
        stack.push_async_callback(remove_worktree, tree)
        source = f"{tree / 'service'}{os.pathsep}{tree / 'client' / 'python'}"
        builds.insert(0, ("previous", f"previous build ({PREVIOUS_REV})", {"PYTHONPATH": source}))
    cases: list[Case] = []
    for name, label, env in builds:
        db = work / f"tracing-{name}.db"
        orch, stub = await serve_orchestrator(stack, f"orchestrator-{name}", db, model_url, env)
        await create_agent(stub, AGENT_ID)
        extra = (collector,) if name == "on" else ()
        key = f"tracing.{name}_memory_c32"
        cases.append(run_case(key, f"Run c=32 (memory), {label}", orch, model, stub, *extra))
        if name != "on":
            await list_agents_made(stub)
            cases.append(get_case(f"tracing.{name}_get_c16", f"GetAgent c=16, {label}", orch, stub))
    return cases


async def tracing_section(mode: Mode, results: Results, work: Path) -> None:
    """The cases above, in interleaved rounds."""
    async with contextlib.AsyncExitStack() as stack:
        cases = await tracing_cases(stack, work)
        print(
            f"measuring {len(cases)} cases: {mode.repeats} x {mode.duration:g} s each", flush=True
        )
        await run_rounds(cases, results, mode)
