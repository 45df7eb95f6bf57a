"""`keys create|list|revoke`, `audit` and `usage`: a tenant admin's API keys, audit trail
and usage."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from .._access import ApiKey, AuditEvent
from .._client import AsyncOrchestrator
from .._usage import UsageRecord
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


def print_usage(out: Output, records: list[UsageRecord]) -> None:
    """Usage records as a table (or as JSON), newest period first, with a total line."""
    total = UsageRecord(
        "TOTAL",
        None,
        None,
        *(sum(getattr(r, name) for r in records) for name in _COUNTS),
    )
    out.table(
        [*records, total] if records else [],
        ("PERIOD", "AGENT", "RUNS", "MODEL CALLS", "PROMPT", "COMPLETION", "TOTAL"),
        lambda r: (
            when(r.period_start) if r.period_start else "",
            r.agent_id,
            *(str(getattr(r, name)) for name in _COUNTS),
        ),
    )


_COUNTS = ("runs", "model_calls", "prompt_tokens", "completion_tokens", "total_tokens")


async def _usage(client: AsyncOrchestrator, args: argparse.Namespace) -> list[UsageRecord]:
    records: list[UsageRecord] = []
    async for record in client.iter_usage(
        granularity="hour" if args.hourly else "day",
        start_time=args.since,
        end_time=args.until,
        agent_id=args.agent,
    ):
        records.append(record)
        if len(records) >= args.limit:
            break
    return records


def register_usage(tree: CommandTree) -> None:
    """Add `usage`."""
    usage = tree.leaf(
        tree.group("usage", "read the tenant's usage: runs, model calls, tokens (admins)"),
        "list",
        showing(_usage, print_usage),
        "usage per agent and day (or hour), newest first, with a total",
    )
    usage.add_argument("--hourly", action="store_true", help="per hour instead of per day")
    usage.add_argument("--since", type=_since, default=None, help="ISO 8601 time")
    usage.add_argument("--until", type=_since, default=None, help="ISO 8601 time")
    usage.add_argument("--agent", default="", help="only this agent")
    usage.add_argument("--limit", type=int, default=1000, help="at most this many records")
