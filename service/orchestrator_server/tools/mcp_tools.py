"""MCP servers as tool sources: connect, list their tools, call them, keep them alive.

Only the operator's configuration can declare MCP servers (see `mcp_config`): a client can
never make the orchestrator start a process or reach a URL of its choosing; it can only
name tools that are already registered.

Usage (the server's start-up and shutdown):

    hub = McpToolHub(parse_mcp_servers(config.get("mcp_servers", [])))
    await hub.start()                     # connects all servers in parallel, bounded
    registry.register_all(hub.tools())    # <server>__<tool>, source="mcp"
    hub.add_listener(resync)              # called when a server's tool list or state changes
    ...
    await hub.close()                     # ends every session and child process

Tool list and restarts. A server's tools are known once it has connected. `start()` waits
(at most the server's `startup_timeout_seconds`) for every server's first attempt; a
server that is down then contributes no tools until it comes up - listeners fire and
`version` increases at that point, and `tools()` then includes them. A server that
restarts with the same tools needs no re-registration: each `ServerTool`'s handler and
`is_available` look the live session up at call time. While a server that was up is
down, `tools()` keeps returning its last known tools, with `is_available()` False.

Supervision. Each server runs in its own long-lived asyncio task that owns the transport
and `ClientSession` contexts (anyio scopes are entered and exited in that task). A stdio
server whose process exits (stdout EOF), or any server whose connection fails during a
call or a health ping (HTTP), is logged at WARNING (with the exit code and the tail of
its stderr when known), marked unavailable, and restarted with exponential backoff
(0.5 s doubling to 30 s; reset once a connection has stayed up for `healthy_after_seconds`).
While a server is down, its tools fail at once with `McpServerUnavailable`; calls in
flight when it dies fail with `McpToolError`. Other servers are unaffected. Every call is
bounded by the server's `tool_timeout_seconds` (`McpToolTimeout`, a `TimeoutError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types
from mcp import ClientSession
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from ..core.tool_port import ServerTool, ToolHandler
from .mcp_config import McpServerConfig, parse_mcp_servers
from .mcp_stdio import StdioProcess, stdio_transport

__all__ = [
    "McpServerConfig",
    "McpServerStatus",
    "McpServerUnavailable",
    "McpToolError",
    "McpToolHub",
    "McpToolTimeout",
    "parse_mcp_servers",
    "tool_name",
]

log = logging.getLogger(__name__)

TOOL_SEPARATOR = "__"
_MAX_TOOL_NAME = 64
_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_CLIENT_INFO = mcp_types.Implementation(name="agent-orchestrator", version="1")
_HTTP_PING_INTERVAL_SECONDS = 15.0
_PING_TIMEOUT_SECONDS = 10.0
_CLOSE_TIMEOUT_SECONDS = 10.0

Listener = Callable[[], None]


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


class _ServerRunner:
    """One MCP server: its supervising task, live session and tool list."""

    def __init__(self, config: McpServerConfig, hub: McpToolHub) -> None:
        self.config = config
        self._hub = hub
        self._session: ClientSession | None = None
        self._generation = 0
        self._tools: dict[str, mcp_types.Tool] = {}  # registry name -> MCP tool
        self._process: StdioProcess | None = None
        self._restarts = -1
        self._last_error: str | None = None
        self._stopping = False
        self._wake = asyncio.Event()  # connection lost or stop requested
        self._stop_requested = asyncio.Event()
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._down.set()
        self._first_attempt = asyncio.Event()
        self._connected_at: float | None = None
        self._scope: anyio.CancelScope | None = None  # the current connection attempt
        self._task: asyncio.Task[None] | None = None

    # --- state seen by the hub -------------------------------------------------------

    @property
    def available(self) -> bool:
        return self._session is not None

    def status(self) -> McpServerStatus:
        process = self._process
        return McpServerStatus(
            name=self.config.name,
            transport=self.config.transport,
            available=self.available,
            tools=tuple(sorted(self._tools)),
            pid=process.pid if process is not None and process.returncode is None else None,
            restarts=max(self._restarts, 0),
            last_error=self._last_error,
        )

    def server_tools(self) -> list[ServerTool]:
        tools: list[ServerTool] = []
        for registered, tool in sorted(self._tools.items()):
            tools.append(
                ServerTool(
                    name=registered,
                    description=tool.description
                    or tool.title
                    or f"{tool.name} (MCP server {self.config.name})",
                    parameters=_parameters(tool.input_schema),
                    handler=self._handler(tool.name),
                    source="mcp",
                    source_name=self.config.name,
                    timeout_seconds=self.config.tool_timeout_seconds,
                    is_available=lambda: self.available,
                )
            )
        return tools

    def _handler(self, mcp_name: str) -> ToolHandler:
        async def handler(arguments: dict[str, Any]) -> str:
            return await self.call(mcp_name, arguments)

        return handler

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name=f"mcp:{self.config.name}")

    async def wait_first_attempt(self) -> None:
        await self._first_attempt.wait()

    async def wait(self, available: bool, within: float | None) -> None:
        event = self._up if available else self._down
        async with asyncio.timeout(within):
            await event.wait()

    async def stop(self) -> None:
        self._stopping = True
        self._stop_requested.set()
        self._wake.set()
        if self._scope is not None:
            self._scope.cancel()  # also ends a connection attempt that is still starting
        task = self._task
        if task is None or task.done():
            return
        done, _ = await asyncio.wait({task}, timeout=_CLOSE_TIMEOUT_SECONDS)
        if not done:
            log.error("MCP server %r did not shut down in time; cancelling", self.config.name)
            task.cancel()
            await asyncio.wait({task}, timeout=_CLOSE_TIMEOUT_SECONDS)

    async def _supervise(self) -> None:
        hub = self._hub
        delay = hub.backoff_initial_seconds
        while not self._stopping:
            self._wake.clear()
            self._connected_at = None
            attempt_error: str | None = None
            try:
                await self._connect_once()
            except Exception as error:
                attempt_error = _describe(error)
            finally:
                self._mark_down()
                self._first_attempt.set()
                process, self._process = self._process, None
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                # anyio can absorb a native cancel that lands while its own (startup
                # timeout) cancellation unwinds; honour it here rather than loop on.
                raise asyncio.CancelledError
            if self._stopping:
                break
            exit_note = stderr = ""
            exit_code = process.returncode if process is not None else None
            if process is not None and exit_code is not None:
                exit_note = f"pid {process.pid} exited with code {exit_code}"
                tail = " | ".join(line for line in process.stderr_tail if line.strip())
                stderr = f"; stderr tail: {tail[-500:]}" if tail else ""
            if attempt_error is not None:
                self._last_error = attempt_error
            elif exit_note:
                self._last_error = f"process exited with code {exit_code}"
            reason = "; ".join(r for r in (attempt_error, exit_note) if r)
            reason = reason or self._last_error or "connection closed"
            connected_at = self._connected_at
            if connected_at is not None and (
                time.monotonic() - connected_at >= hub.healthy_after_seconds
            ):
                delay = hub.backoff_initial_seconds
            log.warning(
                "MCP server %r %s (%s); its tools are unavailable, restarting in %.1f s%s",
                self.config.name,
                "went down" if connected_at is not None else "failed to start",
                reason,
                delay,
                stderr,
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop_requested.wait()  # close() cuts the wait short
            delay = min(delay * 2, hub.backoff_max_seconds)
        self._mark_down()

    async def _connect_once(self) -> None:
        """Connect, publish the session, and return when the connection is lost (or the
        hub closes)."""
        with anyio.CancelScope() as scope:
            self._scope = scope
            try:
                await self._connect_in(scope)
            finally:
                self._scope = None

    async def _connect_in(self, scope: anyio.CancelScope) -> None:
        if self._stopping:
            scope.cancel()
        config = self.config
        async with AsyncExitStack() as stack:
            read: Any
            write: Any
            if config.command is not None:
                read, write, process = await stack.enter_async_context(
                    stdio_transport(config, on_lost=self._transport_lost)
                )
                self._process = process
            else:
                assert config.url is not None
                from mcp.client.streamable_http import streamable_http_client

                http = await stack.enter_async_context(
                    create_mcp_http_client(headers=dict(config.headers) or None)
                )
                read, write = await stack.enter_async_context(
                    streamable_http_client(config.url, http_client=http)
                )
            session = await stack.enter_async_context(
                ClientSession(read, write, client_info=_CLIENT_INFO)
            )
            try:
                with anyio.fail_after(config.startup_timeout_seconds):
                    await session.initialize()
                    tools = await _list_tools(session)
            except TimeoutError:
                seconds = config.startup_timeout_seconds
                self._last_error = f"no answer within the startup timeout ({seconds:g} s)"
                self._first_attempt.set()  # start() need not wait for the clean-up
                raise TimeoutError(self._last_error) from None
            if self._stopping:
                return
            self._publish(session, tools)
            while not self._wake.is_set():
                if config.url is None:
                    await self._wake.wait()
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_HTTP_PING_INTERVAL_SECONDS):
                        await self._wake.wait()
                if not self._wake.is_set():
                    await self._ping(session)

    async def _ping(self, session: ClientSession) -> None:
        try:
            async with asyncio.timeout(_PING_TIMEOUT_SECONDS):
                await session.send_ping()
        except Exception as error:
            self._last_error = f"health ping failed: {_describe(error)}"
            self._wake.set()

    def _publish(self, session: ClientSession, tools: list[mcp_types.Tool]) -> None:
        named: dict[str, mcp_types.Tool] = {}
        for tool in tools:
            registered = tool_name(self.config.name, tool.name)
            if registered in named:
                log.error(
                    "MCP server %r: tools %r and %r both map to %r; the second is skipped",
                    self.config.name,
                    named[registered].name,
                    tool.name,
                    registered,
                )
                continue
            named[registered] = tool
        self._generation += 1
        self._restarts += 1
        self._connected_at = time.monotonic()
        self._tools = named
        self._session = session
        self._last_error = None
        self._down.clear()
        self._up.set()
        self._first_attempt.set()
        log.info(
            "MCP server %r is up with %d tool(s)%s",
            self.config.name,
            len(named),
            f" (pid {self._process.pid})" if self._process else "",
        )
        self._hub._changed()

    def _mark_down(self) -> bool:
        was_up = self._session is not None
        self._session = None
        self._up.clear()
        self._down.set()
        if was_up:
            self._hub._changed()
        return was_up

    def _transport_lost(self) -> None:
        self._mark_down()
        self._wake.set()

    def _connection_lost(self, generation: int, reason: str) -> None:
        if generation == self._generation and self._session is not None:
            self._last_error = reason
            self._mark_down()
            self._wake.set()

    # --- calls ----------------------------------------------------------------------------

    async def call(self, mcp_name: str, arguments: dict[str, Any]) -> str:
        name = self.config.name
        session, generation = self._session, self._generation
        if session is None:
            raise McpServerUnavailable(f"MCP server '{name}' is unavailable; restarting")
        timeout = self.config.tool_timeout_seconds
        try:
            # The SDK bounds the request (and tells the server to cancel it); the outer
            # timeout is a backstop for a transport that stops answering altogether.
            async with asyncio.timeout(timeout + 5):
                result = await session.call_tool(mcp_name, arguments, read_timeout_seconds=timeout)
        except MCPError as error:
            if error.code == mcp_types.CONNECTION_CLOSED:
                self._connection_lost(generation, "connection closed during a call")
                raise McpToolError(
                    f"MCP server '{name}' went away during the call to '{mcp_name}'; restarting"
                ) from None
            if error.code == mcp_types.REQUEST_TIMEOUT:
                raise McpToolTimeout(
                    f"MCP tool '{mcp_name}' on server '{name}' timed out after {timeout:g} s"
                ) from None
            raise McpToolError(
                f"MCP server '{name}' refused '{mcp_name}': {error.message}"
            ) from None
        except TimeoutError:
            self._connection_lost(generation, "the connection stopped answering")
            raise McpToolTimeout(
                f"MCP tool '{mcp_name}' on server '{name}' timed out after {timeout:g} s"
            ) from None
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as error:
            self._connection_lost(generation, _describe(error))
            raise McpToolError(
                f"MCP server '{name}' went away during the call to '{mcp_name}'; restarting"
            ) from None
        except Exception as error:
            raise McpToolError(
                f"MCP tool '{mcp_name}' on server '{name}' failed: {_describe(error)}"
            ) from None
        text = result_text(result)
        if result.is_error:
            raise McpToolError(text or f"MCP tool '{mcp_name}' reported an error")
        return text


class McpToolHub:
    """Every configured MCP server, supervised; their tools as `ServerTool`s.

    Public API:
      `await start()`, `await close()`, `tools()`, `version`, `add_listener(fn)`,
      `status()`, `is_available(server)`, `await wait_available(server, timeout)`,
      `await wait_unavailable(server, timeout)`, `await call(server, tool, arguments)`.
    """

    def __init__(
        self,
        configs: Sequence[McpServerConfig],
        *,
        backoff_initial_seconds: float = 0.5,
        backoff_max_seconds: float = 30.0,
        healthy_after_seconds: float = 60.0,
    ) -> None:
        names = [c.name for c in configs]
        if len(set(names)) != len(names):
            raise ValueError("MCP server names must be unique")
        self.backoff_initial_seconds = backoff_initial_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.healthy_after_seconds = healthy_after_seconds
        self._runners = {config.name: _ServerRunner(config, self) for config in configs}
        self._listeners: list[Listener] = []
        self._version = 0
        self._started = False
        self._closed = False

    @property
    def server_names(self) -> list[str]:
        """The configured servers, in configuration order."""
        return list(self._runners)

    @property
    def version(self) -> int:
        """Increases whenever a server comes up (its tool list may have changed) or goes down."""
        return self._version

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call `listener()` (synchronously, in the event loop) after every change that
        bumps `version`. Returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def start(self) -> None:
        """Start every server in parallel and wait for each one's first attempt (bounded by
        its startup timeout). Never raises for a server that fails: it is logged and
        retried in the background."""
        if self._started:
            raise RuntimeError("McpToolHub.start() was already called")
        self._started = True
        for runner in self._runners.values():
            runner.start()
        waits = [
            _bounded(r.wait_first_attempt(), r.config.startup_timeout_seconds + 5)
            for r in self._runners.values()
        ]
        await asyncio.gather(*waits)

    def tools(self) -> list[ServerTool]:
        """One `ServerTool` per tool of every server that is (or was) connected, by name.
        A server that has never connected contributes nothing yet."""
        tools = [t for runner in self._runners.values() for t in runner.server_tools()]
        return sorted(tools, key=lambda t: t.name)

    def status(self) -> list[McpServerStatus]:
        """A snapshot per server, in configuration order."""
        return [runner.status() for runner in self._runners.values()]

    def is_available(self, server: str) -> bool:
        """Whether the server's session is currently up."""
        return self._runner(server).available

    async def wait_available(self, server: str, within: float | None = None) -> None:
        """Return once the server is up; TimeoutError after `within` seconds."""
        await self._runner(server).wait(True, within)

    async def wait_unavailable(self, server: str, within: float | None = None) -> None:
        """Return once the server is down; TimeoutError after `within` seconds."""
        await self._runner(server).wait(False, within)

    async def call(self, server: str, tool: str, arguments: dict[str, Any]) -> str:
        """Call a tool by its MCP name (what the tools' handlers do)."""
        return await self._runner(server).call(tool, arguments)

    async def close(self) -> None:
        """End every session and stop every child process (bounded; idempotent)."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(runner.stop() for runner in self._runners.values()))

    def _runner(self, server: str) -> _ServerRunner:
        try:
            return self._runners[server]
        except KeyError:
            raise KeyError(f"no MCP server named {server!r}") from None

    def _changed(self) -> None:
        self._version += 1
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("MCP tool hub listener failed")


async def _list_tools(session: ClientSession) -> list[mcp_types.Tool]:
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


def _parameters(schema: dict[str, Any] | None) -> dict[str, Any]:
    parameters = dict(schema or {})
    parameters.setdefault("type", "object")
    if parameters["type"] == "object":
        parameters.setdefault("properties", {})
    return parameters


def _describe(error: BaseException) -> str:
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in error.exceptions)
    if isinstance(error, MCPError):
        return error.message
    if isinstance(error, TimeoutError):
        return str(error) or "timed out"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def _bounded(awaitable: Any, within: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            await awaitable
