"""Configuration of the MCP servers an operator lets the orchestrator use.

Servers come only from the operator's configuration (the server's TOML, one table per
server), never from a client request: nothing in the API lets a client make the server
start a process or reach a URL of its choosing.

    [[mcp_servers]]
    name = "files"                       # [a-z][a-z0-9_]{0,30}; tools appear as files__<tool>
    command = "python"                   # stdio: the executable ...
    args = ["-m", "my_mcp_server"]       # ... its arguments
    env = { ROOT = "/srv/data" }         # extra environment (see below)
    cwd = "/srv"                         # working directory (default: the server's)
    tool_timeout_seconds = 30            # per tool call (default 30)
    startup_timeout_seconds = 15         # spawn + initialize + list tools (default 15)

    [[mcp_servers]]
    name = "search"
    url = "https://mcp.example.com/mcp"  # streamable HTTP instead of a command
    headers = { Authorization = "Bearer ..." }

A stdio server's environment is the MCP SDK's safe default (HOME, LOGNAME, PATH, SHELL,
TERM, USER) plus `env`; the orchestrator's own environment (provider keys included) is
not passed on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

SERVER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
DEFAULT_TOOL_TIMEOUT_SECONDS = 30.0
DEFAULT_STARTUP_TIMEOUT_SECONDS = 15.0
_KEYS = frozenset(
    {
        "name",
        "command",
        "args",
        "env",
        "cwd",
        "url",
        "headers",
        "tool_timeout_seconds",
        "startup_timeout_seconds",
    }
)


@dataclass(frozen=True, slots=True)
class McpServerConfig:
    """One MCP server: a stdio `command` (with `args`, `env`, `cwd`) or a streamable HTTP
    `url` (with optional `headers`). Build it with `from_dict` to get validation."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    tool_timeout_seconds: float = DEFAULT_TOOL_TIMEOUT_SECONDS
    startup_timeout_seconds: float = DEFAULT_STARTUP_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def transport(self) -> str:
        """ "stdio" or "http"."""
        return "stdio" if self.command is not None else "http"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> McpServerConfig:
        """Parse one `[[mcp_servers]]` table; ValueError says what is wrong and where."""
        if not isinstance(data, Mapping):
            raise ValueError(f"an MCP server entry must be a table, not {type(data).__name__}")
        raw_name = data.get("name")
        where = f"MCP server {raw_name!r}" if isinstance(raw_name, str) else "MCP server"
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            allowed = ", ".join(sorted(_KEYS))
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {allowed})")
        if not isinstance(raw_name, str):
            raise ValueError("MCP server: 'name' is required and must be a string")
        return cls(
            name=raw_name,
            command=_optional_str(data, "command", where),
            args=tuple(_str_list(data.get("args", []), "args", where)),
            env=_str_map(data.get("env", {}), "env", where),
            cwd=_optional_str(data, "cwd", where),
            url=_optional_str(data, "url", where),
            headers=_str_map(data.get("headers", {}), "headers", where),
            tool_timeout_seconds=_seconds(
                data, "tool_timeout_seconds", DEFAULT_TOOL_TIMEOUT_SECONDS, where
            ),
            startup_timeout_seconds=_seconds(
                data, "startup_timeout_seconds", DEFAULT_STARTUP_TIMEOUT_SECONDS, where
            ),
        )


def parse_mcp_servers(entries: Sequence[Mapping[str, Any]]) -> list[McpServerConfig]:
    """Parse the `mcp_servers` array; names must be unique."""
    if isinstance(entries, str | bytes) or not isinstance(entries, Sequence):
        raise ValueError("'mcp_servers' must be an array of tables")
    configs = [McpServerConfig.from_dict(entry) for entry in entries]
    seen: set[str] = set()
    for config in configs:
        if config.name in seen:
            raise ValueError(f"MCP server name {config.name!r} is used more than once")
        seen.add(config.name)
    return configs


def _validate(config: McpServerConfig) -> None:
    where = f"MCP server {config.name!r}"
    if not isinstance(config.name, str) or not SERVER_NAME.fullmatch(config.name):
        raise ValueError(
            f"MCP server name {config.name!r} must match [a-z][a-z0-9_]{{0,30}} "
            "(lower-case letter first, then lower-case letters, digits or '_')"
        )
    if (config.command is None) == (config.url is None):
        raise ValueError(f"{where}: set exactly one of 'command' (stdio) or 'url' (HTTP)")
    if config.command is not None:
        if not config.command.strip() or "\0" in config.command:
            raise ValueError(f"{where}: 'command' must be a non-empty executable name or path")
        if config.headers:
            raise ValueError(f"{where}: 'headers' only applies to a 'url' server")
        if any("\0" in arg for arg in config.args):
            raise ValueError(f"{where}: 'args' must not contain NUL characters")
    if config.url is not None:
        parts = urlsplit(config.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{where}: 'url' must be an http:// or https:// URL with a host")
        stdio_only = (("args", config.args), ("env", config.env), ("cwd", config.cwd))
        extra = [key for key, value in stdio_only if value]
        if extra:
            raise ValueError(f"{where}: {', '.join(extra)} only apply to a 'command' server")
    for key in ("tool_timeout_seconds", "startup_timeout_seconds"):
        value = getattr(config, key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
            raise ValueError(f"{where}: '{key}' must be a number of seconds in (0, 3600]")


def _optional_str(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where}: '{key}' must be a string")
    return value


def _str_list(value: object, key: str, where: str) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: '{key}' must be a list of strings")
    return list(value)


def _str_map(value: object, key: str, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"{where}: '{key}' must be a table of string values")
    return dict(value)


def _seconds(data: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: '{key}' must be a number of seconds")
    return float(value)
