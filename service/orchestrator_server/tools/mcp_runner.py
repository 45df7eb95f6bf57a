"""One MCP server under supervision: its connection task, health pings, restarts with
backoff, its tools and their calls (see `mcp_tools` for the behaviour as a whole)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from contextlib import AsyncExitStack
from typing import Any, Protocol

import anyio
import mcp_types
from mcp import ClientSession
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from ..core.tool_port import ServerTool, ToolHandler
from .mcp_config import McpServerConfig
from .mcp_protocol import (
    McpServerStatus,
    McpServerUnavailable,
    McpToolError,
    McpToolTimeout,
    describe,
    list_tools,
    parameters_schema,
    result_text,
    tool_name,
)
from .mcp_stdio import StdioProcess, stdio_transport

log = logging.getLogger("orchestrator_server.tools.mcp_tools")

_CLIENT_INFO = mcp_types.Implementation(name="agent-orchestrator", version="1")
_HTTP_PING_INTERVAL_SECONDS = 15.0
_PING_TIMEOUT_SECONDS = 10.0
_CLOSE_TIMEOUT_SECONDS = 10.0


class Supervisor(Protocol):
    """What a runner needs from the hub that owns it."""

    backoff_initial_seconds: float
    backoff_max_seconds: float
    healthy_after_seconds: float

    def _changed(self) -> None:
        """A server's tools or availability changed."""


class ServerRunner:
    """One MCP server: its supervising task, live session and tool list."""

    def __init__(self, config: McpServerConfig, hub: Supervisor) -> None:
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
                    parameters=parameters_schema(tool.input_schema),
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
                attempt_error = describe(error)
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
                    tools = await list_tools(session)
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
            self._last_error = f"health ping failed: {describe(error)}"
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
            self._connection_lost(generation, describe(error))
            raise McpToolError(
                f"MCP server '{name}' went away during the call to '{mcp_name}'; restarting"
            ) from None
        except Exception as error:
            raise McpToolError(
                f"MCP tool '{mcp_name}' on server '{name}' failed: {describe(error)}"
            ) from None
        text = result_text(result)
        if result.is_error:
            raise McpToolError(text or f"MCP tool '{mcp_name}' reported an error")
        return text
