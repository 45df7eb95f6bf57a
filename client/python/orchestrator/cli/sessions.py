"""`sessions list|messages|delete`: an agent's conversations."""

from __future__ import annotations

import argparse

from .. import types as t
from .._client import AsyncOrchestrator
from .exit_codes import EXIT_OK
from .output import Output, when
from .tree import CommandTree, showing


def print_sessions(out: Output, sessions: list[t.Session]) -> None:
    """Sessions as a table (or as JSON)."""
    out.table(
        sessions,
        ("SESSION", "MESSAGES", "UPDATED"),
        lambda s: (s.session_id, str(s.message_count), when(s.update_time)),
    )


def print_messages(out: Output, messages: list[t.Message]) -> None:
    """Messages, one per line (or as JSON)."""
    if out.json:
        out.document(messages)
        return
    for message in messages:
        out.line(f"[{message.sequence}] {message.role.value}: {message.content}")


async def sessions_delete(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`sessions delete AGENT [SESSION]`"""
    deleted = await client.delete_session(args.agent_id, args.session_id)
    out.result({"deleted_messages": deleted}, f"deleted {deleted} messages")
    return EXIT_OK


def register(tree: CommandTree) -> None:
    """Add `sessions` and its subcommands."""
    sessions = tree.group("sessions", "inspect and clear conversations")
    listing = showing(lambda client, args: client.list_sessions(args.agent_id), print_sessions)
    tree.leaf(sessions, "list", listing, "list an agent's sessions").add_argument(
        "agent_id", metavar="AGENT"
    )
    messages = showing(
        lambda client, args: client.list_messages(args.agent_id, args.session_id), print_messages
    )
    for name, action, help_text in (
        ("messages", messages, "show a session's messages"),
        ("delete", sessions_delete, "clear a session's messages and runs"),
    ):
        p = tree.leaf(sessions, name, action, help_text)
        p.add_argument("agent_id", metavar="AGENT")
        p.add_argument("session_id", metavar="SESSION", nargs="?", help="default: 'default'")
