"""Conversions every resource shares: timestamps, token usage, run status."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from orchestrator.v1 import run_pb2

from ...core import types

_STATUS_TO_PB = {
    types.RunStatus.QUEUED: run_pb2.RUN_STATUS_QUEUED,
    types.RunStatus.RUNNING: run_pb2.RUN_STATUS_RUNNING,
    types.RunStatus.COMPLETED: run_pb2.RUN_STATUS_COMPLETED,
    types.RunStatus.FAILED: run_pb2.RUN_STATUS_FAILED,
    types.RunStatus.CANCELLED: run_pb2.RUN_STATUS_CANCELLED,
    types.RunStatus.INTERRUPTED: run_pb2.RUN_STATUS_INTERRUPTED,
}


def timestamp(seconds: float | None) -> Timestamp | None:
    """A protobuf Timestamp from Unix seconds (None stays unset)."""
    if seconds is None:
        return None
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def usage_to_pb(usage: types.Usage) -> run_pb2.Usage:
    """Token usage."""
    return run_pb2.Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        model_calls=usage.model_calls,
    )


def run_status_to_pb(status: types.RunStatus) -> run_pb2.RunStatus.ValueType:
    """RunStatus enum value."""
    return _STATUS_TO_PB[status]
