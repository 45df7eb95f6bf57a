"""The command line of `make bench`: which sections, how long, and where results go."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

from .chart import chart
from .config import FULL, QUICK, RESULTS, ROOT, SECTIONS, Mode
from .fairness import fairness_section
from .follow import follow_section
from .replicas import replicas_section
from .report import print_report, write_json
from .results import Results
from .scale import scale_section
from .team import team_section
from .throughput import throughput_sections
from .tracing import tracing_section

# Above this load average before the start, the figures will be noisy: say so.
BUSY_LOAD = 0.5


def parse_args(description: str | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
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
    parser.add_argument(
        "--fair-latency-ms",
        type=float,
        default=5000.0,
        help="tenant A's mean model latency in the fairness section (at 1000 A's turns "
        "outrun the orchestrator on 2 cores: tenant B then waits for the server, not for "
        "the provider)",
    )
    parser.add_argument("--no-uvloop", action="store_true", help="load generator on asyncio")
    return parser.parse_args()


def chosen_mode(args: argparse.Namespace) -> Mode:
    """FULL or QUICK, with --duration and --repeats applied."""
    mode = QUICK if args.quick else FULL
    if args.duration:
        mode = dataclasses.replace(mode, duration=args.duration)
    if args.repeats:
        mode = dataclasses.replace(mode, repeats=args.repeats)
    return mode


def announce(selected: set[str], quick: bool) -> None:
    """What runs, and a warning if the machine is already busy."""
    print(
        f"bench: sections {', '.join(s for s in SECTIONS if s in selected)}; "
        f"{'quick' if quick else 'full'} mode; {os.cpu_count()} cores",
        flush=True,
    )
    load = os.getloadavg()[0]
    if load > BUSY_LOAD:
        print(
            f"note: load average {load:.1f} before starting: other processes share the "
            "cores, figures will be noisier (compare ratios; each sample notes the CPU "
            "other processes used)",
            flush=True,
        )


async def main_async(args: argparse.Namespace) -> int:
    mode = chosen_mode(args)
    selected = set(args.only.split(",")) if args.only else set(SECTIONS)
    unknown = selected - set(SECTIONS)
    if unknown:
        print(f"unknown sections: {', '.join(sorted(unknown))} (have {', '.join(SECTIONS)})")
        return 2
    RESULTS.mkdir(exist_ok=True)
    results = Results()
    began = time.perf_counter()
    announce(selected, args.quick)
    if selected & {"limits", "runs", "peer", "agents"}:
        await throughput_sections(selected, mode, results, args)
    if "scale" in selected:
        print("[scale]", flush=True)
        await scale_section(mode, results, args)
    if "replicas" in selected:
        print("[replicas]", flush=True)
        await replicas_section(mode, results, args.provider_concurrency)
    if "follow" in selected:
        print("[follow]", flush=True)
        with tempfile.TemporaryDirectory() as work_dir:
            await follow_section(mode, results, Path(work_dir))
    if "team" in selected:
        print("[team]", flush=True)
        await team_section(mode, results)
    if "fairness" in selected:
        print("[fairness]", flush=True)
        await fairness_section(mode, results, args)
    if "tracing" in selected:
        print("[tracing]", flush=True)
        with tempfile.TemporaryDirectory() as work_dir:
            await tracing_section(mode, results, Path(work_dir))
    print_report(results)
    write_json(results, mode, args, RESULTS / "results.json")
    chart(results, RESULTS / "bench.png")
    # Only a full run of every section is the project's published chart.
    if selected == set(SECTIONS) and not args.quick:
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(RESULTS / "bench.png", ROOT / "docs" / "bench.png")
    print(
        f"wrote bench-results/results.json and bench-results/bench.png "
        f"in {time.perf_counter() - began:.0f} s"
    )
    return 0


def main(description: str | None = None) -> int:
    """Parse the command line and run the bench on uvloop (or asyncio: --no-uvloop)."""
    args = parse_args(description)
    if args.no_uvloop:
        return asyncio.run(main_async(args))
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main_async(args))
