"""The model/tool loop of one turn: call the model, run the tools it asks for, repeat
until it answers (or the call limit is reached)."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field

from . import events as ev
from .errors import DeadlineExceededError, Reason, ResourceExhaustedError
from .memory import to_chat_messages, window, window_limit
from .model_port import ChatMessage, ChatModel, ChatRequest, ModelTurnEnd
from .start_gate import StartGate
from .store_port import Store, TurnStart
from .task_stream import Emit
from .telemetry import NoTracer, Tracer
from .telemetry_spans import chat_ended, chat_span
from .token_window import TokenWindow
from .tool_calls import TurnTools
from .types import Agent, Message, Role, Run, TurnRequest, Usage

# The model's text per turn is bounded: a run record (input + output) must stay readable
# in one response, and a runaway model must not fill the server's memory.
DEFAULT_MAX_OUTPUT_CHARS = 1_000_000
# Child runs (agents asked as tools) one user message may cause, at every depth together.
DEFAULT_MAX_AGENT_CALLS_PER_TURN = 64

# Asks another agent (callee, message) on behalf of this turn; returns its answer.
AskAgent = Callable[[str, str], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class TurnContext:
    """What a turn needs besides its run: the request, its tools and its deadline."""

    tenant: str
    request: TurnRequest
    tools: TurnTools
    deadline: float | None
    # Shared by a turn and every agent it asks, however deep: the child runs one message
    # may cause in all.
    agent_calls: AgentCallBudget = field(default_factory=lambda: AgentCallBudget())


class AgentCallBudget:
    """How many agents a turn and its callees may still ask (agent-as-tool fan-out)."""

    def __init__(self, limit: int = DEFAULT_MAX_AGENT_CALLS_PER_TURN) -> None:
        self.limit = limit
        self.left = limit

    def take(self) -> bool:
        """Use one call; False once the budget is spent."""
        if self.left <= 0:
            return False
        self.left -= 1
        return True


def estimated_prompt_tokens(messages: list[ChatMessage], tool_chars: int) -> int:
    """A prompt's tokens, roughly (four characters a token), before the model says: its
    messages' text and tool-call arguments, and `tool_chars` of tool declarations."""
    chars = tool_chars
    for message in messages:
        chars += len(str(message.get("content") or ""))
        for call in message.get("tool_calls") or ():
            chars += len(str(call.get("function", {}).get("arguments", "")))
    return chars // 4 + len(messages)


def remaining(deadline: float | None) -> float | None:
    """Seconds left before the caller's deadline (None without one)."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceededError("the caller's deadline passed", reason=Reason.DEADLINE_EXCEEDED)
    return left


class ModelLoop:
    """One turn's model calls and tool calls. `parts` holds the text of the current
    model call and `usage` the tokens so far, so a cancelled turn can record them."""

    def __init__(
        self,
        model: ChatModel,
        agent: Agent,
        run: Run,
        context: TurnContext,
        gate: StartGate,
        emit: Emit[object],
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        tokens: TokenWindow | None = None,
        tracer: Tracer | None = None,
        *,
        handed_over: Callable[[], Awaitable[None]],
    ) -> None:
        self._model = model
        # Waits until the caller has taken what was emitted (TaskStream.handed_over).
        self._handed_over = handed_over
        self._tracer = tracer or NoTracer()
        self._tokens = tokens or TokenWindow()
        self._agent = agent
        self._run = run
        self._context = context
        self._gate = gate
        self._emit = emit
        self._schemas = context.tools.schemas()
        self._schema_chars = len(json.dumps(self._schemas)) if self._schemas else 0
        self._max_output_chars = max_output_chars
        self._output_chars = 0  # text the model produced in this turn, over all its calls
        self.parts: list[str] = []
        self.usage = Usage()
        self.first_delta = 0.0  # time.monotonic() of the first text delta, 0 before
        self.steps: list[Message] = []  # assistant tool calls and tool results

    async def history(
        self, store: Store, tenant: str, read: TurnStart | None = None
    ) -> list[ChatMessage]:
        """The system message and the windowed history, ending with the user message
        (`read`: the window read with the agent, else read now)."""
        spec = self._agent.spec
        limit = window_limit(spec)
        run = self._run
        if read is not None:
            history = read.messages
        else:
            history = await store.load_history(tenant, self._agent.agent_id, run.session_id, limit)
        if self._gate.user_message is not None:
            # The run's own write may or may not be visible yet: take the stored history
            # without it and add the user message here, so the window is the same either way.
            history = [m for m in history if m.run_id != run.run_id] + [self._gate.user_message]
        return to_chat_messages(spec.system_message, window(history, limit))

    async def run(self, messages: list[ChatMessage], max_calls: int, ask: AskAgent) -> str:
        """Call the model until it answers without tool calls; the answer."""
        tenant = self._context.tenant
        for call_number in range(1, max_calls + 1):
            self._tokens.check(tenant)
            estimate = estimated_prompt_tokens(messages, self._schema_chars)
            charged_at = self._tokens.charge(tenant, estimate)  # even if the call never ends
            self.usage = self.usage + Usage(model_calls=1)  # counted once sent, answered or not
            end = await self._call_model(messages)
            self.usage = self.usage + end.usage
            used = end.usage.prompt_tokens + end.usage.completion_tokens
            self._tokens.settle(tenant, charged_at, estimate, used)
            text = "".join(self.parts)
            if not end.tool_calls:
                return text
            if call_number == max_calls:
                raise ResourceExhaustedError(
                    f"the model was still calling tools after {max_calls} model calls",
                    reason=Reason.MODEL_CALL_LIMIT,
                    metadata={"limit": str(max_calls)},
                )
            asking = Message(
                Role.ASSISTANT, text, tool_calls=end.tool_calls, run_id=self._run.run_id
            )
            self._emit(ev.MessageCompleted(asking))
            tools = self._context.tools
            results = await tools.execute(end.tool_calls, self._emit, ask, self._run.run_id)
            self.steps += [asking, *results]
            messages += to_chat_messages("", [asking, *results])
        raise AssertionError("unreachable: the loop returns or raises")

    async def _call_model(self, messages: list[ChatMessage]) -> ModelTurnEnd:
        """Stream one model response in its span; the response's end."""
        tracer, spec = self._tracer, self._agent.spec.model
        model = spec.model or self._model.default_model
        with chat_span(tracer, self._model.name, model, messages) as span:
            end = await self._stream_answer(messages, tracer.traceparent())
            chat_ended(span, end, self.parts, tracer.record_content)
            return end

    async def _stream_answer(
        self, messages: list[ChatMessage], traceparent: str | None
    ) -> ModelTurnEnd:
        """Stream one model response, emitting its text; the response's end."""
        self.parts.clear()
        end: ModelTurnEnd | None = None
        context = self._context
        request = ChatRequest(
            self._agent.spec.model,
            messages,
            self._schemas,
            remaining(context.deadline),
            context.tenant,
            traceparent,
        )
        stream = self._model.stream(request)
        async with aclosing(stream):  # a refused answer closes its upstream request now
            async for item in stream:
                if self._gate.blocking:
                    await self._gate.wait()
                if not isinstance(item, str):
                    end = item
                    continue
                self._take(item)
                if not self.first_delta:
                    self.first_delta = time.monotonic()
                    # The caller sends the first delta before the rest of what the
                    # model sent in the same packet is parsed (see handed_over).
                    await self._handed_over()
        assert end is not None, "a model stream ends with a ModelTurnEnd"
        return end

    def _take(self, text: str) -> None:
        """Keep and emit a text delta, within the turn's output limit."""
        self._output_chars += len(text)
        if self._output_chars > self._max_output_chars:
            raise ResourceExhaustedError(
                f"the model's answer grew past {self._max_output_chars} characters",
                reason=Reason.MODEL_OUTPUT_LIMIT,
                metadata={"limit": str(self._max_output_chars)},
            )
        self.parts.append(text)
        self._emit(ev.TextDelta(text))
