"""`team create|list|get|update|delete|run` and `pipeline run`: agents working together."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from .. import types as t
from .._client import AsyncOrchestrator
from .._collaboration import CollaborationStream
from .exit_codes import EXIT_OK, EXIT_USAGE
from .output import Output, when
from .tree import CommandTree, agent_arg, showing

if TYPE_CHECKING:
    from .tree import SubParsers


def print_team(out: Output, team: t.Team) -> None:
    """A team, one field per line (or as JSON)."""
    rows = [
        ("team_id", team.team_id),
        ("members", ", ".join(team.members)),
        ("coordinator", team.coordinator or "(none)"),
        ("description", team.description),
        # Templates may hold newlines: shown as Python literals, on one line.
        ("member_tmpl", repr(team.member_template)),
        ("synthesis_tmpl", repr(team.synthesis_template)),
        ("item_tmpl", repr(team.synthesis_item_template)),
        ("concurrency", str(team.max_concurrency)),
        ("member_timeout", f"{team.member_timeout_seconds:g} s"),
        ("created", when(team.create_time)),
        ("updated", when(team.update_time)),
        ("etag", team.etag),
    ]
    out.record(team, rows, 17)


def print_teams(out: Output, teams: list[t.Team]) -> None:
    """Teams as a table (or as JSON)."""
    out.table(
        teams,
        ("TEAM", "MEMBERS", "COORDINATOR", "DESCRIPTION"),
        lambda x: (x.team_id, ",".join(x.members), x.coordinator, x.description),
    )


def _team_fields(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "description": args.description,
        "member_template": args.member_template,
        "synthesis_template": args.synthesis_template,
        "synthesis_item_template": args.item_template,
        "max_concurrency": args.max_concurrency,
        "member_timeout_seconds": args.member_timeout,
    }
    return {k: v for k, v in fields.items() if v is not None}


async def team_create(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`team create TEAM MEMBER... [--coordinator C] ...`"""
    team = await client.create_team(
        args.team_id,
        args.members,
        coordinator=args.coordinator,
        if_not_exists=args.if_not_exists,
        **_team_fields(args),
    )
    print_team(out, team)
    return EXIT_OK


async def team_update(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`team update TEAM [--member M ...] [--coordinator C] ...`: change only the fields given."""
    given = _team_fields(args)
    if args.member is not None:
        given["members"] = args.member
    if args.coordinator is not None:
        given["coordinator"] = args.coordinator or None
    if not given:
        out.note("error: nothing to update; pass at least one field option (see --help)")
        return EXIT_USAGE
    print_team(out, await client.update_team(args.team_id, etag=args.etag, **given))
    return EXIT_OK


def participant_label(participant: t.Participant) -> str:
    """`[member 2 analyst]`, `[step 1 research]`, `[coordinator director]` (1-based)."""
    if participant.role is t.ParticipantRole.COORDINATOR:
        return f"[coordinator {participant.agent_id}]"
    return f"[{participant.role.value} {participant.index + 1} {participant.agent_id}]"


def _outcome(result: t.ParticipantResult) -> str:
    took = f"({result.duration_ms / 1000:.2f} s)"
    if result.ok:
        return f"completed {took}"
    status = "timed out" if result.error_reason == "MEMBER_TIMEOUT" else result.status.value
    detail = ": ".join(p for p in (result.error_reason, result.error_message) if p)
    return f"{status}: {detail} {took}" if detail else f"{status} {took}"


async def print_collaboration(stream: CollaborationStream, out: Output) -> int:
    """Progress lines (stderr) as participants start and finish, then the final output
    (stdout); with --json, one JSON object per event on stdout."""
    async with stream:
        async for event in stream:
            if out.json:
                out.json_line(event)
            elif isinstance(event, t.CollaborationStarted):
                what = f"team {event.team_id}" if event.team_id else "pipeline"
                out.note(f"{what}: {event.run_id} ({event.participant_count} participants)")
            elif isinstance(event, t.ParticipantStarted):
                out.note(f"{participant_label(event.participant)} started")
            elif isinstance(event, t.ParticipantFinished):
                out.note(f"{participant_label(event.participant)} {_outcome(event.result)}")
            elif isinstance(event, t.CollaborationCompleted):
                out.line(event.output.rstrip("\n"))
    return EXIT_OK


async def team_run(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`team run TEAM TASK`"""
    return await print_collaboration(client.stream_team(args.team_id, args.task), out)


async def pipeline_run(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`pipeline run --step AGENT=TEMPLATE ... INPUT`"""
    stream = client.stream_pipeline(args.step, args.input, session_id=args.session)
    return await print_collaboration(stream, out)


def _step(text: str) -> t.PipelineStep:
    agent, _, template = text.partition("=")
    return t.PipelineStep(agent_arg(agent) or "", template)


def _team_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--description", help="description")
    parser.add_argument(
        "--member-template",
        help="message each member gets; {agent} and {task} (default: 'Task for {agent}: {task}')",
    )
    parser.add_argument(
        "--synthesis-template", help="message the coordinator gets; {task} and {results}"
    )
    parser.add_argument(
        "--item-template", help="one member's block in {results}; {agent} and {output}"
    )
    parser.add_argument("--max-concurrency", type=int, help="members running at once")
    parser.add_argument("--member-timeout", type=float, help="seconds one member may run")


def _register_team_records(tree: CommandTree, team: SubParsers) -> None:
    p = tree.leaf(team, "create", team_create, "create a team of existing agents")
    p.add_argument("team_id", metavar="TEAM")
    p.add_argument("members", metavar="MEMBER", nargs="+", help="member agent ids")
    p.add_argument("--coordinator", help="agent that synthesizes the members' outputs")
    _team_options(p)
    p.add_argument("--if-not-exists", action="store_true", help="return an existing team")
    tree.leaf(
        team, "list", showing(lambda client, args: client.list_teams(), print_teams), "list teams"
    )
    get = showing(lambda client, args: client.get_team(args.team_id), print_team)
    tree.leaf(team, "get", get, "show a team").add_argument("team_id", metavar="TEAM")
    p = tree.leaf(team, "update", team_update, "change the given fields of a team")
    p.add_argument("team_id", metavar="TEAM")
    p.add_argument(
        "--member", action="append", metavar="AGENT", help="member (repeatable; replaces all)"
    )
    p.add_argument("--coordinator", help="coordinator agent ('' for none)")
    _team_options(p)
    p.add_argument("--etag", help="only update this revision (see `team get`)")
    delete = AsyncOrchestrator.delete_team
    tree.delete_command(team, "team", delete, "delete a team (its past runs are kept)")


def register(tree: CommandTree) -> None:
    """Add `team` and `pipeline` with their subcommands."""
    team = tree.group("team", "create, list, inspect, change, delete and run teams of agents")
    _register_team_records(tree, team)
    p = tree.leaf(
        team,
        "run",
        team_run,
        "run a team on a task: progress per member on stderr, the final output on stdout",
    )
    p.add_argument("team_id", metavar="TEAM")
    p.add_argument("task", metavar="TASK")

    pipeline = tree.group("pipeline", "run agents one after another")
    p = tree.leaf(
        pipeline,
        "run",
        pipeline_run,
        "run a pipeline: progress per step on stderr, the last step's output on stdout",
    )
    p.add_argument(
        "--step",
        action="append",
        type=_step,
        required=True,
        metavar="AGENT=TEMPLATE",
        help="a step, in order (repeatable); the template may use {input} and {previous} "
        "and defaults to '{previous}'; AGENT '-' or '' is the default agent",
    )
    p.add_argument("input", metavar="INPUT", help="the pipeline's input ({input})")
    p.add_argument("--session", help="session every step runs in (default: a new one)")
