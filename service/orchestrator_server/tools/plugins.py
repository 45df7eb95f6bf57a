"""Operator plugins: tools installed as Python entry points.

A distribution declares, in its pyproject.toml:

    [project.entry-points."orchestrator.tools"]
    weather = "my_package.tools:weather_tool"

where the object is a `ServerTool`, a list of them, or a zero-argument callable returning
either. Plugins load at start-up; one that fails to load is logged and skipped, so a bad
plugin cannot keep the server from starting.

A handler that is a plain function rather than a coroutine function runs in a pool of
SYNC_TOOL_THREADS threads of its own: on the event loop it would stall every stream, and
in the default executor a stuck one would hold threads the model catalog and the store
need.
Past its timeout the call is reported to the model as timed out; Python cannot stop the
thread, which finishes in the background (a plugin doing blocking work should bound it).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import entry_points
from typing import Any

from ..core.tool_port import ServerTool

ENTRY_POINT_GROUP = "orchestrator.tools"
SYNC_TOOL_THREADS = 4
log = logging.getLogger(__name__)
_sync_tools = ThreadPoolExecutor(SYNC_TOOL_THREADS, thread_name_prefix="sync-tool")


def _is_async(handler: Any) -> bool:
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 (a callable object's method)
    )


def off_the_loop(handler: Any) -> Any:
    """An async handler running a plain function in the sync-tool threads."""

    async def run(args: dict[str, Any]) -> str:
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(_sync_tools, handler, args)
        if inspect.isawaitable(result):  # a callable object or wrapper that is async after all
            result = await result
        return str(result)

    return run


def _as_tools(obj: object) -> list[ServerTool]:
    if callable(obj) and not isinstance(obj, ServerTool):
        obj = obj()
    if isinstance(obj, ServerTool):
        return [obj]
    if isinstance(obj, list | tuple) and all(isinstance(t, ServerTool) for t in obj):
        return list(obj)
    raise TypeError("a tool entry point must give a ServerTool or a list of them")


def plugin_tools(group: str = ENTRY_POINT_GROUP) -> list[ServerTool]:
    """Every tool declared under the entry-point group, tagged with its distribution."""
    tools: list[ServerTool] = []
    for point in entry_points(group=group):
        try:
            loaded = _as_tools(point.load())
        except Exception:
            log.exception("tool plugin %s could not be loaded; skipped", point.name)
            continue
        dist = point.dist.name if point.dist is not None else point.name
        for tool in loaded:
            tools.append(
                ServerTool(
                    name=tool.name,
                    description=tool.description,
                    parameters=tool.parameters,
                    handler=tool.handler if _is_async(tool.handler) else off_the_loop(tool.handler),
                    source="plugin",
                    source_name=dist,
                    timeout_seconds=tool.timeout_seconds,
                )
            )
    return tools
