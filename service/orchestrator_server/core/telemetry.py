"""The core's tracing port: spans of runs, model calls and tool calls, named and
attributed after the OpenTelemetry GenAI semantic conventions (semantic-conventions
v1.41.0, `docs/gen-ai`, status "Development"): `invoke_agent {agent}`, `chat {model}`,
`execute_tool {tool}`, `invoke_workflow {pipeline or team}`.

The core says what happened; an adapter (`orchestrator_server.telemetry`) records it.
Without one (`NoTracer`, the default) a span costs one shared object and nothing is
recorded. Message contents are attributes only when the operator opted in
(`Tracer.record_content`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from .log_context import CURRENT_TRACE

AttributeValue = str | int | float | bool | Sequence[str]
Attributes = Mapping[str, AttributeValue]

# Attribute names of the GenAI conventions, and ours (prefixed "orchestrator.").
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
AGENT_ID = "gen_ai.agent.id"
AGENT_NAME = "gen_ai.agent.name"
CONVERSATION = "gen_ai.conversation.id"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
TOOL_NAME = "gen_ai.tool.name"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
ERROR_TYPE = "error.type"
TENANT = "orchestrator.tenant"
RUN_ID = "orchestrator.run.id"
RUN_STATUS = "orchestrator.run.status"
TOOL_KIND = "orchestrator.tool.kind"  # server, mcp, client or agent
WORKFLOW = "orchestrator.workflow.kind"  # pipeline or team
# The conventions' tool types: a function the application runs, or an extension (an
# external service the agent reaches: MCP servers, other agents).
_TOOL_TYPES = {"server": "function", "client": "function", "mcp": "extension"}


def tool_type(kind: str) -> str:
    """gen_ai.tool.type of a tool that runs at `kind` (server, mcp, client, agent)."""
    return _TOOL_TYPES.get(kind, "extension")


class Span(Protocol):
    """An open span: attributes can be added until it ends."""

    def set(self, attributes: Attributes) -> None:
        """Add or replace attributes."""

    def fail(self, error_type: str, description: str = "") -> None:
        """Mark the span failed: `error.type` and an error status."""

    def settle(self) -> None:
        """The outcome is recorded: an exception leaving the block later (a cancel that
        came while a success was being written) does not change it."""


class Tracer(Protocol):
    """Opens spans nested under the current one (the caller's, for the first)."""

    @property
    def record_content(self) -> bool:
        """Whether message contents and tool arguments/results may be recorded."""

    def span(self, name: str, attributes: Attributes) -> AbstractContextManager[Span]:
        """A span that is current inside the block; an exception escaping the block
        marks it failed with the exception's class (or an OrchestratorError's reason)."""

    def traceparent(self) -> str | None:
        """The W3C `traceparent` an outgoing request of the current span carries."""


class _NoSpan:
    __slots__ = ()

    def set(self, attributes: Attributes) -> None:
        """Nothing is recorded."""

    def fail(self, error_type: str, description: str = "") -> None:
        """Nothing is recorded."""

    def settle(self) -> None:
        """Nothing is recorded."""

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


_NO_SPAN = _NoSpan()


class NoTracer:
    """Records nothing. Outgoing requests still carry the caller's trace (same trace id,
    a new parent id) so that a provider's logs can be joined to it."""

    record_content = False

    def span(self, name: str, attributes: Attributes) -> _NoSpan:
        """The shared do-nothing span."""
        return _NO_SPAN

    def traceparent(self) -> str | None:
        """The caller's trace with a new parent id, if the caller sent one."""
        trace = CURRENT_TRACE.get()
        return trace.child_traceparent() if trace is not None else None
