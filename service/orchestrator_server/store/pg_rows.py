"""Rows of the PostgreSQL store <-> domain types, and the free text kept as BYTEA."""

from __future__ import annotations

from ..core.types import Message, Run
from .sqlite_rows import Row, message_from_row, run_from_row

RUN_COLUMNS = (
    "run_id, agent_id, session_id, status, input, create_time, request_id, parent_run_id, "
    "output, prompt_tokens, completion_tokens, error_reason, error_message, start_time, "
    "end_time, owner, trace_id, model_calls"
)
MESSAGE_COLUMNS = "seq, role, content, tool_calls, tool_call_id, run_id, create_time"


def encode(text: str) -> bytes:
    """Free text as stored (BYTEA): lossless for NUL and lone surrogates."""
    return text.encode("utf-8", "surrogatepass")


def decode(data: bytes) -> str:
    """Stored free text back to a str."""
    return bytes(data).decode("utf-8", "surrogatepass")


def run_from_record(row: Row) -> Run:
    """A run from a row of RUN_COLUMNS."""
    return run_from_row(row, decode)


def message_from_record(row: Row) -> Message:
    """A message from a row of MESSAGE_COLUMNS."""
    return message_from_row(row, decode)
