"""Usage records: protobuf <-> domain."""

from __future__ import annotations

from orchestrator.v1 import usage_pb2

from ...core.errors import InvalidArgumentError
from ...core.usage import DAY, HOUR, UsageRow
from .common import timestamp

_PERIODS = {
    usage_pb2.USAGE_GRANULARITY_UNSPECIFIED: DAY,
    usage_pb2.USAGE_GRANULARITY_DAY: DAY,
    usage_pb2.USAGE_GRANULARITY_HOUR: HOUR,
}


def period_of(granularity: int) -> int:
    """The seconds of a period of the granularity; a number the contract does not
    define is INVALID_ARGUMENT."""
    if granularity not in _PERIODS:
        raise InvalidArgumentError.for_field(
            "granularity", f"{granularity} is not a UsageGranularity value"
        )
    return _PERIODS[usage_pb2.UsageGranularity.ValueType(granularity)]


def usage_record_to_pb(row: UsageRow, period: int) -> usage_pb2.UsageRecord:
    """One agent's usage in one period."""
    return usage_pb2.UsageRecord(
        agent_id=row.agent_id,
        period_start=timestamp(row.period_start),
        period_end=timestamp(row.period_start + period),
        runs=row.runs,
        model_calls=row.model_calls,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        total_tokens=row.prompt_tokens + row.completion_tokens,
    )
