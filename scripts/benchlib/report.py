"""The printed table of figures and targets, and bench-results/results.json."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from .config import ROOT, Mode
from .results import Figure, Results, median
from .targets import targets

WIDTH = 108

# The figure each figure is shown as a ratio of (a baseline measured in the same run).
RATIO_BASE = {
    "limits.grpc_stream_c32": "limits.grpc_stream_c1",
    "limits.openai_c32": "limits.openai_c1",
    "runs.fresh_c1": "limits.openai_c1",
    "runs.fresh_c32": "limits.openai_c32",
    "runs.memory_c32": "limits.openai_c32",
    "runs.memory_c32_api_key": "runs.memory_c32",
    "runs.window_c1": "limits.openai_c1",
    "runs.pg_fresh_c1": "limits.openai_c1",
    "runs.pg_window_c1": "limits.openai_c1",
    "runs.pg_memory_c32": "runs.memory_c32",
    "peer.sdk_c32": "limits.openai_c32",
    "peer.sdk_sqlite_c32": "limits.openai_c32",
    "agents.create_c16": "limits.grpc_unary_c16",
    "agents.get_c16": "limits.grpc_unary_c16",
    "agents.get_c16_api_key": "agents.get_c16",
    "agents.list_c16": "limits.grpc_unary_c16",
    "scale.serving_s": "scale.serving_empty_s",
    "scale.serving_pyc_s": "scale.serving_s",
    "team.fanout_s": "team.member_s",
    "fairness.loaded_ttfd_ms": "fairness.alone_ttfd_ms",
}


def fmt(value: float, digits: int = 0) -> str:
    """Thousands separated, "-" for NaN (not measured)."""
    if value != value:
        return "-"
    return f"{value:,.{digits}f}"


def figure_line(key: str, fig: Figure, results: Results) -> str:
    """Label, median, unit, ratio to its baseline, and every sample."""
    digits = 2 if fig.unit in {"s", "ms"} else 0
    base = RATIO_BASE.get(key)
    ratio = ""
    if base and base in results.figures:
        ratio = f"{fig.value / results.value(base):.2f}x {base.split('.')[1]}"
    samples = ", ".join(fmt(s, digits) for s in fig.samples)
    return f"  {fig.label:<54} {fmt(fig.value, digits):>12} {fig.unit:<10} {ratio:>16}  [{samples}]"


def detail_lines(fig: Figure) -> list[str]:
    """Time to first delta and tokens/s, then CPU per operation, where measured."""
    lines = []
    if "first_p50_ms" in fig.extra:
        extra = (
            f"first delta p50 {fig.x('first_p50_ms'):.2f} ms, p99 {fig.x('first_p99_ms'):.2f} ms"
        )
        if "server_first_ms_p50" in fig.extra:
            extra += f" (server-side p50 {fig.x('server_first_ms_p50'):.2f} ms)"
        if "units_per_s" in fig.extra and fig.unit != "streams/s":
            extra += f"; {fig.x('units_per_s'):,.0f} tokens/s"
        lines.append(f"  {'':<4}{extra}")
    cpu = {k.split(".", 1)[1]: v for k, v in fig.extra.items() if k.startswith("cpu_us")}
    if cpu:
        parts = ", ".join(f"{name} {median(v):,.0f}" for name, v in cpu.items())
        foreign = fig.extra.get("cpu_pct.foreign", [])
        noise = f"; other processes {max(foreign):.0f}% CPU at worst" if foreign else ""
        lines.append(f"  {'':<4}CPU us/op: {parts}{noise}")
    if "run_started_p50_ms" in fig.extra:
        lines.append(
            f"  {'':<4}p99 {fig.x('p99_ms'):.1f} ms; RunStarted p50 "
            f"{fig.x('run_started_p50_ms'):.1f} ms; server-side first delta p50 "
            f"{fig.x('server_first_p50_ms'):.1f} ms; provider calls in flight: median "
            f"{fig.x('provider_in_flight_median'):.0f}, min {fig.x('provider_in_flight_min'):.0f}"
        )
        failed = sum(fig.extra.get("failed", []))
        if failed:
            lines.append(f"  {'':<4}{failed:.0f} turns FAILED, counted at their lifetime")
    if fig.note:
        lines.append(f"  {'':<4}{fig.note}")
    return lines


def print_figures(results: Results) -> None:
    """Every figure by section, then the skipped sections."""
    print("\n" + "=" * WIDTH)
    print(f"{'figure':<56} {'median':>12} {'unit':<10} {'ratio':>16}  samples")
    print("-" * WIDTH)
    section = ""
    for key, fig in results.figures.items():
        if fig.section != section:
            section = fig.section
            print(f"[{section}]")
        print(figure_line(key, fig, results))
        for line in detail_lines(fig):
            print(line)
    for name, message in results.skipped.items():
        print(f"[{name}]\n  skipped: {message}")


def print_targets(results: Results) -> None:
    """Every target: measured, needed, PASS / MISS / n/a."""
    print("\n" + "=" * WIDTH)
    print(f"{'target':<58} {'measured':>10} {'needed':>12}  result")
    print("-" * WIDTH)
    for t in targets(results):
        sign = ">=" if t.higher_is_better else "<="
        suffix = t.unit if t.unit == "x" else f" {t.unit}"
        measured = fmt(t.measured, 2) + suffix
        needed = f"{sign} {t.threshold:.2f}" + suffix
        print(f"  {t.name:<56} {measured:>10} {needed:>12}  {t.status}")
    print("=" * WIDTH, flush=True)


def print_report(results: Results) -> None:
    """The figures with their ratios, then the targets."""
    print_figures(results)
    print_targets(results)


def git_output(*args: str) -> str:
    """stdout of a git command in the repository, "" if git is missing or hangs."""
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=10
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def environment(mode: Mode, args: argparse.Namespace) -> dict[str, Any]:
    """What the figures were measured on and with."""
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": git_output("rev-parse", "--short", "HEAD").strip(),
        # Uncommitted changes in the code under test (the bench measures the working tree).
        "uncommitted": git_output(
            "status", "--porcelain", "--", "service", "proto", "client/python"
        ).splitlines(),
        "load_average_at_end": os.getloadavg(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "client_loop": "asyncio" if args.no_uvloop else "uvloop",
        "mode": dataclasses.asdict(mode),
        "quick": args.quick,
        "versions": {
            n: package_version(n)
            for n in ("grpcio", "openai", "openai-agents", "protobuf", "uvloop")
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
