"""`CommandTree`: how the client commands are added to the console script, and run.

Every command is an `Action`: a coroutine given a connected AsyncOrchestrator, the
parsed arguments and the Output; it returns the exit code. `run_client_command` runs the
one the arguments name, turning expected errors into one line on stderr and the exit
code of their class.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from .. import errors
from .._channel import DEFAULT_ADDRESS, tls_credentials
from .._client import AsyncOrchestrator
from .exit_codes import EXIT_ERROR, EXIT_HELP, EXIT_INTERRUPTED, EXIT_OK, exit_code_for
from .output import Output

T = TypeVar("T")
Action = Callable[[AsyncOrchestrator, argparse.Namespace, Output], Awaitable[int]]
if TYPE_CHECKING:
    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


async def _execute(args: argparse.Namespace, out: Output) -> int:
    action: Action = args.action
    credentials = (
        tls_credentials(args.ca_cert, args.client_cert, args.client_key)
        if args.ca_cert or args.client_cert or args.tls
        else None
    )
    async with AsyncOrchestrator(
        args.address,
        tenant=args.tenant,
        timeout=args.timeout,
        token=args.token,
        credentials=credentials,
    ) as client:
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


def label_arg(text: str) -> tuple[str, str]:
    """A `KEY=VALUE` argument."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def agent_arg(value: str) -> str | None:
    """An agent argument: `-` or empty means the default agent."""
    return None if value in ("", "-") else value


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
        "--token",
        default=None,
        help="API key or JWT sent as a bearer credential (default: ORCHESTRATOR_TOKEN)",
    )
    env = os.environ.get
    group.add_argument("--tls", action="store_true", help="TLS with the system's CA roots")
    group.add_argument(
        "--ca-cert", default=env("ORCHESTRATOR_CA_CERT"), help="PEM of the server's CA (TLS)"
    )
    group.add_argument(
        "--client-cert",
        default=env("ORCHESTRATOR_CLIENT_CERT"),
        help="PEM of this client's certificate (mutual TLS; ORCHESTRATOR_CLIENT_CERT)",
    )
    group.add_argument(
        "--client-key",
        default=env("ORCHESTRATOR_CLIENT_KEY"),
        help="PEM of this client's key (ORCHESTRATOR_CLIENT_KEY)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        help="machine-readable output: one JSON document, or one JSON object per line "
        "for streamed events",
    )
    return common


def showing(
    fetch: Callable[[AsyncOrchestrator, argparse.Namespace], Awaitable[T]],
    show: Callable[[Output, T], None],
) -> Action:
    """The action that prints, with `show`, what `fetch` returns (`agents get`, ...)."""

    async def action(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
        show(out, await fetch(client, args))
        return EXIT_OK

    return action


class CommandTree:
    """The console script's subcommands, to which each resource module adds its own."""

    def __init__(self, subparsers: SubParsers) -> None:
        self.top = subparsers
        self._common = _common_options()

    def group(self, name: str, help_text: str) -> SubParsers:
        """A command with subcommands (`agents`, `runs`, ...)."""
        parser = self.top.add_parser(
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

    def leaf(
        self, parent: SubParsers, name: str, action: Action, help_text: str
    ) -> argparse.ArgumentParser:
        """A command that runs `action`, with the connection and output options."""
        parser = parent.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=[self._common],
            epilog=EXIT_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.set_defaults(handler=run_client_command, action=action)
        return parser

    def delete_command(
        self,
        parent: SubParsers,
        noun: str,
        delete: Callable[[AsyncOrchestrator, str, str | None], Awaitable[None]],
        help_text: str,
    ) -> None:
        """`delete ID [--etag E]` of a resource: prints `deleted NOUN ID`, or in JSON
        `{"deleted": ID}`."""
        dest = f"{noun}_id"

        async def action(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
            resource_id: str = getattr(args, dest)
            await delete(client, resource_id, args.etag)
            out.result({"deleted": resource_id}, f"deleted {noun} {resource_id}")
            return EXIT_OK

        parser = self.leaf(parent, "delete", action, help_text)
        parser.add_argument(dest, metavar=noun.upper())
        parser.add_argument("--etag", help="only delete this revision")
