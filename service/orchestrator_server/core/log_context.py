"""What a log line of the service says about where it comes from: the run a task works
for and the trace the call belongs to, kept in context variables (a run's task and the
tasks it starts inherit them). The core only sets them; the log formatter reads them."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RunContext:
    """The run a log line is about."""

    run_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class TraceContext:
    """The W3C trace the call belongs to (from its `traceparent`)."""

    trace_id: str
    parent_span_id: str


CURRENT_RUN: ContextVar[RunContext | None] = ContextVar("orchestrator_run", default=None)
CURRENT_TRACE: ContextVar[TraceContext | None] = ContextVar("orchestrator_trace", default=None)


def bind_run(run_id: str, agent_id: str) -> None:
    """Log lines of this task (and of the tasks it starts) are about this run."""
    CURRENT_RUN.set(RunContext(run_id, agent_id))


def bind_trace(trace: TraceContext | None) -> None:
    """Log lines of this call belong to this trace."""
    CURRENT_TRACE.set(trace)
