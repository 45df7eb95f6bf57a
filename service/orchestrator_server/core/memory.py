"""The memory window: which stored messages are sent to the model with each call."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .model_port import ChatMessage
from .types import AgentSpec, Message, Role

DEFAULT_MAX_MESSAGES = 50


def window_limit(spec: AgentSpec | None) -> int:
    """How many of its session's newest messages a turn of an agent sends (None: an
    agent not known yet gets the default)."""
    return (spec.memory.max_messages if spec is not None else 0) or DEFAULT_MAX_MESSAGES


def window(history: Sequence[Message], max_messages: int) -> list[Message]:
    """The last `max_messages` messages, never starting with a tool result whose call
    was cut off (providers reject a tool message without its assistant tool call)."""
    limit = max_messages or DEFAULT_MAX_MESSAGES
    recent = list(history[-limit:])
    while recent and recent[0].role is Role.TOOL:
        recent.pop(0)
    return recent


def to_chat_messages(system_message: str, messages: Sequence[Message]) -> list[ChatMessage]:
    """OpenAI chat messages: the system message, then the window."""
    chat: list[ChatMessage] = []
    if system_message:
        chat.append({"role": "system", "content": system_message})
    for m in messages:
        if m.role is Role.TOOL:
            chat.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        elif m.tool_calls:
            chat.append(
                {
                    "role": "assistant",
                    "content": m.content or None,
                    "tool_calls": [
                        {
                            "id": c.call_id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments_json},
                        }
                        for c in m.tool_calls
                    ],
                }
            )
        else:
            chat.append({"role": m.role.value, "content": m.content})
    return chat


def parse_arguments(arguments_json: str) -> dict[str, object] | None:
    """A tool call's arguments as a dict, or None when they are not a JSON object."""
    try:
        value = json.loads(arguments_json or "{}")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
