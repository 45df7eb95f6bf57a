"""`runs list|get|cancel|follow`: run records, and following a run's events."""

from __future__ import annotations

import argparse

from .. import types as t
from .._client import AsyncOrchestrator
from .output import Output, when
from .tree import CommandTree, showing
from .turns import print_events


async def follow_command(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`runs follow RUN`: print a run's answer (or events) from `--after` on until it ends."""
    async with client.follow(args.run_id, after_sequence=args.after) as events:
        return await print_events(events, out)


def print_run(out: Output, run: t.Run) -> None:
    """A run record, one field per line (or as JSON)."""
    usage = f"{run.usage.prompt_tokens} prompt + {run.usage.completion_tokens} completion tokens"
    rows = [
        ("run_id", run.run_id),
        ("agent_id", run.agent_id),
        ("session_id", run.session_id),
        ("status", run.status.value),
        ("input", run.input),
        ("output", run.output),
        ("error", f"{run.error_reason}: {run.error_message}" if run.error_reason else ""),
        ("usage", usage),
        ("created", when(run.create_time)),
        ("ended", when(run.end_time)),
    ]
    out.record(run, rows, 12)


def print_runs(out: Output, runs: list[t.Run]) -> None:
    """Runs as a table (or as JSON)."""
    out.table(
        runs,
        ("RUN", "AGENT", "SESSION", "STATUS", "CREATED"),
        lambda r: (r.run_id, r.agent_id, r.session_id, r.status.value, when(r.create_time)),
    )


def register(tree: CommandTree) -> None:
    """Add `runs` and its subcommands."""
    runs = tree.group("runs", "inspect and cancel runs")
    listing = showing(
        lambda client, args: client.list_runs(args.agent, args.session, limit=args.limit),
        print_runs,
    )
    p = tree.leaf(runs, "list", listing, "list runs, newest first")
    p.add_argument("--agent", help="only runs of this agent")
    p.add_argument("--session", help="only runs of this session (needs --agent)")
    p.add_argument("--limit", type=int, default=20, help="most runs to show (default 20)")
    get = showing(lambda client, args: client.get_run(args.run_id), print_run)
    tree.leaf(runs, "get", get, "show a run").add_argument("run_id", metavar="RUN")
    cancel = showing(lambda client, args: client.cancel_run(args.run_id), print_run)
    tree.leaf(runs, "cancel", cancel, "cancel a queued or running run").add_argument(
        "run_id", metavar="RUN"
    )
    p = tree.leaf(
        runs, "follow", follow_command, "stream a run's events (from another terminal or host)"
    )
    p.add_argument("run_id", metavar="RUN")
    p.add_argument(
        "--after", type=int, default=0, help="the last sequence number already seen (default 0)"
    )
