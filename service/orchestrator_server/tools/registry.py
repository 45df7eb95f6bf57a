"""The server's tool registry: every tool agents may name, with its schema and origin."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ..core.tool_port import TOOL_NAME, ServerTool

log = logging.getLogger(__name__)


class ToolRegistry:
    """Tools by name; later registrations of a taken name are refused."""

    def __init__(self) -> None:
        self._tools: dict[str, ServerTool] = {}

    def register(self, tool: ServerTool) -> None:
        """Add a tool; a duplicate or invalid name is logged and skipped."""
        if not TOOL_NAME.fullmatch(tool.name):
            log.error("tool name %r is not a valid function name; skipped", tool.name)
            return
        if tool.name in self._tools:
            log.error(
                "tool %r is already registered; the one from %s is skipped",
                tool.name,
                tool.source_name or tool.source,
            )
            return
        self._tools[tool.name] = tool

    def register_all(self, tools: Iterable[ServerTool]) -> None:
        """Add several tools."""
        for tool in tools:
            self.register(tool)

    def add_missing(self, tools: Iterable[ServerTool]) -> int:
        """Add the tools whose names are not registered yet (an MCP server that came up
        after start-up); return how many were added."""
        added = 0
        for tool in tools:
            if tool.name not in self._tools and TOOL_NAME.fullmatch(tool.name):
                self._tools[tool.name] = tool
                added += 1
        return added

    def get(self, name: str) -> ServerTool | None:
        """The tool, or None."""
        return self._tools.get(name)

    def all(self) -> list[ServerTool]:
        """Every tool, by name."""
        return [self._tools[name] for name in sorted(self._tools)]

    def unknown(self, names: Iterable[str]) -> list[str]:
        """The names that are not registered."""
        return [n for n in names if n not in self._tools]
