"""What the core needs from server-side tools (built-ins, plugins, MCP)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

# OpenAI function names: letters, digits, `_` and `-`, at most 64 characters.
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ToolHandler = Callable[[dict[str, Any]], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class ServerTool:
    """A tool that runs inside the server (or behind it, for MCP)."""

    name: str
    description: str
    parameters: dict[str, Any]
    handler: ToolHandler
    source: str = "builtin"  # builtin | plugin | mcp
    source_name: str = ""
    timeout_seconds: float = 30.0
    is_available: Callable[[], bool] = field(default=lambda: True)

    def openai_schema(self) -> dict[str, Any]:
        """The tool as an OpenAI `tools` entry."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


class ToolCatalog(Protocol):
    """Looks server tools up by name."""

    def get(self, name: str) -> ServerTool | None:
        """The tool, or None."""
        ...

    def all(self) -> list[ServerTool]:
        """Every tool, by name."""
        ...
