"""bench.png: run throughput, time to first delta, agent management, targets.

matplotlib is imported only here, when the chart is drawn (it is slow to import and the
Agg backend must be chosen before pyplot is imported).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .results import Results, Target
from .targets import targets

GREY, BLUE, ORANGE, GREEN, RED = "#9e9e9e", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"
SCORE_CAP = 3.0  # a target met by more than this is drawn at the cap

# (label, figure key, colour) of the bar panels: the bare stack grey, the orchestrator
# blue, the peer orange.
THROUGHPUT_BARS = [
    ("bare grpc stream (20 msgs)", "limits.grpc_stream_c32", GREY),
    ("bare openai stream (20 tok)", "limits.openai_c32", GREY),
    ("orchestrator Run, new sessions", "runs.fresh_c32", BLUE),
    ("orchestrator Run, memory", "runs.memory_c32", BLUE),
    ("Agents SDK", "peer.sdk_c32", ORANGE),
    ("Agents SDK + SQLiteSession", "peer.sdk_sqlite_c32", ORANGE),
]
AGENT_BARS = [
    ("bare unary echo", "limits.grpc_unary_c16", GREY),
    ("CreateAgent", "agents.create_c16", BLUE),
    ("GetAgent", "agents.get_c16", BLUE),
    ("ListAgents (100/page)", "agents.list_c16", BLUE),
]
FIRST_DELTA_GROUPS = [
    ("openai c=1", "limits.openai_c1", GREY),
    ("Run c=1", "runs.fresh_c1", BLUE),
    ("openai c=32", "limits.openai_c32", GREY),
    ("Run c=32", "runs.memory_c32", BLUE),
]


def bars(
    ax: Any, results: Results, items: list[tuple[str, str, str]], title: str, unit: str
) -> None:
    """Horizontal bars of the measured figures among `items`, values written at the end."""
    shown = [
        (label, results.value(key), color) for label, key, color in items if key in results.figures
    ]
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


def first_delta_panel(ax: Any, results: Results) -> None:
    """p50 and p99 time to first delta, bare openai next to the orchestrator."""
    shown = [
        (label, key, color) for label, key, color in FIRST_DELTA_GROUPS if key in results.figures
    ]
    if shown:
        xs = range(len(shown))
        colors = [c for *_, c in shown]
        p50 = [results.extra(k, "first_p50_ms") for _, k, _ in shown]
        p99 = [results.extra(k, "first_p99_ms") for _, k, _ in shown]
        ax.bar([x - 0.2 for x in xs], p50, 0.4, color=colors, label="p50")
        ax.bar([x + 0.2 for x in xs], p99, 0.4, color=colors, alpha=0.45, label="p99")
        ax.set_xticks(list(xs), [s[0] for s in shown])
        for x, a, b in zip(xs, p50, p99, strict=True):
            ax.text(x - 0.2, a, f"{a:.1f}", ha="center", va="bottom", fontsize=8)
            ax.text(x + 0.2, b, f"{b:.1f}", ha="center", va="bottom", fontsize=8)
        ax.legend()
    ax.set_title("Time to first delta, client-side (lower is better)")
    ax.set_ylabel("ms (p50 solid, p99 light)")


def score(t: Target) -> float:
    """How far a target is met: >= 1 means met, whichever way the target points."""
    if t.higher_is_better:
        return t.measured / t.threshold
    return t.threshold / t.measured if t.measured > 0 else SCORE_CAP


def targets_panel(ax: Any, results: Results) -> None:
    """Every measured target as its score, green PASS or red MISS."""
    ts = [t for t in targets(results) if t.status != "n/a"]
    if not ts:
        ax.set_axis_off()
        return
    names = [t.name for t in ts]
    scores = [min(score(t), SCORE_CAP) for t in ts]
    ax.barh(names, scores, color=[GREEN if t.status == "PASS" else RED for t in ts])
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", linewidth=1)
    for i, (t, sc) in enumerate(zip(ts, scores, strict=True)):
        text = f"{t.measured:.2f}{t.unit}" if t.unit == "x" else f"{t.measured:.2f} {t.unit}"
        ax.text(sc, i, f" {text} {t.status}", va="center", fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlim(0, 3.6)
    ax.set_xlabel("target met by a factor of (1 = just met; capped at 3)")
    ax.set_title("Targets (green PASS, red MISS)")


def chart(results: Results, path: Path) -> None:
    """Four panels: run throughput, time to first delta, agent management, targets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # The targets panel is given the height its one-line labels need.
    fig, axes = plt.subplots(2, 2, figsize=(15, 12), gridspec_kw={"height_ratios": [1, 1.6]})
    bars(
        axes[0][0],
        results,
        THROUGHPUT_BARS,
        "Streams / runs per second, concurrency 32 (higher is better)",
        "per second",
    )
    bars(
        axes[1][0], results, AGENT_BARS, "Agent management, 16 in flight (higher is better)", "QPS"
    )
    first_delta_panel(axes[0][1], results)
    targets_panel(axes[1][1], results)
    fig.suptitle(
        f"Agent orchestrator benchmark ({os.cpu_count()} cores, one machine, "
        f"medians of repeated runs)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
