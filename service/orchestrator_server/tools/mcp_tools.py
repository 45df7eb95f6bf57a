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
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..core.tool_port import ServerTool
from .mcp_config import McpServerConfig, parse_mcp_servers
from .mcp_protocol import (
    McpServerStatus,
    McpServerUnavailable,
    McpToolError,
    McpToolTimeout,
    bounded,
    tool_name,
)
from .mcp_runner import ServerRunner

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

Listener = Callable[[], None]


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
        self._runners = {config.name: ServerRunner(config, self) for config in configs}
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
            bounded(r.wait_first_attempt(), r.config.startup_timeout_seconds + 5)
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

    def _runner(self, server: str) -> ServerRunner:
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
