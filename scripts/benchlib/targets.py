"""The performance targets, each a figure of this run or a ratio of two figures of it.

Ratios against a baseline measured in the same run (the bare stack, the peer) stay
meaningful on a machine shared with other work; absolute figures are kept where the
target is absolute (start-up, memory, list latency).
"""

from __future__ import annotations

from .results import Results, Target


def ratio_targets(results: Results) -> list[Target]:
    """Throughput, latency and agent management against the bare stack and the peer."""
    runs = results.value("runs.memory_c32")
    echo = results.value("limits.grpc_unary_c16")
    ttfd_overhead = first_delta_overhead(results, "runs.fresh_c1")
    return [
        Target(
            "orchestrated runs/s c=32 vs Agents SDK + SQLiteSession",
            runs / results.value("peer.sdk_sqlite_c32"),
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
            results.value("agents.create_c16") / echo,
            0.5,
            True,
            "x",
            "agents.create_c16 / limits.grpc_unary_c16",
        ),
        Target(
            "GetAgent QPS vs bare unary echo",
            results.value("agents.get_c16") / echo,
            0.7,
            True,
            "x",
            "agents.get_c16 / limits.grpc_unary_c16",
        ),
        Target(
            "GetAgent QPS with an API key vs without",
            results.value("agents.get_c16_api_key") / results.value("agents.get_c16"),
            0.9,
            True,
            "x",
            "agents.get_c16_api_key / agents.get_c16",
        ),
    ]


# (name, figure key, at most, unit): scale figures that must stay under a bound.
SCALE_BOUNDS = (
    ("start to SERVING, 100k agents / 1M messages", "scale.serving_s", 1.0, "s"),
    ("ListAgents page p50, 100k agents", "scale.list_page_ms", 5.0, "ms"),
    ("idle RSS, 100k agents / 1M messages", "scale.idle_rss_mb", 150.0, "MB"),
    ("1,000 streams at 1 s model latency", "scale.streams_s", 1.5, "s"),
)


def bound_targets(results: Results) -> list[Target]:
    """Absolute bounds at scale, and the team fan-out against its members' time."""
    bounds = [
        Target(name, results.value(key), limit, False, unit, key)
        for name, key, limit, unit in SCALE_BOUNDS
    ]
    # member + coordinator: two orchestrated turns at the team's model latency.
    team_budget = 1.3 * 2 * results.value("team.member_s")
    team = Target(
        "team fan-out vs 1.3 x (member + coordinator)",
        results.value("team.fanout_s"),
        team_budget,
        False,
        "s",
        "team.fanout_s",
    )
    return [*bounds, team]


def fairness_target(results: Results) -> Target:
    """Tenant isolation on a shared provider: another tenant's 5,000 streams may add at
    most 50 ms to a tenant's p50 time to first delta."""
    return Target(
        "2nd tenant first delta p50 under 5,000 streams of another",
        results.value("fairness.loaded_ttfd_ms") - results.value("fairness.alone_ttfd_ms"),
        50.0,
        False,
        "ms",
        "fairness.loaded_ttfd_ms - fairness.alone_ttfd_ms",
    )


def store_targets(results: Results) -> list[Target]:
    """PostgreSQL against SQLite, the first delta on PostgreSQL, cross-replica cancels."""
    pg_ttfd_overhead = first_delta_overhead(results, "runs.pg_fresh_c1")
    cancel = "replicas.cancel_ms"
    return [
        Target(
            "Run c=32 with memory: PostgreSQL vs SQLite",
            results.value("runs.pg_memory_c32") / results.value("runs.memory_c32"),
            0.8,
            True,
            "x",
            "runs.pg_memory_c32 / runs.memory_c32",
        ),
        Target(
            "time to first delta p50 overhead vs bare openai (c=1), PostgreSQL",
            pg_ttfd_overhead,
            1.0,
            False,
            "ms",
            "runs.pg_fresh_c1 first_p50 - limits.openai_c1 first_p50",
        ),
        Target("cross-replica CancelRun p50", results.value(cancel), 100.0, False, "ms", cancel),
        Target(
            "cross-replica CancelRun p99",
            results.extra(cancel, "p99_ms"),
            250.0,
            False,
            "ms",
            f"{cancel} p99_ms",
        ),
        Target(
            "1,000 streams at 1 s, --workers 2 (PostgreSQL; see the note on cores)",
            results.value("replicas.streams_w2"),
            1.5,
            False,
            "s",
            "replicas.streams_w2",
        ),
    ]


def follow_targets(results: Results) -> list[Target]:
    """Every one of 1,000 followers gets every event; INTERRUPT starts the new run within
    100 ms (p50 and p99)."""
    interrupt = "follow.interrupt_ms"
    return [
        Target(
            "followers of one run with every event (of 1,000)",
            results.value("follow.complete"),
            1000.0,
            True,
            "followers",
            "follow.complete",
        ),
        Target(
            "INTERRUPT: new run started, p50",
            results.value(interrupt),
            100.0,
            False,
            "ms",
            interrupt,
        ),
        Target(
            "INTERRUPT: new run started, p99",
            results.extra(interrupt, "p99_ms"),
            100.0,
            False,
            "ms",
            f"{interrupt} p99_ms",
        ),
    ]


def tracing_targets(results: Results) -> list[Target]:
    """This build against the previous one with tracing off (within noise), and tracing
    on against off."""
    off_runs = results.value("tracing.off_memory_c32")
    return [
        Target(
            "Run/s c=32, tracing off, vs the previous build",
            off_runs / results.value("tracing.previous_memory_c32"),
            0.95,
            True,
            "x",
            "tracing.off_memory_c32 / tracing.previous_memory_c32",
        ),
        Target(
            "GetAgent QPS, tracing off, vs the previous build",
            results.value("tracing.off_get_c16") / results.value("tracing.previous_get_c16"),
            0.95,
            True,
            "x",
            "tracing.off_get_c16 / tracing.previous_get_c16",
        ),
        Target(
            "Run/s c=32, tracing on (OTLP export) vs off",
            results.value("tracing.on_memory_c32") / off_runs,
            0.85,
            True,
            "x",
            "tracing.on_memory_c32 / tracing.off_memory_c32",
        ),
    ]


def first_delta_overhead(results: Results, key: str) -> float:
    """Milliseconds a case's first delta (p50) comes after a bare openai stream's (c=1)."""
    bare = results.extra("limits.openai_c1", "first_p50_ms")
    return results.extra(key, "first_p50_ms") - bare


def hot_path_targets(results: Results) -> list[Target]:
    """The orchestrator's own CPU per operation, Run/s against bare calls, and the first
    delta on a session whose memory window is full."""
    cpu = "cpu_us_per_op.orchestrator"
    return [
        Target(
            "orchestrator CPU per run, c=32 with memory",
            results.extra("runs.memory_c32", cpu) / 1000,
            2.0,
            False,
            "ms",
            f"runs.memory_c32 {cpu}",
        ),
        Target(
            "orchestrator CPU per GetAgent, 16 in flight",
            results.extra("agents.get_c16", cpu) / 1000,
            0.15,
            False,
            "ms",
            f"agents.get_c16 {cpu}",
        ),
        Target(
            "orchestrated runs/s c=32 with memory vs bare openai calls/s c=32",
            results.value("runs.memory_c32") / results.value("limits.openai_c32"),
            1.0,
            True,
            "x",
            "runs.memory_c32 / limits.openai_c32",
        ),
        Target(
            "time to first delta p50 overhead, full 50-message window (c=1)",
            first_delta_overhead(results, "runs.window_c1"),
            1.0,
            False,
            "ms",
            "runs.window_c1 first_p50 - limits.openai_c1 first_p50",
        ),
        Target(
            "time to first delta p50 overhead, full window, PostgreSQL (c=1)",
            first_delta_overhead(results, "runs.pg_window_c1"),
            1.0,
            False,
            "ms",
            "runs.pg_window_c1 first_p50 - limits.openai_c1 first_p50",
        ),
    ]


def targets(results: Results) -> list[Target]:
    """The issue's targets, as ratios measured in this run."""
    return [
        *ratio_targets(results),
        *hot_path_targets(results),
        *store_targets(results),
        *bound_targets(results),
        *follow_targets(results),
        fairness_target(results),
        *tracing_targets(results),
    ]
