"""Executing the tool calls of one model response: server, MCP, client and agent tools.

Every call of a response runs concurrently. A failing tool never fails the run: the
model receives the error text as the tool's result and decides what to do. Only the
client's silence (CLIENT_TOOL_TIMEOUT) and cancellation end the run from here.

Limits: a tool's output is cut to MAX_TOOL_OUTPUT_CHARS (64 KiB) with a marker saying how
much was dropped; arguments that are not a JSON object, or that break the tool's schema,
are reported to the model without running the tool.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import events as ev
from .argument_validation import checked_arguments
from .client_tools import ClientTool, ToolError
from .errors import DeadlineExceededError, InvalidArgumentError, Reason
from .telemetry import NoTracer, Tracer
from .telemetry_spans import tool_ended, tool_span
from .tool_port import ServerTool
from .types import Message, Role, ToolCall

MAX_TOOL_OUTPUT_CHARS = 64 * 1024
# Every call of a response runs at once: this bounds that fan-out (the model is told).
MAX_TOOL_CALLS_PER_RESPONSE = 32
DEFAULT_CLIENT_TOOL_TIMEOUT = 60.0

# The parameters of an agent-as-tool (`ask_<agent_id>`).
_ASK_AGENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"message": {"type": "string", "description": "What to ask the agent"}},
    "required": ["message"],
}


class ClientToolBridge:
    """The client tool calls of one stream that wait for a ToolResult."""

    def __init__(self) -> None:
        self._pending: dict[str, asyncio.Future[tuple[str, str]]] = {}
        # Calls that stopped waiting (timed out, or their turn was cancelled): a result
        # that arrives for one later is a race, not a client bug, and is dropped.
        self._expired: deque[str] = deque(maxlen=1024)

    def expect(self, call_id: str) -> asyncio.Future[tuple[str, str]]:
        """A future resolved by the client's result for `call_id`."""
        future: asyncio.Future[tuple[str, str]] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        return future

    def waiting(self) -> list[str]:
        """The calls that still wait for a result."""
        return [call_id for call_id, future in self._pending.items() if not future.done()]

    def forget(self, call_id: str) -> None:
        """Stop waiting for a call (answered, timed out or cancelled)."""
        if self._pending.pop(call_id, None) is not None:
            # Still waiting, so no result came: it may yet arrive, late.
            self._expired.append(call_id)

    def deliver(self, call_id: str, output: str, error: str) -> None:
        """Hand a client's result to the waiting call, or UNEXPECTED_TOOL_RESULT (results
        for calls that stopped waiting are dropped)."""
        future = self._pending.pop(call_id, None)
        if future is None and call_id in self._expired:
            return
        if future is None or future.done():
            raise InvalidArgumentError.for_field(
                "tool_result.call_id",
                "no client tool call with this id is waiting for a result",
                reason=Reason.UNEXPECTED_TOOL_RESULT,
                metadata={"call_id": call_id[:100]},
            )
        future.set_result((output, error))


AskAgent = Callable[[str, str], Awaitable[str]]
Emit = Callable[[ev.EventBody], None]


@dataclass(slots=True)
class TurnTools:
    """Everything one turn's model may call, by tool name."""

    server: dict[str, ServerTool] = field(default_factory=dict)
    client: dict[str, ClientTool] = field(default_factory=dict)
    agents: dict[str, str] = field(default_factory=dict)  # tool name -> callee agent id
    bridge: ClientToolBridge | None = None
    client_timeout: float = DEFAULT_CLIENT_TOOL_TIMEOUT
    tenant: str = ""  # whose turn: argument checks are shared fairly among tenants
    tracer: Tracer = field(default_factory=NoTracer)

    def schemas(self) -> list[dict[str, Any]]:
        """The OpenAI `tools` parameter for the model call."""
        schemas = [tool.openai_schema() for tool in self.server.values()]
        schemas += [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in self.client.values()
        ]
        schemas += [
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": f"Ask the agent '{agent_id}' and get its answer.",
                    "parameters": _ASK_AGENT_SCHEMA,
                },
            }
            for name, agent_id in self.agents.items()
        ]
        return schemas

    def location(self, name: str) -> str:
        """Where a call of this tool executes: server, mcp, client, agent or unknown."""
        if name in self.server:
            return "mcp" if self.server[name].source == "mcp" else "server"
        if name in self.client:
            return "client"
        if name in self.agents:
            return "agent"
        return "unknown"

    async def execute(
        self, calls: Sequence[ToolCall], emit: Emit, ask_agent: AskAgent, run_id: str
    ) -> list[Message]:
        """Run the calls concurrently (at most MAX_TOOL_CALLS_PER_RESPONSE of them; the model
        is told the rest were not run); the tool messages for the history, in call order."""
        for call in calls:
            emit(ev.ToolCallStarted(call, self.location(call.name)))
        results = await _all_or_none(
            [
                self._one(call, emit, ask_agent)
                if i < MAX_TOOL_CALLS_PER_RESPONSE
                else self._refused(call, emit)
                for i, call in enumerate(calls)
            ]
        )
        return [
            Message(Role.TOOL, output, tool_call_id=call.call_id, run_id=run_id)
            for call, output in zip(calls, results, strict=True)
        ]

    async def _refused(self, call: ToolCall, emit: Emit) -> str:
        error = (
            f"not run: at most {MAX_TOOL_CALLS_PER_RESPONSE} tool calls of one response "
            "are run; call the rest in a later response"
        )
        emit(ev.ToolCallFinished(call.call_id, call.name, "", error, 0.0))
        return f"error: {error}"

    async def _one(self, call: ToolCall, emit: Emit, ask_agent: AskAgent) -> str:
        began = time.monotonic()
        output, error = "", ""
        with tool_span(self.tracer, call, self.location(call.name)) as span:
            try:
                output = _truncate(await self._dispatch(call, ask_agent))
            except DeadlineExceededError:
                raise
            except ToolError as failure:
                error = str(failure)
            except Exception as failure:
                error = f"{type(failure).__name__}: {failure}"[:2000]
            tool_ended(span, output, error, self.tracer.record_content)
        emit(
            ev.ToolCallFinished(
                call.call_id, call.name, output, error, (time.monotonic() - began) * 1000
            )
        )
        return f"error: {error}" if error else output

    async def _dispatch(self, call: ToolCall, ask_agent: AskAgent) -> str:
        if call.name in self.server:
            tool = self.server[call.name]
            args = await checked_arguments(
                self.tenant, call.arguments_json, tool.parameters, client=False
            )
            if not tool.is_available():
                raise ToolError(f"tool '{call.name}' is unavailable right now")
            try:
                return await asyncio.wait_for(tool.handler(args), tool.timeout_seconds)
            except TimeoutError:
                raise ToolError(
                    f"tool '{call.name}' timed out after {tool.timeout_seconds:g} s"
                ) from None
        if call.name in self.client:
            return await self._ask_client(call, self.client[call.name].parameters)
        if call.name in self.agents:
            args = await checked_arguments(
                self.tenant, call.arguments_json, _ASK_AGENT_SCHEMA, client=False
            )
            message = args.get("message")
            if not isinstance(message, str) or not message:
                raise ToolError("invalid arguments: 'message' must be a non-empty string")
            return await ask_agent(self.agents[call.name], message)
        raise ToolError(f"unknown tool '{call.name}'")

    async def _ask_client(self, call: ToolCall, schema: dict[str, Any]) -> str:
        assert self.bridge is not None, "client tools need a bridge"
        # Expected before anything is awaited: the client has seen the call and may
        # answer while its arguments are being checked.
        future = self.bridge.expect(call.call_id)
        try:
            await checked_arguments(self.tenant, call.arguments_json, schema, client=True)
            output, error = await asyncio.wait_for(future, self.client_timeout)
        except TimeoutError:
            raise DeadlineExceededError(
                f"the client did not answer tool call '{call.call_id}' within "
                f"{self.client_timeout:g} s",
                reason=Reason.CLIENT_TOOL_TIMEOUT,
                metadata={"call_id": call.call_id, "timeout_seconds": f"{self.client_timeout:g}"},
            ) from None
        finally:
            self.bridge.forget(call.call_id)
        if error:
            raise ToolError(error)
        return output


async def _all_or_none(work: list[Coroutine[Any, Any, str]]) -> list[str]:
    """Run the calls concurrently; if one raises (a client tool's timeout) or the turn is
    cancelled, cancel the others and wait for them, so that no sibling (a child agent
    run) keeps running after the turn has failed."""
    tasks = [asyncio.ensure_future(item) for item in work]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task.done() and not task.cancelled() and (error := task.exception()):
                raise error
        return [task.result() for task in tasks]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _truncate(output: str) -> str:
    if len(output) <= MAX_TOOL_OUTPUT_CHARS:
        return output
    dropped = len(output) - MAX_TOOL_OUTPUT_CHARS
    return output[:MAX_TOOL_OUTPUT_CHARS] + f"\n...[truncated {dropped} characters]"
