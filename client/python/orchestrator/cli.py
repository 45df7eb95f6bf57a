"""The client commands of the `orchestrator` console script: agents, run, chat, sessions,
runs, team and pipeline.

The console script itself lives in the server package (`orchestrator_server.cli`), which
registers `serve` and calls `add_client_commands`. Every command talks to a server with
AsyncOrchestrator; `--json` prints one JSON document (one JSON object per line for
streamed events); expected errors print one line on stderr and exit with the code of
their class (EXIT_CODES), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import enum
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO, TypeAlias

from . import errors
from . import types as t
from ._channel import DEFAULT_ADDRESS
from ._client import AsyncOrchestrator
from ._collaboration import CollaborationStream
from ._stream import RunStream

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_UNAVAILABLE = 5
EXIT_PRECONDITION = 6
EXIT_CANCELLED = 7
EXIT_INTERRUPTED = 130

# Checked in order: the first class an error is an instance of gives the exit code.
EXIT_CODES: tuple[tuple[type[errors.OrchestratorError], int], ...] = (
    (errors.RequestTooLarge, EXIT_USAGE),
    (errors.InvalidArgument, EXIT_USAGE),
    (errors.NotFound, EXIT_NOT_FOUND),
    (errors.Conflict, EXIT_CONFLICT),
    (errors.Unavailable, EXIT_UNAVAILABLE),
    (errors.DeadlineExceeded, EXIT_UNAVAILABLE),
    (errors.ResourceExhausted, EXIT_UNAVAILABLE),
    (errors.FailedPrecondition, EXIT_PRECONDITION),
    (errors.RunCancelledError, EXIT_CANCELLED),
)

EXIT_HELP = f"""\
exit codes:
  0    success
  1    other errors (internal server error, unexpected failures)
  2    usage error or invalid argument (INVALID_ARGUMENT, INVALID_AGENT_ID, ...)
  3    not found (AGENT_NOT_FOUND, RUN_NOT_FOUND, SESSION_NOT_FOUND, TEAM_NOT_FOUND)
  4    conflict (AGENT_ALREADY_EXISTS, TEAM_ALREADY_EXISTS, ETAG_MISMATCH, SESSION_BUSY)
  5    unavailable or too slow: server unreachable, DEADLINE_EXCEEDED, MODEL_UNAVAILABLE,
       MODEL_RATE_LIMITED (retrying later may succeed)
  6    failed precondition (NO_DEFAULT_AGENT, AGENT_IN_USE, PROVIDER_NOT_CONFIGURED, ...)
  7    the run was cancelled (RUN_CANCELLED)
  130  interrupted (Ctrl-C)

environment: ORCHESTRATOR_ADDRESS (default {DEFAULT_ADDRESS}), ORCHESTRATOR_TENANT"""

Action = Callable[[AsyncOrchestrator, argparse.Namespace, "Output"], Awaitable[int]]
if TYPE_CHECKING:
    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def exit_code_for(error: errors.OrchestratorError) -> int:
    """The process exit code of an error class."""
    for cls, code in EXIT_CODES:
        if isinstance(error, cls):
            return code
    return EXIT_ERROR


# -- output -------------------------------------------------------------------------------

_EVENT_TYPES = {
    t.RunStarted: "run_started",
    t.TextDelta: "text_delta",
    t.MessageCompleted: "message_completed",
    t.RunCompleted: "run_completed",
    t.RunCancelled: "run_cancelled",
    t.ToolCallStarted: "tool_call",
    t.ToolCallFinished: "tool_result",
    t.CollaborationStarted: "started",
    t.ParticipantStarted: "participant_started",
    t.ParticipantEvent: "run_event",
    t.ParticipantFinished: "participant_finished",
    t.CollaborationCompleted: "completed",
}


def to_jsonable(value: Any) -> Any:
    """Dataclasses, enums, datetimes and tuples as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        event_type = _EVENT_TYPES.get(type(value))
        return {"type": event_type, **data} if event_type else data
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


class Output:
    """Where results go: human-readable text, or JSON for scripts."""

    def __init__(self, as_json: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.json = as_json
        self.out = out
        self.err = err

    def document(self, value: Any) -> None:
        """One JSON document (in JSON mode)."""
        print(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False), file=self.out)

    def json_line(self, value: Any) -> None:
        """One JSON object on one line, flushed (for streams)."""
        print(json.dumps(to_jsonable(value), ensure_ascii=False), file=self.out, flush=True)

    def text(self, text: str) -> None:
        """Text as it arrives (no newline added)."""
        self.out.write(text)
        self.out.flush()

    def line(self, text: str = "") -> None:
        """One line of human-readable output."""
        print(text, file=self.out, flush=True)

    def note(self, text: str) -> None:
        """A message for the person at the terminal, never mixed into the results."""
        print(text, file=self.err, flush=True)


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


def _model_text(model: t.Model) -> str:
    name = "/".join(p for p in (model.provider, model.model) if p) or "(server default)"
    extras = [
        f"{k}={v}"
        for k, v in (
            ("temperature", model.temperature),
            ("max_tokens", model.max_tokens),
            ("top_p", model.top_p),
            ("seed", model.seed),
        )
        if v is not None
    ]
    return " ".join([name, *extras])


def print_agent(out: Output, agent: t.Agent) -> None:
    """An agent, one field per line (or as JSON)."""
    if out.json:
        out.document(agent)
        return
    rows = [
        ("agent_id", agent.agent_id),
        ("default", "yes" if agent.is_default else "no"),
        ("model", _model_text(agent.model)),
        ("memory", str(agent.buffer_memory.max_messages or "server default")),
        ("system_message", agent.system_message),
        ("description", agent.description),
        ("tools", ", ".join(agent.tools)),
        ("labels", ", ".join(f"{k}={v}" for k, v in sorted(agent.labels.items()))),
        ("callable_agents", ", ".join(agent.callable_agents)),
        ("created", _when(agent.create_time)),
        ("updated", _when(agent.update_time)),
        ("etag", agent.etag),
    ]
    for name, value in rows:
        out.line(f"{name + ':':<17}{value}")


def print_table(out: Output, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Rows in aligned columns under a header."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        out.line("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def print_run(out: Output, run: t.Run) -> None:
    """A run record."""
    if out.json:
        out.document(run)
        return
    rows = [
        ("run_id", run.run_id),
        ("agent_id", run.agent_id),
        ("session_id", run.session_id),
        ("status", run.status.value),
        ("input", run.input),
        ("output", run.output),
        ("error", f"{run.error_reason}: {run.error_message}" if run.error_reason else ""),
        (
            "usage",
            f"{run.usage.prompt_tokens} prompt + {run.usage.completion_tokens} completion tokens",
        ),
        ("created", _when(run.create_time)),
        ("ended", _when(run.end_time)),
    ]
    for name, value in rows:
        out.line(f"{name + ':':<12}{value}")


# -- commands -----------------------------------------------------------------------------


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _model_from_args(args: argparse.Namespace, base: t.Model | None = None) -> t.Model | None:
    changes = {
        "model": args.model,
        "provider": args.provider,
        "temperature": args.temperature,
        "max_tokens": args.max_tokens,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        return None
    return dataclasses.replace(base or t.Model(), **changes)


async def agents_create(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`agents create ID ...`"""
    agent = await client.create_agent(
        args.agent_id,
        model=_model_from_args(args),
        system_message=args.system or "",
        description=args.description or "",
        tools=args.tool or (),
        buffer_memory=t.BufferMemory(args.memory) if args.memory is not None else None,
        labels=dict(args.label or ()),
        callable_agents=args.callable or (),
        set_as_default=args.default,
        if_not_exists=args.if_not_exists,
    )
    print_agent(out, agent)
    return EXIT_OK


async def agents_list(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`agents list [--label K=V]`"""
    agents = [a async for a in client.iter_agents(labels=dict(args.label or ()))]
    if out.json:
        out.document(agents)
        return EXIT_OK
    print_table(
        out,
        ("AGENT", "DEFAULT", "MODEL", "DESCRIPTION"),
        [
            (a.agent_id, "*" if a.is_default else "", _model_text(a.model), a.description)
            for a in agents
        ],
    )
    return EXIT_OK


async def agents_get(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`agents get ID`"""
    print_agent(out, await client.get_agent(args.agent_id))
    return EXIT_OK


async def agents_update(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`agents update ID --system ... [--etag E]`: change only the fields given."""
    etag = args.etag
    model: t.Model | str | None = None
    if any(v is not None for v in (args.provider, args.temperature, args.max_tokens)):
        # Sub-fields of the model are merged onto the current model, conditional on the
        # revision read, so that a concurrent change is not silently overwritten.
        current = await client.get_agent(args.agent_id)
        model = _model_from_args(args, current.model)
        etag = etag or current.etag
    elif args.model is not None:
        model = args.model
    fields: dict[str, Any] = {
        "system_message": args.system,
        "description": args.description,
        "model": model,
        "buffer_memory": t.BufferMemory(args.memory) if args.memory is not None else None,
        "tools": args.tool,
        "labels": dict(args.label) if args.label is not None else None,
        "callable_agents": args.callable,
    }
    given = {k: v for k, v in fields.items() if v is not None}
    if not given:
        out.note("error: nothing to update; pass at least one field option (see --help)")
        return EXIT_USAGE
    agent = await client.update_agent(args.agent_id, etag=etag, **given)
    print_agent(out, agent)
    return EXIT_OK


async def agents_delete(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`agents delete ID [--etag E]`"""
    await client.delete_agent(args.agent_id, etag=args.etag)
    if out.json:
        out.document({"deleted": args.agent_id})
    else:
        out.line(f"deleted agent {args.agent_id}")
    return EXIT_OK


async def agents_default(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`agents default [ID]`: set the default agent, or show it."""
    if args.agent_id:
        agent = await client.set_default_agent(args.agent_id)
    else:
        agent = await client.get_default_agent()
    if out.json:
        out.document(agent)
    else:
        out.line(agent.agent_id)
    return EXIT_OK


def _agent_arg(value: str) -> str | None:
    """`-` or empty means the default agent."""
    return None if value in ("", "-") else value


async def _print_events(stream: RunStream, out: Output) -> int:
    """Print a turn's events as they arrive; the exit status of how it ended."""
    async for event in stream:
        if out.json:
            out.json_line(event)
            if isinstance(event, t.RunCancelled) and stream.is_own_end(event):
                return EXIT_CANCELLED
        elif event.run_id != stream.run_id:
            # A child run (an agent asked by this one): its answer is part of the tool
            # call, not of what this agent says.
            continue
        elif isinstance(event, t.TextDelta):
            out.text(event.text)
        elif isinstance(event, t.RunCompleted):
            out.line()
        elif isinstance(event, t.RunCancelled):
            out.line()
            out.note(f"[cancelled: {event.reason}: {event.message}]")
            return EXIT_CANCELLED
    return EXIT_OK


async def run_command(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`run AGENT MESSAGE`: stream the answer."""
    async with client.stream(
        args.message,
        _agent_arg(args.agent),
        session_id=args.session,
        request_id=args.request_id,
        wait_if_busy=args.wait,
    ) as stream:
        return await _print_events(stream, out)


async def chat_command(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`chat AGENT`: one conversation on one stream, a turn per line of stdin."""
    loop = asyncio.get_running_loop()
    interactive = sys.stdin.isatty()
    current: list[RunStream] = []

    def interrupt() -> None:
        # Ctrl-C stops the answer being written, not the chat.
        if current:
            current[0].cancel()
        else:
            out.note("(type /exit or press Ctrl-D to leave)")

    async with client.chat(_agent_arg(args.agent), session_id=args.session) as chat:
        loop.add_signal_handler(signal.SIGINT, interrupt)
        try:
            if interactive and not out.json:
                out.note("chatting; Ctrl-C cancels an answer, /exit or Ctrl-D leaves")
            while True:
                if interactive and not out.json:
                    out.text("> ")
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
                    break
                message = line.strip()
                if not message:
                    continue
                if message in ("/exit", "/quit"):
                    break
                turn = chat.send(message)
                current[:] = [turn]
                try:
                    await _print_events(turn, out)
                except errors.OrchestratorError as error:
                    # A failed turn does not end the conversation.
                    out.note(f"error: {error}")
                finally:
                    current.clear()
        finally:
            loop.remove_signal_handler(signal.SIGINT)
    return EXIT_OK


async def sessions_list(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`sessions list AGENT`"""
    sessions = await client.list_sessions(args.agent_id)
    if out.json:
        out.document(sessions)
        return EXIT_OK
    print_table(
        out,
        ("SESSION", "MESSAGES", "UPDATED"),
        [(s.session_id, str(s.message_count), _when(s.update_time)) for s in sessions],
    )
    return EXIT_OK


async def sessions_messages(
    client: AsyncOrchestrator, args: argparse.Namespace, out: Output
) -> int:
    """`sessions messages AGENT [SESSION]`"""
    messages = await client.list_messages(args.agent_id, args.session_id)
    if out.json:
        out.document(messages)
        return EXIT_OK
    for message in messages:
        out.line(f"[{message.sequence}] {message.role.value}: {message.content}")
    return EXIT_OK


async def sessions_delete(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`sessions delete AGENT [SESSION]`"""
    deleted = await client.delete_session(args.agent_id, args.session_id)
    if out.json:
        out.document({"deleted_messages": deleted})
    else:
        out.line(f"deleted {deleted} messages")
    return EXIT_OK


async def runs_list(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`runs list [--agent A [--session S]] [--limit N]`"""
    runs = await client.list_runs(args.agent, args.session, limit=args.limit)
    if out.json:
        out.document(runs)
        return EXIT_OK
    print_table(
        out,
        ("RUN", "AGENT", "SESSION", "STATUS", "CREATED"),
        [(r.run_id, r.agent_id, r.session_id, r.status.value, _when(r.create_time)) for r in runs],
    )
    return EXIT_OK


async def runs_get(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`runs get RUN`"""
    print_run(out, await client.get_run(args.run_id))
    return EXIT_OK


async def runs_cancel(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`runs cancel RUN`"""
    print_run(out, await client.cancel_run(args.run_id))
    return EXIT_OK


# -- teams and pipelines ------------------------------------------------------------------


def print_team(out: Output, team: t.Team) -> None:
    """A team, one field per line (or as JSON)."""
    if out.json:
        out.document(team)
        return
    rows = [
        ("team_id", team.team_id),
        ("members", ", ".join(team.members)),
        ("coordinator", team.coordinator or "(none)"),
        ("description", team.description),
        ("member_tmpl", team.member_template),
        ("synthesis_tmpl", team.synthesis_template),
        ("item_tmpl", team.synthesis_item_template),
        ("concurrency", str(team.max_concurrency)),
        ("member_timeout", f"{team.member_timeout_seconds:g} s"),
        ("created", _when(team.create_time)),
        ("updated", _when(team.update_time)),
        ("etag", team.etag),
    ]
    for name, value in rows:
        # Templates may hold newlines: shown as Python literals, on one line.
        shown = repr(value) if name.endswith("_tmpl") else value
        out.line(f"{name + ':':<17}{shown}")


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


async def team_list(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`team list`"""
    teams = await client.list_teams()
    if out.json:
        out.document(teams)
        return EXIT_OK
    print_table(
        out,
        ("TEAM", "MEMBERS", "COORDINATOR", "DESCRIPTION"),
        [(x.team_id, ",".join(x.members), x.coordinator, x.description) for x in teams],
    )
    return EXIT_OK


async def team_get(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`team get TEAM`"""
    print_team(out, await client.get_team(args.team_id))
    return EXIT_OK


async def team_delete(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`team delete TEAM [--etag E]`"""
    await client.delete_team(args.team_id, etag=args.etag)
    if out.json:
        out.document({"deleted": args.team_id})
    else:
        out.line(f"deleted team {args.team_id}")
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


async def _print_collaboration(stream: CollaborationStream, out: Output) -> int:
    """Progress lines (stderr) as participants start and finish, then the final output
    (stdout); with --json, one JSON object per event on stdout."""
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
    async with client.stream_team(args.team_id, args.task) as stream:
        return await _print_collaboration(stream, out)


def _step(text: str) -> t.PipelineStep:
    agent, _, template = text.partition("=")
    return t.PipelineStep(_agent_arg(agent) or "", template)


async def pipeline_run(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`pipeline run --step AGENT=TEMPLATE ... INPUT`"""
    async with client.stream_pipeline(args.step, args.input, session_id=args.session) as stream:
        return await _print_collaboration(stream, out)


# -- wiring -------------------------------------------------------------------------------


async def _execute(args: argparse.Namespace, out: Output) -> int:
    action: Action = args.action
    async with AsyncOrchestrator(args.address, tenant=args.tenant, timeout=args.timeout) as client:
        return await action(client, args, out)


def run_client_command(args: argparse.Namespace) -> int:
    """Run a parsed client command; expected errors become one stderr line and an exit code."""
    out = Output(args.json)
    try:
        return asyncio.run(_execute(args, out))
    except errors.OrchestratorError as error:
        out.note(f"error: {error}")
        return exit_code_for(error)
    except KeyboardInterrupt:
        out.note("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `orchestrator ... | head`: the reader left; nothing more to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection and output")
    group.add_argument(
        "--address",
        default=os.environ.get("ORCHESTRATOR_ADDRESS") or DEFAULT_ADDRESS,
        help="server host:port (ORCHESTRATOR_ADDRESS; default %(default)s)",
    )
    group.add_argument(
        "--tenant",
        default=os.environ.get("ORCHESTRATOR_TENANT") or None,
        help="tenant to act for (ORCHESTRATOR_TENANT; default: the server's default)",
    )
    group.add_argument(
        "--timeout", type=float, default=None, help="deadline of each call in seconds"
    )
    group.add_argument(
        "--json",
        action="store_true",
        help="machine-readable output: one JSON document, or one JSON object per line "
        "for streamed events",
    )
    return common


def _agent_fields(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model name (as the provider knows it)")
    parser.add_argument("--provider", help="provider configured on the server")
    parser.add_argument("--temperature", type=float, help="sampling temperature, 0 to 2")
    parser.add_argument("--max-tokens", type=int, help="most tokens per model call")
    parser.add_argument("--system", help="system message")
    parser.add_argument("--description", help="description")
    parser.add_argument("--memory", type=int, help="history messages sent to the model")
    parser.add_argument(
        "--tool", action="append", help="server tool name (repeatable; replaces on update)"
    )
    parser.add_argument(
        "--label",
        action="append",
        type=_label,
        metavar="KEY=VALUE",
        help="label (repeatable; replaces all labels on update)",
    )
    parser.add_argument(
        "--callable", action="append", metavar="AGENT", help="agent it may call (repeatable)"
    )


def add_client_commands(subparsers: SubParsers) -> None:
    """Register agents, run, chat, sessions, runs, team and pipeline on the console script's
    subparsers."""
    common = _common_options()

    def leaf(parent: SubParsers, name: str, action: Action, help_text: str) -> Any:
        parser = parent.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=[common],
            epilog=EXIT_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.set_defaults(handler=run_client_command, action=action)
        return parser

    def group(name: str, help_text: str) -> SubParsers:
        parser = subparsers.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EXIT_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        children: SubParsers = parser.add_subparsers(
            dest=f"{name}_command", required=True, metavar="COMMAND"
        )
        return children

    agents = group("agents", "create, list, inspect, change and delete agents")
    p = leaf(agents, "create", agents_create, "create an agent")
    p.add_argument("agent_id", metavar="AGENT")
    _agent_fields(p)
    p.add_argument("--default", action="store_true", help="also make it the default agent")
    p.add_argument(
        "--if-not-exists", action="store_true", help="return an existing agent unchanged"
    )
    leaf(agents, "list", agents_list, "list agents").add_argument(
        "--label", action="append", type=_label, metavar="KEY=VALUE", help="filter by label"
    )
    leaf(agents, "get", agents_get, "show an agent").add_argument("agent_id", metavar="AGENT")
    p = leaf(agents, "update", agents_update, "change the given fields of an agent")
    p.add_argument("agent_id", metavar="AGENT")
    _agent_fields(p)
    p.add_argument("--etag", help="only update this revision (see `agents get`)")
    p = leaf(agents, "delete", agents_delete, "delete an agent with its sessions and runs")
    p.add_argument("agent_id", metavar="AGENT")
    p.add_argument("--etag", help="only delete this revision")
    leaf(
        agents, "default", agents_default, "show the default agent, or set it when AGENT is given"
    ).add_argument("agent_id", metavar="AGENT", nargs="?")

    p = leaf(subparsers, "run", run_command, "send one message to an agent, streaming the answer")
    p.add_argument("agent", metavar="AGENT", help="agent id; '-' or '' for the default agent")
    p.add_argument("message", metavar="MESSAGE")
    p.add_argument("--session", help="conversation id (default: the agent's default session)")
    p.add_argument("--request-id", help="idempotency key: repeating it replays the run")
    p.add_argument(
        "--wait", action="store_true", help="queue behind a busy session instead of failing"
    )

    p = leaf(
        subparsers,
        "chat",
        chat_command,
        "chat with an agent: one turn per line of stdin; Ctrl-C cancels the current "
        "answer, /exit or EOF leaves",
    )
    p.add_argument("agent", metavar="AGENT", help="agent id; '-' or '' for the default agent")
    p.add_argument("--session", help="conversation id (default: the agent's default session)")

    sessions = group("sessions", "inspect and clear conversations")
    leaf(sessions, "list", sessions_list, "list an agent's sessions").add_argument(
        "agent_id", metavar="AGENT"
    )
    for name, action, help_text in (
        ("messages", sessions_messages, "show a session's messages"),
        ("delete", sessions_delete, "clear a session's messages and runs"),
    ):
        p = leaf(sessions, name, action, help_text)
        p.add_argument("agent_id", metavar="AGENT")
        p.add_argument("session_id", metavar="SESSION", nargs="?", help="default: 'default'")

    runs = group("runs", "inspect and cancel runs")
    p = leaf(runs, "list", runs_list, "list runs, newest first")
    p.add_argument("--agent", help="only runs of this agent")
    p.add_argument("--session", help="only runs of this session (needs --agent)")
    p.add_argument("--limit", type=int, default=20, help="most runs to show (default 20)")
    leaf(runs, "get", runs_get, "show a run").add_argument("run_id", metavar="RUN")
    _add_collaboration_commands(leaf, group, subparsers)
    leaf(runs, "cancel", runs_cancel, "cancel a queued or running run").add_argument(
        "run_id", metavar="RUN"
    )


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


def _add_collaboration_commands(leaf: Any, group: Any, subparsers: SubParsers) -> None:
    team = group("team", "create, list, inspect, change, delete and run teams of agents")
    p = leaf(team, "create", team_create, "create a team of existing agents")
    p.add_argument("team_id", metavar="TEAM")
    p.add_argument("members", metavar="MEMBER", nargs="+", help="member agent ids")
    p.add_argument("--coordinator", help="agent that synthesizes the members' outputs")
    _team_options(p)
    p.add_argument("--if-not-exists", action="store_true", help="return an existing team")
    leaf(team, "list", team_list, "list teams")
    leaf(team, "get", team_get, "show a team").add_argument("team_id", metavar="TEAM")
    p = leaf(team, "update", team_update, "change the given fields of a team")
    p.add_argument("team_id", metavar="TEAM")
    p.add_argument(
        "--member", action="append", metavar="AGENT", help="member (repeatable; replaces all)"
    )
    p.add_argument("--coordinator", help="coordinator agent ('' for none)")
    _team_options(p)
    p.add_argument("--etag", help="only update this revision (see `team get`)")
    p = leaf(team, "delete", team_delete, "delete a team (its past runs are kept)")
    p.add_argument("team_id", metavar="TEAM")
    p.add_argument("--etag", help="only delete this revision")
    p = leaf(
        team,
        "run",
        team_run,
        "run a team on a task: progress per member on stderr, the final output on stdout",
    )
    p.add_argument("team_id", metavar="TEAM")
    p.add_argument("task", metavar="TASK")

    pipeline = group("pipeline", "run agents one after another")
    p = leaf(
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


__all__ = ["EXIT_CODES", "add_client_commands", "exit_code_for", "run_client_command"]
