"""What a log line of the service says about where it comes from: the run a task works
for and the trace the call belongs to, kept in context variables (a run's task and the
tasks it starts inherit them). The core only sets them; the log formatter reads them."""

from __future__ import annotations

import secrets
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
    flags: str = "01"

    def child_traceparent(self) -> str:
        """A `traceparent` for a request this service makes within the trace when it
        records no spans (tracing off): the same trace id, a new parent id, the caller's
        flags."""
        return f"00-{self.trace_id}-{secrets.token_hex(8)}-{self.flags}"


CURRENT_RUN: ContextVar[RunContext | None] = ContextVar("orchestrator_run", default=None)
CURRENT_TRACE: ContextVar[TraceContext | None] = ContextVar("orchestrator_trace", default=None)


def bind_run(run_id: str, agent_id: str) -> None:
    """Log lines of this task (and of the tasks it starts) are about this run."""
    CURRENT_RUN.set(RunContext(run_id, agent_id))


def bind_trace(trace: TraceContext | None) -> None:
    """Log lines of this call belong to this trace."""
    CURRENT_TRACE.set(trace)
