"""`keys create|list|revoke` and `audit`: a tenant admin's API keys and audit trail."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from .._access import ApiKey, AuditEvent
from .._client import AsyncOrchestrator
from .exit_codes import EXIT_OK
from .output import Output, when
from .tree import CommandTree, showing

ROLES = ("admin", "editor", "runner", "viewer")


def print_keys(out: Output, keys: list[ApiKey]) -> None:
    """Keys as a table (or as JSON); never a secret."""
    out.table(
        keys,
        ("KEY", "ROLES", "NAME", "EXPIRES", "REVOKED", "LAST USED"),
        lambda k: (
            k.key_id,
            ",".join(k.roles),
            k.display_name,
            when(k.expire_time) if k.expire_time else "never",
            when(k.revoke_time) if k.revoke_time else "",
            when(k.last_use_time) if k.last_use_time else "",
        ),
    )


def print_events(out: Output, events: list[AuditEvent]) -> None:
    """Audit events as a table (or as JSON), newest first."""
    out.table(
        events,
        ("TIME", "PRINCIPAL", "METHOD", "RESOURCE", "OUTCOME", "REASON", "PEER"),
        lambda e: (
            when(e.time),
            e.principal or "-",
            e.method,
            e.resource or "-",
            e.outcome,
            e.reason,
            e.peer,
        ),
    )


async def keys_create(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`keys create --role R [--name N] [--expires-in-days D]`: prints the secret once."""
    expires = (
        datetime.now(UTC) + timedelta(days=args.expires_in_days) if args.expires_in_days else None
    )
    key, secret = await client.create_api_key(
        args.role, display_name=args.name, expire_time=expires
    )
    out.result(
        {"key_id": key.key_id, "roles": list(key.roles), "secret": secret},
        f"created API key {key.key_id}; its secret (shown once):\n{secret}",
    )
    return EXIT_OK


async def keys_revoke(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`keys revoke KEY`"""
    key = await client.revoke_api_key(args.key_id)
    out.result({"revoked": key.key_id}, f"revoked API key {key.key_id}")
    return EXIT_OK


def _since(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 time, got {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def register(tree: CommandTree) -> None:
    """Add `keys` and `audit`."""
    keys = tree.group("keys", "manage the tenant's API keys (admins)")
    create = tree.leaf(keys, "create", keys_create, "create an API key; prints its secret once")
    create.add_argument("--role", action="append", choices=ROLES, required=True)
    create.add_argument("--name", default="", help="what the key is for")
    create.add_argument("--expires-in-days", type=float, default=None)
    listing = showing(lambda client, args: _all_keys(client), print_keys)
    tree.leaf(keys, "list", listing, "list the tenant's API keys (never their secrets)")
    revoke = tree.leaf(keys, "revoke", keys_revoke, "revoke an API key")
    revoke.add_argument("key_id", metavar="KEY")
    audit = tree.leaf(
        tree.group("audit", "read the tenant's audit trail (admins)"),
        "list",
        showing(_events, print_events),
        "list audit events, newest first",
    )
    audit.add_argument("--principal", default="")
    audit.add_argument("--method", default="")
    audit.add_argument("--since", type=_since, default=None, help="ISO 8601 time")
    audit.add_argument("--limit", type=int, default=100, help="at most this many events")


async def _all_keys(client: AsyncOrchestrator) -> list[ApiKey]:
    return [key async for key in client.iter_api_keys()]


async def _events(client: AsyncOrchestrator, args: argparse.Namespace) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    async for event in client.iter_audit_events(
        start_time=args.since, principal=args.principal, method=args.method
    ):
        events.append(event)
        if len(events) >= args.limit:
            break
    return events
