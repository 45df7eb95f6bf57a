"""Turn a request and its matching rule (if any) into a response plan.

The plan is pure data (tokens, tool calls, timing, faults) so the ASGI layer only has
to pace and write it, and so the same request always yields the same chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import DevModelConfig
from .encoding import numbered_tokens, split_arguments, tokenize
from .request import ChatRequest
from .rules import ErrorSpec, Rule


@dataclass(frozen=True, slots=True)
class PlannedToolCall:
    """A tool call as it will be streamed: id, name and argument fragments."""

    id: str
    name: str
    arguments: str
    fragments: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything needed to write one response."""

    completion_id: str
    tokens: tuple[str, ...]
    tool_calls: tuple[PlannedToolCall, ...]
    error: ErrorSpec | None
    latency_s: float
    interval_s: float
    stall: bool
    cut_after: int | None

    @property
    def text(self) -> str:
        """The full content text."""
        return "".join(self.tokens)

    @property
    def completion_tokens(self) -> int:
        """Content tokens plus tool-call argument fragments: what a model would bill."""
        return len(self.tokens) + sum(len(call.fragments) for call in self.tool_calls)

    @property
    def finish_reason(self) -> str:
        """The OpenAI finish reason: `tool_calls` when the reply calls tools, else `stop`."""
        return "tool_calls" if self.tool_calls else "stop"

    @property
    def needs_watch(self) -> bool:
        """Whether the response waits at all, so a client disconnect must be watched for.

        An unpaced response is written without ever yielding to the loop, so there is
        nothing to interrupt and the watcher task would be pure overhead.
        """
        return self.latency_s > 0 or self.interval_s > 0 or self.stall


class Replier:
    """Builds plans, applying server defaults where the rule leaves a field unset."""

    def __init__(self, config: DevModelConfig) -> None:
        self._latency_ms = config.latency_ms
        self._tokens_per_second = config.tokens_per_second
        # Benchmarks ask for the same fixed answer at high rates: tokenise it only once.
        self._default_tokens: tuple[str, ...] | None = (
            tuple(numbered_tokens(config.default_tokens)) if config.default_tokens > 0 else None
        )

    def plan(self, request: ChatRequest, rule: Rule | None, request_id: str) -> Plan:
        """The response to `request`: `rule`'s reply, or the default echo answer."""
        if rule is None:
            return Plan(
                completion_id=f"chatcmpl-{request_id}",
                tokens=self._default_reply(request),
                tool_calls=(),
                error=None,
                latency_s=self._latency_ms / 1000.0,
                interval_s=_interval(self._tokens_per_second),
                stall=False,
                cut_after=None,
            )
        reply = rule.reply
        if reply.echo_tool_results:
            tokens = tuple(tokenize("\n".join(request.trailing_tool_results)))
        elif reply.text is not None:
            tokens = tuple(tokenize(reply.text.replace("{last_user}", request.last_user)))
        elif reply.tool_calls:
            tokens = ()
        else:
            # A rule that only sets pace or faults keeps the default answer.
            tokens = self._default_reply(request)
        calls = tuple(
            PlannedToolCall(
                id=spec.id or f"call_{request_id}_{index}",
                name=spec.name,
                arguments=spec.arguments,
                fragments=tuple(split_arguments(spec.arguments)),
            )
            for index, spec in enumerate(reply.tool_calls)
        )
        latency_ms = self._latency_ms if reply.latency_ms is None else reply.latency_ms
        rate = (
            self._tokens_per_second if reply.tokens_per_second is None else reply.tokens_per_second
        )
        return Plan(
            completion_id=f"chatcmpl-{request_id}",
            tokens=tokens,
            tool_calls=calls,
            error=reply.error,
            latency_s=latency_ms / 1000.0,
            interval_s=_interval(rate),
            stall=reply.stall,
            cut_after=reply.cut_after_tokens,
        )

    def _default_reply(self, request: ChatRequest) -> tuple[str, ...]:
        if self._default_tokens is not None:
            return self._default_tokens
        return tuple(tokenize("Echo: " + request.last_user))


def _interval(tokens_per_second: float) -> float:
    return 1.0 / tokens_per_second if tokens_per_second > 0 else 0.0
