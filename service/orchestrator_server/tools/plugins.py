"""Operator plugins: tools installed as Python entry points.

A distribution declares, in its pyproject.toml:

    [project.entry-points."orchestrator.tools"]
    weather = "my_package.tools:weather_tool"

where the object is a `ServerTool`, a list of them, or a zero-argument callable returning
either. Plugins load at start-up; one that fails to load is logged and skipped, so a bad
plugin cannot keep the server from starting.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from ..core.tool_port import ServerTool

ENTRY_POINT_GROUP = "orchestrator.tools"
log = logging.getLogger(__name__)


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
                    handler=tool.handler,
                    source="plugin",
                    source_name=dist,
                    timeout_seconds=tool.timeout_seconds,
                )
            )
    return tools
