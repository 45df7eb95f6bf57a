"""Rows of the PostgreSQL store <-> domain types, and the free text kept as BYTEA."""

from __future__ import annotations

import json

from ..core.types import Message, Role, Run, RunStatus, ToolCall, Usage
from .sqlite_rows import Row

RUN_COLUMNS = (
    "run_id, agent_id, session_id, status, input, create_time, request_id, parent_run_id, "
    "output, prompt_tokens, completion_tokens, error_reason, error_message, start_time, "
    "end_time, owner"
)
MESSAGE_COLUMNS = "seq, role, content, tool_calls, tool_call_id, run_id, create_time"
_ROLES = {role.value: role for role in Role}


def encode(text: str) -> bytes:
    """Free text as stored (BYTEA): lossless for NUL and lone surrogates."""
    return text.encode("utf-8", "surrogatepass")


def decode(data: bytes) -> str:
    """Stored free text back to a str."""
    return bytes(data).decode("utf-8", "surrogatepass")


def run_from_record(row: Row) -> Run:
    """A run from a row of RUN_COLUMNS."""
    return Run(
        run_id=row[0],
        agent_id=row[1],
        session_id=row[2],
        status=RunStatus(row[3]),
        input=decode(row[4]),
        create_time=row[5],
        request_id=row[6],
        parent_run_id=row[7],
        output=decode(row[8]),
        usage=Usage(row[9], row[10]),
        error_reason=row[11],
        error_message=decode(row[12]),
        start_time=row[13],
        end_time=row[14],
        owner=row[15],
    )


def message_from_record(row: Row) -> Message:
    """A message from a row of MESSAGE_COLUMNS."""
    seq, role, content, tool_calls, tool_call_id, run_id, create_time = row
    calls = () if tool_calls == "[]" else tuple(_tool_calls(tool_calls))
    return Message(
        role=_ROLES[role],
        content=decode(content),
        tool_calls=calls,
        tool_call_id=tool_call_id,
        run_id=run_id,
        sequence=seq,
        create_time=create_time,
    )


def _tool_calls(text: str) -> list[ToolCall]:
    return [ToolCall(c["id"], c["name"], c["arguments"]) for c in json.loads(text)]
