"""`agents create|list|get|update|delete|default`."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from .. import types as t
from .._client import AsyncOrchestrator
from .exit_codes import EXIT_OK, EXIT_USAGE
from .output import Output, when
from .tree import CommandTree, label_arg, showing


def model_text(model: t.Model) -> str:
    """`provider/model` and the sampling parameters that are set."""
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
    rows = [
        ("agent_id", agent.agent_id),
        ("default", "yes" if agent.is_default else "no"),
        ("model", model_text(agent.model)),
        ("memory", str(agent.buffer_memory.max_messages or "server default")),
        ("system_message", agent.system_message),
        ("description", agent.description),
        ("tools", ", ".join(agent.tools)),
        ("labels", ", ".join(f"{k}={v}" for k, v in sorted(agent.labels.items()))),
        ("callable_agents", ", ".join(agent.callable_agents)),
        ("created", when(agent.create_time)),
        ("updated", when(agent.update_time)),
        ("etag", agent.etag),
    ]
    out.record(agent, rows, 17)


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


def _memory(args: argparse.Namespace) -> t.BufferMemory | None:
    return t.BufferMemory(args.memory) if args.memory is not None else None


async def agents_create(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`agents create ID ...`"""
    agent = await client.create_agent(
        args.agent_id,
        model=_model_from_args(args),
        system_message=args.system or "",
        description=args.description or "",
        tools=args.tool or (),
        buffer_memory=_memory(args),
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
    out.table(
        agents,
        ("AGENT", "DEFAULT", "MODEL", "DESCRIPTION"),
        lambda a: (a.agent_id, "*" if a.is_default else "", model_text(a.model), a.description),
    )
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
        "buffer_memory": _memory(args),
        "tools": args.tool,
        "labels": dict(args.label) if args.label is not None else None,
        "callable_agents": args.callable,
    }
    given = {k: v for k, v in fields.items() if v is not None}
    if not given:
        out.note("error: nothing to update; pass at least one field option (see --help)")
        return EXIT_USAGE
    print_agent(out, await client.update_agent(args.agent_id, etag=etag, **given))
    return EXIT_OK


async def agents_default(client: AsyncOrchestrator, args: argparse.Namespace, out: Output) -> int:
    """`agents default [ID]`: set the default agent, or show it."""
    if args.agent_id:
        agent = await client.set_default_agent(args.agent_id)
    else:
        agent = await client.get_default_agent()
    out.result(agent, agent.agent_id)
    return EXIT_OK


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
        type=label_arg,
        metavar="KEY=VALUE",
        help="label (repeatable; replaces all labels on update)",
    )
    parser.add_argument(
        "--callable", action="append", metavar="AGENT", help="agent it may call (repeatable)"
    )


def register(tree: CommandTree) -> None:
    """Add `agents` and its subcommands."""
    agents = tree.group("agents", "create, list, inspect, change and delete agents")
    p = tree.leaf(agents, "create", agents_create, "create an agent")
    p.add_argument("agent_id", metavar="AGENT")
    _agent_fields(p)
    p.add_argument("--default", action="store_true", help="also make it the default agent")
    p.add_argument(
        "--if-not-exists", action="store_true", help="return an existing agent unchanged"
    )
    tree.leaf(agents, "list", agents_list, "list agents").add_argument(
        "--label", action="append", type=label_arg, metavar="KEY=VALUE", help="filter by label"
    )
    get = showing(lambda client, args: client.get_agent(args.agent_id), print_agent)
    tree.leaf(agents, "get", get, "show an agent").add_argument("agent_id", metavar="AGENT")
    p = tree.leaf(agents, "update", agents_update, "change the given fields of an agent")
    p.add_argument("agent_id", metavar="AGENT")
    _agent_fields(p)
    p.add_argument("--etag", help="only update this revision (see `agents get`)")
    delete = AsyncOrchestrator.delete_agent
    tree.delete_command(agents, "agent", delete, "delete an agent with its sessions and runs")
    tree.leaf(
        agents, "default", agents_default, "show the default agent, or set it when AGENT is given"
    ).add_argument("agent_id", metavar="AGENT", nargs="?")
