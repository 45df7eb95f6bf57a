"""Client-side tools: plain Python functions the model may call during a run.

A function becomes a `ClientTool` with a JSON Schema built from its type hints and a
description taken from its docstring (the first paragraph; the entries of an `Args:`
section, or `:param x:` lines, describe the parameters). The run declares the tools in
`StartTurn.client_tools`; when the model calls one, the stream that started the turn runs
the function with the call's JSON arguments and sends back a `ToolResult` (see
`_stream.RunStream`).

    @tool(name="get_weather")
    def weather(city: str, unit: Literal["C", "F"] = "C") -> str:
        '''The current weather in a city.

        Args:
            city: The city's name, e.g. "Paris".
            unit: Temperature unit.
        '''
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import functools
import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, overload

from ._schema import coerce, json_schema, parameters_schema, parse_docstring, type_hints
from .v1 import run_pb2

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

__all__ = [
    "ClientTool",
    "ToolLike",
    "client_tools",
    "json_schema",
    "parse_docstring",
    "render_output",
    "to_client_tool",
    "tool",
]


def render_output(value: Any) -> str:
    """A tool's return value as the text the model sees: str as is, others as JSON."""
    if isinstance(value, str):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    elif hasattr(value, "model_dump"):  # pydantic models
        value = value.model_dump(mode="json")
    return json.dumps(value, ensure_ascii=False, default=_fallback)


def _fallback(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


@dataclasses.dataclass(frozen=True)
class ClientTool:
    """A function the model may call, executed by this client during a run.

    Built by `tool(...)` or from a plain function by `to_client_tool`; calling it calls
    the function.
    """

    name: str
    description: str
    parameters: Mapping[str, Any]
    function: Callable[..., Any]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def definition(self) -> run_pb2.ToolDefinition:
        """The ToolDefinition declared in StartTurn.client_tools."""
        return run_pb2.ToolDefinition(
            name=self.name,
            description=self.description,
            parameters_json_schema=json.dumps(self.parameters),
        )

    async def invoke(self, arguments_json: str) -> tuple[str, str]:
        """Run the function with a call's JSON arguments: `(output, "")` or `("", error)`.

        Coroutine functions are awaited; other functions run in a worker thread.
        """
        try:
            arguments = json.loads(arguments_json) if arguments_json.strip() else {}
            if not isinstance(arguments, dict):
                raise TypeError(f"arguments must be a JSON object, got {arguments_json!r}")
            positional, keywords = self._bind(arguments)
            if _is_async(self.function):
                result = await self.function(*positional, **keywords)
            else:
                result = await asyncio.to_thread(self.function, *positional, **keywords)
                if inspect.isawaitable(result):
                    result = await result
            return render_output(result), ""
        except Exception as error:
            return "", f"{type(error).__name__}: {error}"

    def _bind(self, arguments: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        signature = inspect.signature(self.function)
        hints = type_hints(self.function)
        positional: list[Any] = []
        keywords: dict[str, Any] = {}
        remaining = dict(arguments)
        for name, parameter in signature.parameters.items():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            if name not in remaining:
                continue
            value = coerce(hints.get(name, parameter.annotation), remaining.pop(name))
            if parameter.kind is parameter.POSITIONAL_ONLY:
                positional.append(value)
            else:
                keywords[name] = value
        takes_extra = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        if remaining and takes_extra:
            keywords.update(remaining)
        elif remaining:
            raise TypeError(f"unexpected arguments: {', '.join(sorted(remaining))}")
        signature.bind(*positional, **keywords)  # a clear error for a missing argument
        return positional, keywords


def _is_async(function: Callable[..., Any]) -> bool:
    while isinstance(function, functools.partial):
        function = function.func
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004
    )


def to_client_tool(
    function: Callable[..., Any] | ClientTool,
    *,
    name: str | None = None,
    description: str | None = None,
) -> ClientTool:
    """A ClientTool from a function (name from `__name__`, schema from its type hints,
    description from its docstring), or a ClientTool unchanged."""
    if isinstance(function, ClientTool):
        if name is None and description is None:
            return function
        return dataclasses.replace(
            function,
            name=name or function.name,
            description=function.description if description is None else description,
        )
    if not callable(function):
        raise TypeError(f"a client tool is a function, not {type(function).__name__}")
    doc_description, params = parse_docstring(inspect.getdoc(function))
    tool_name = name or str(getattr(function, "__name__", ""))
    if not _NAME.match(tool_name):
        raise ValueError(
            f"tool name {tool_name!r} must be 1 to 64 letters, digits, '_' or '-' "
            "(pass name=... to tool())"
        )
    return ClientTool(
        name=tool_name,
        description=doc_description if description is None else description,
        parameters=parameters_schema(function, params),
        function=function,
    )


@overload
def tool(
    function: Callable[..., Any], /, *, name: str | None = None, description: str | None = None
) -> ClientTool: ...
@overload
def tool(
    *, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], ClientTool]: ...
def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
) -> ClientTool | Callable[[Callable[..., Any]], ClientTool]:
    """Make a function a client tool, optionally overriding its name or description.

    `@tool`, `@tool(name="search")` or `tool(fn, ...)`; the result is still callable.
    Plain functions passed to `run(tools=[...])` need no decorator.
    """
    if function is not None:
        return to_client_tool(function, name=name, description=description)

    def decorate(fn: Callable[..., Any]) -> ClientTool:
        return to_client_tool(fn, name=name, description=description)

    return decorate


ToolLike = Callable[..., Any] | ClientTool
"""What `run(tools=...)` accepts per tool: a function or a ClientTool."""


def client_tools(tools: Iterable[ToolLike] | None) -> dict[str, ClientTool]:
    """ClientTools by name (ValueError for two tools with one name)."""
    by_name: dict[str, ClientTool] = {}
    for item in tools or ():
        if isinstance(item, str):
            raise TypeError(
                f"run(tools=...) takes Python functions; server tools such as {item!r} are "
                "given to the agent (create_agent(tools=...))"
            )
        converted = to_client_tool(item)
        if converted.name in by_name:
            raise ValueError(f"two client tools are named {converted.name!r}")
        by_name[converted.name] = converted
    return by_name
