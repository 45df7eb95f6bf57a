"""`run` (one turn, streamed) and `chat` (a conversation, a turn per line of stdin)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from .. import errors
from .. import types as t
from .._client import AsyncOrchestrator
from .._stream import RunStream
from .exit_codes import EXIT_CANCELLED, EXIT_OK
from .output import Output
from .tree import CommandTree, agent_arg


async def print_events(stream: RunStream, out: Output) -> int:
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
        agent_arg(args.agent),
        session_id=args.session,
        request_id=args.request_id,
        wait_if_busy=args.wait,
        detach=args.detach,
    ) as stream:
        if args.detach:
            return await print_run_id(stream, out)
        return await print_events(stream, out)


async def print_run_id(stream: RunStream, out: Output) -> int:
    """`run --detach`: the run's id once it is stored (it goes on without this process)."""
    async for event in stream:
        if isinstance(event, t.RunStarted) and event.run_id == stream.run_id:
            if out.json:
                out.json_line(event)
            else:
                out.text(f"{event.run_id}\n")
            return EXIT_OK
    return EXIT_OK


async def _read_message(out: Output, prompt: bool) -> str | None:
    """The next message from stdin, None at its end or on /exit."""
    loop = asyncio.get_running_loop()
    while True:
        if prompt:
            out.text("> ")
        line: str = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return None
        message = line.strip()
        if message in ("/exit", "/quit"):
            return None
        if message:
            return message


async def chat_command(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`chat AGENT`: one conversation on one stream, a turn per line of stdin."""
    loop = asyncio.get_running_loop()
    prompt = sys.stdin.isatty() and not out.json
    current: list[RunStream] = []

    def interrupt() -> None:
        # Ctrl-C stops the answer being written, not the chat.
        if current:
            current[0].cancel()
        else:
            out.note("(type /exit or press Ctrl-D to leave)")

    async with client.chat(agent_arg(args.agent), session_id=args.session) as chat:
        loop.add_signal_handler(signal.SIGINT, interrupt)
        try:
            if prompt:
                out.note("chatting; Ctrl-C cancels an answer, /exit or Ctrl-D leaves")
            while (message := await _read_message(out, prompt)) is not None:
                turn = chat.send(message)
                current[:] = [turn]
                try:
                    await print_events(turn, out)
                except errors.OrchestratorError as error:
                    # A failed turn does not end the conversation.
                    out.note(f"error: {error}")
                finally:
                    current.clear()
        finally:
            loop.remove_signal_handler(signal.SIGINT)
    return EXIT_OK


def register(tree: CommandTree) -> None:
    """Add `run` and `chat`."""
    p = tree.leaf(
        tree.top, "run", run_command, "send one message to an agent, streaming the answer"
    )
    p.add_argument("agent", metavar="AGENT", help="agent id; '-' or '' for the default agent")
    p.add_argument("message", metavar="MESSAGE")
    p.add_argument("--session", help="conversation id (default: the agent's default session)")
    p.add_argument("--request-id", help="idempotency key: repeating it replays the run")
    p.add_argument(
        "--wait", action="store_true", help="queue behind a busy session instead of failing"
    )
    p.add_argument(
        "--detach",
        action="store_true",
        help="print the run id once it is stored and exit; the run goes on (`runs follow`)",
    )

    p = tree.leaf(
        tree.top,
        "chat",
        chat_command,
        "chat with an agent: one turn per line of stdin; Ctrl-C cancels the current "
        "answer, /exit or EOF leaves",
    )
    p.add_argument("agent", metavar="AGENT", help="agent id; '-' or '' for the default agent")
    p.add_argument("--session", help="conversation id (default: the agent's default session)")
