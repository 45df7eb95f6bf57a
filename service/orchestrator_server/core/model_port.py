"""What the core needs from a chat model, independent of any provider SDK.

`models/` implements this port with the `openai` package; tests could implement it with
anything, but ours use the real openai client against the development model server.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .types import ModelSpec, ToolCall, Usage

ChatMessage = dict[str, Any]  # an OpenAI-style chat message (role, content, tool_calls, ...)


@dataclass(frozen=True, slots=True)
class ModelTurnEnd:
    """The last item of a model stream: requested tool calls, usage, finish reason."""

    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    finish_reason: str = ""
    model: str = ""  # the model that answered, as the provider names it


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One model call: the agent's model settings, the conversation, the tools the model
    may call (OpenAI `tools` entries) and the seconds left for it (None: no deadline)."""

    spec: ModelSpec
    messages: Sequence[ChatMessage]
    tools: Sequence[dict[str, Any]] = ()
    timeout: float | None = None
    # Whose call this is: a provider's concurrent calls are shared fairly among tenants.
    tenant: str = ""
    # The W3C trace context the request carries (the model call's span, or the caller's).
    traceparent: str | None = None


class ChatModel(Protocol):
    """A provider that streams chat completions."""

    name: str
    default_model: str  # the model of a request whose spec names none

    def stream(self, request: ChatRequest) -> AsyncGenerator[str | ModelTurnEnd, None]:
        """Yield text deltas (str) as they arrive, then exactly one ModelTurnEnd.

        Raises domain errors (MODEL_RATE_LIMITED, MODEL_UNAVAILABLE, ...) on failure.
        Closing the iterator (or cancelling its consumer) closes the upstream request.
        """
        ...


class ModelCatalog(Protocol):
    """Resolves an agent's provider name to a ChatModel."""

    async def resolve(self, provider: str) -> ChatModel:
        """The provider's model client; PROVIDER_NOT_CONFIGURED if unknown."""
        ...
