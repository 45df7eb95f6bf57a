"""The GenAI spans of a run, its model calls, its tool calls and of pipelines and teams:
their names and attributes (see `telemetry.py` for the conventions followed)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from . import telemetry as t
from .model_port import ChatMessage, ModelTurnEnd
from .types import Agent, Run, RunStatus, ToolCall

# The characters of a model-chosen name an attribute keeps.
MAX_NAME_CHARS = 256


def agent_span(
    tracer: t.Tracer, tenant: str, agent: Agent, run: Run
) -> AbstractContextManager[t.Span]:
    """`invoke_agent {agent}`: one run of an agent, from its admission to its outcome."""
    model = agent.spec.model
    return tracer.span(
        f"invoke_agent {agent.agent_id}",
        {
            t.OPERATION: "invoke_agent",
            t.AGENT_ID: agent.agent_id,
            t.AGENT_NAME: agent.agent_id,
            t.CONVERSATION: run.session_id,
            t.PROVIDER: model.provider,
            t.REQUEST_MODEL: model.model,
            t.TENANT: tenant,
            t.RUN_ID: run.run_id,
        },
    )


def run_ended(span: t.Span, run: Run) -> None:
    """The run's outcome and tokens on its span; a run that did not complete failed."""
    span.set(
        {
            t.RUN_STATUS: run.status.value,
            t.INPUT_TOKENS: run.usage.prompt_tokens,
            t.OUTPUT_TOKENS: run.usage.completion_tokens,
        }
    )
    if run.status is not RunStatus.COMPLETED:
        span.fail(str(run.error_reason or run.status.value), run.error_message)
    span.settle()


def chat_span(
    tracer: t.Tracer, provider: str, model: str, messages: list[ChatMessage]
) -> AbstractContextManager[t.Span]:
    """`chat {model}`: one model call (a streamed chat completion)."""
    attributes: dict[str, t.AttributeValue] = {
        t.OPERATION: "chat",
        t.PROVIDER: provider,
        t.REQUEST_MODEL: model,
    }
    if tracer.record_content:
        attributes[t.INPUT_MESSAGES] = _json(messages)
    return tracer.span(f"chat {model}", attributes)


def chat_ended(span: t.Span, end: ModelTurnEnd, parts: Sequence[str], record_content: bool) -> None:
    """What the model answered: its model, finish reason and tokens (and its text, from
    its `parts`, when contents are recorded)."""
    attributes: dict[str, t.AttributeValue] = {
        t.FINISH_REASONS: (end.finish_reason,),
        t.INPUT_TOKENS: end.usage.prompt_tokens,
        t.OUTPUT_TOKENS: end.usage.completion_tokens,
    }
    if end.model:
        attributes[t.RESPONSE_MODEL] = end.model
    if record_content:
        calls = [{"name": c.name, "arguments": c.arguments_json} for c in end.tool_calls]
        attributes[t.OUTPUT_MESSAGES] = _json([{"text": "".join(parts), "tool_calls": calls}])
    span.set(attributes)


def tool_span(tracer: t.Tracer, call: ToolCall, kind: str) -> AbstractContextManager[t.Span]:
    """`execute_tool {tool}`: one tool call, wherever it runs (kind: server, mcp,
    client, agent, or unknown: a name the model made up, which can be long and is not
    put in the span's name)."""
    name = call.name if kind != "unknown" else "unknown"
    attributes: dict[str, t.AttributeValue] = {
        t.OPERATION: "execute_tool",
        t.TOOL_NAME: call.name[:MAX_NAME_CHARS],
        t.TOOL_TYPE: t.tool_type(kind),
        t.TOOL_KIND: kind,
        t.TOOL_CALL_ID: call.call_id,
    }
    if tracer.record_content:
        attributes[t.TOOL_ARGUMENTS] = call.arguments_json
    return tracer.span(f"execute_tool {name}", attributes)


def tool_ended(span: t.Span, output: str, error: str, record_content: bool) -> None:
    """A tool's result (when contents are recorded) or its failure."""
    if error:
        span.fail("tool_error", error if record_content else "")
    elif record_content:
        span.set({t.TOOL_RESULT: output})


def workflow_span(
    tracer: t.Tracer, kind: str, name: str, tenant: str, run_id: str, session_id: str
) -> AbstractContextManager[t.Span]:
    """`invoke_workflow {name}`: a pipeline or team run; its participants' runs nest
    under it."""
    return tracer.span(
        f"invoke_workflow {name}",
        {
            t.OPERATION: "invoke_workflow",
            t.WORKFLOW: kind,
            t.CONVERSATION: session_id,
            t.TENANT: tenant,
            t.RUN_ID: run_id,
        },
    )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
