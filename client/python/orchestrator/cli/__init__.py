"""The client commands of the `orchestrator` console script: agents, run, chat, sessions,
runs, team and pipeline.

The console script itself lives in the server package (`orchestrator_server.cli`), which
registers `serve` and calls `add_client_commands`. Every command talks to a server with
AsyncOrchestrator; `--json` prints one JSON document (one JSON object per line for
streamed events); expected errors print one line on stderr and exit with the code of
their class (EXIT_CODES), never a traceback.

One module per resource adds its commands (`agents`, `turns` for run and chat,
`sessions`, `runs`, `teams` for team and pipeline); `tree` holds what they share,
`output` how results are printed, `exit_codes` the exit codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import access, agents, runs, sessions, teams, turns
from .exit_codes import EXIT_CODES, exit_code_for
from .tree import CommandTree, run_client_command

if TYPE_CHECKING:
    from .tree import SubParsers


def add_client_commands(subparsers: SubParsers) -> None:
    """Register agents, run, chat, sessions, runs, team, pipeline, keys, audit and usage
    on the console script's subparsers."""
    tree = CommandTree(subparsers)
    for resource in (agents, turns, sessions, runs, teams, access):
        resource.register(tree)
    access.register_usage(tree)


__all__ = ["EXIT_CODES", "add_client_commands", "exit_code_for", "run_client_command"]
