"""Rows of the SQLite store <-> domain types: column lists and (de)serialisation."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from typing import Any, Protocol

from ..core.types import (
    Agent,
    AgentAccess,
    AgentSpec,
    MemoryConfig,
    Message,
    ModelSpec,
    Role,
    Run,
    RunStatus,
    ToolCall,
    Usage,
)


class Row(Protocol):
    """A result row of either store's driver (sqlite3 tuples, asyncpg Records)."""

    def __getitem__(self, index: int, /) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...


AGENT_COLUMNS = "a.agent_id, a.spec, a.create_time, a.update_time, a.revision, t.default_agent_id"
RUN_COLUMNS = (
    "run_id, agent_id, session_id, status, input, create_time, request_id, parent_run_id, "
    "output, prompt_tokens, completion_tokens, error_reason, error_message, start_time, "
    "end_time, owner, trace_id, model_calls"
)
MESSAGE_COLUMNS = "seq, role, content, tool_calls, tool_call_id, run_id, create_time"


def spec_to_json(spec: AgentSpec) -> str:
    """Serialise an agent spec for the `spec` column."""
    return json.dumps(asdict(spec), separators=(",", ":"), sort_keys=True)


def spec_from_json(text: str) -> AgentSpec:
    """Parse the `spec` column; unknown keys from newer versions are ignored."""
    data = json.loads(text)
    model = data.get("model") or {}
    return AgentSpec(
        system_message=data.get("system_message", ""),
        description=data.get("description", ""),
        model=ModelSpec(
            provider=model.get("provider", ""),
            model=model.get("model", ""),
            temperature=model.get("temperature"),
            max_tokens=model.get("max_tokens"),
            top_p=model.get("top_p"),
            stop=tuple(model.get("stop") or ()),
            seed=model.get("seed"),
        ),
        memory=MemoryConfig(max_messages=(data.get("memory") or {}).get("max_messages", 0)),
        tools=tuple(data.get("tools") or ()),
        labels=dict(data.get("labels") or {}),
        callable_agents=tuple(data.get("callable_agents") or ()),
        max_model_calls=data.get("max_model_calls", 0),
        access=AgentAccess(
            runners=tuple((data.get("access") or {}).get("runners") or ()),
            readers=tuple((data.get("access") or {}).get("readers") or ()),
        ),
    )


def agent_from_row(row: Row) -> Agent:
    """An agent from a row of AGENT_COLUMNS."""
    agent_id, spec, create_time, update_time, revision, default_id = row
    return Agent(
        agent_id=agent_id,
        spec=spec_from_json(spec),
        create_time=create_time,
        update_time=update_time,
        revision=revision,
        is_default=default_id == agent_id,
    )


def _same(value: Any) -> str:
    text: str = value  # SQLite returns the text as stored
    return text


def run_from_row(row: Row, text: Callable[[Any], str] = _same) -> Run:
    """A run from a row of RUN_COLUMNS (free text read with `text`: the PostgreSQL store
    keeps it as bytes)."""
    return Run(
        run_id=row[0],
        agent_id=row[1],
        session_id=row[2],
        status=RunStatus(row[3]),
        input=text(row[4]),
        create_time=row[5],
        request_id=row[6],
        parent_run_id=row[7],
        output=text(row[8]),
        usage=Usage(row[9], row[10], row[17]),
        error_reason=row[11],
        error_message=text(row[12]),
        start_time=row[13],
        end_time=row[14],
        owner=row[15],
        trace_id=row[16],
    )


_ROLES = {role.value: role for role in Role}


def message_from_row(row: Row, text: Callable[[Any], str] = _same) -> Message:
    """A message from a row of MESSAGE_COLUMNS (content read with `text`)."""
    seq, role, content, tool_calls, tool_call_id, run_id, create_time = row
    # Most messages call no tool: skip decoding their empty list (history loads read up to
    # the memory window's worth of rows on every turn).
    calls = (
        ()
        if tool_calls == "[]"
        else tuple(ToolCall(c["id"], c["name"], c["arguments"]) for c in json.loads(tool_calls))
    )
    return Message(
        role=_ROLES[role],
        content=text(content),
        tool_calls=calls,
        tool_call_id=tool_call_id,
        run_id=run_id,
        sequence=seq,
        create_time=create_time,
    )


def tool_calls_json(calls: Sequence[ToolCall]) -> str:
    """The `tool_calls` column of a message."""
    return json.dumps(
        [{"id": c.call_id, "name": c.name, "arguments": c.arguments_json} for c in calls],
        separators=(",", ":"),
    )
