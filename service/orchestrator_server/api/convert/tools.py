"""Server tool registry entries as Tool messages."""

from __future__ import annotations

import json

from orchestrator.v1 import tool_pb2

from ...core.tool_port import ServerTool

_SOURCES = {
    "builtin": tool_pb2.TOOL_SOURCE_BUILTIN,
    "plugin": tool_pb2.TOOL_SOURCE_PLUGIN,
    "mcp": tool_pb2.TOOL_SOURCE_MCP,
    "a2a": tool_pb2.TOOL_SOURCE_A2A,
}


def tool_to_pb(tool: ServerTool) -> tool_pb2.Tool:
    """A registry tool as a Tool message."""
    return tool_pb2.Tool(
        name=tool.name,
        description=tool.description,
        parameters_json_schema=json.dumps(tool.parameters, sort_keys=True),
        source=_SOURCES.get(tool.source, tool_pb2.TOOL_SOURCE_UNSPECIFIED),
        source_name=tool.source_name,
        available=tool.is_available(),
    )
