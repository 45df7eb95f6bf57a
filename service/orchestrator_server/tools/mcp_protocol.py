"""What the MCP tool hub shares: its errors, server status, tool names, and how MCP
results, schemas and failures are turned into what the model and the logs see."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import mcp_types
from mcp import ClientSession
from mcp.shared.exceptions import MCPError

TOOL_SEPARATOR = "__"
_MAX_TOOL_NAME = 64
_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")


class McpToolError(Exception):
    """An MCP tool call failed: an error result, a protocol error or a lost connection.
    The message is meant for the model (reported as the tool's error)."""


class McpServerUnavailable(McpToolError):
    """The tool's MCP server is down (starting or restarting); the call was not attempted."""


class McpToolTimeout(McpToolError, TimeoutError):
    """The call did not finish within the server's `tool_timeout_seconds`."""


@dataclass(frozen=True, slots=True)
class McpServerStatus:
    """A snapshot of one server, for logs, health and tests."""

    name: str
    transport: str  # "stdio" | "http"
    available: bool
    tools: tuple[str, ...]  # registered names (<server>__<tool>)
    pid: int | None  # the stdio child's pid while it runs
    restarts: int  # connections made after the first
    last_error: str | None


def tool_name(server: str, tool: str) -> str:
    """The registry name of an MCP tool: `<server>__<tool>`, with characters outside
    [A-Za-z0-9_-] replaced by `_`; over 64 characters it is cut and given a hash suffix."""
    name = _INVALID_NAME_CHARS.sub("_", f"{server}{TOOL_SEPARATOR}{tool}")
    if len(name) <= _MAX_TOOL_NAME:
        return name
    digest = hashlib.sha256(tool.encode()).hexdigest()[:8]
    return f"{name[: _MAX_TOOL_NAME - 9]}_{digest}"


def result_text(result: mcp_types.CallToolResult) -> str:
    """A tool result as text: text blocks joined with newlines; without text, the
    structured content as JSON; other blocks as short placeholders."""
    texts: list[str] = []
    others: list[str] = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            texts.append(block.text)
        elif isinstance(block, mcp_types.EmbeddedResource):
            resource = block.resource
            if isinstance(resource, mcp_types.TextResourceContents):
                texts.append(resource.text)
            else:
                others.append(f"[resource {resource.uri} ({resource.mime_type or 'binary'})]")
        elif isinstance(block, mcp_types.ImageContent | mcp_types.AudioContent):
            others.append(f"[{block.type} ({block.mime_type}) omitted]")
        elif isinstance(block, mcp_types.ResourceLink):
            others.append(f"[resource link {block.uri}]")
    if texts:
        return "\n".join(texts)
    if result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False)
    return "\n".join(others)


async def list_tools(session: ClientSession) -> list[mcp_types.Tool]:
    """Every tool a server lists, following its pages (at most 100)."""
    tools: list[mcp_types.Tool] = []
    cursor: str | None = None
    for _ in range(100):  # a server that pages forever is cut off
        params = mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def parameters_schema(schema: dict[str, Any] | None) -> dict[str, Any]:
    """A tool's input schema as a JSON-schema object the model accepts."""
    parameters = dict(schema or {})
    parameters.setdefault("type", "object")
    if parameters["type"] == "object":
        parameters.setdefault("properties", {})
    return parameters


def describe(error: BaseException) -> str:
    """A short text for an MCP failure (groups flattened), for logs and the model."""
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(describe(e) for e in error.exceptions)
    if isinstance(error, MCPError):
        return error.message
    if isinstance(error, TimeoutError):
        return str(error) or "timed out"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def bounded(awaitable: Any, within: float) -> None:
    """Await `awaitable` for at most `within` seconds (a time-out is not an error)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            await awaitable
