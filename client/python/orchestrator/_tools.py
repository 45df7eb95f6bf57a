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
import collections.abc
import contextlib
import dataclasses
import enum
import functools
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Union, overload

from .v1 import run_pb2

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params|Keyword Args|Kwargs):\s*$")
_OTHER_SECTION = re.compile(r"^[A-Z][A-Za-z ]*:\s*$")
_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_REST_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
_ARRAYS = (
    list,
    set,
    frozenset,
    collections.abc.Sequence,
    collections.abc.MutableSequence,
    collections.abc.Set,
    collections.abc.MutableSet,
    collections.abc.Iterable,
    collections.abc.Collection,
)
_OBJECTS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)


def _json_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return None


def _enum_schema(values: list[Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {"enum": values}
    kinds = {_json_type(v) for v in values}
    if len(kinds) == 1 and None not in kinds:
        schema["type"] = kinds.pop()
    return schema


def json_schema(annotation: Any) -> dict[str, Any]:
    """The JSON Schema of a type hint (TypeError for a type it cannot describe).

    Supports str, int, float, bool, None, Any, list/set/tuple/Sequence, dict/Mapping,
    unions and Optional, Literal, Enum, and Annotated[T, "description"].
    """
    if annotation is inspect.Parameter.empty or annotation is Any or annotation is object:
        return {}
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        schema = json_schema(args[0])
        notes = [a for a in args[1:] if isinstance(a, str)]
        return {**schema, "description": notes[0]} if notes else schema
    if annotation is None or annotation is type(None):
        return {"type": "null"}
    if origin is Union or origin is types.UnionType:
        options = [a for a in args if a is not type(None)]
        nullable = len(options) < len(args)
        schemas = [json_schema(a) for a in options]
        schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
        if not nullable or not schema:
            return schema
        if set(schema) == {"type"} and isinstance(schema["type"], str):
            return {"type": [schema["type"], "null"]}
        if set(schema) == {"anyOf"}:
            return {"anyOf": [*schema["anyOf"], {"type": "null"}]}
        return {"anyOf": [schema, {"type": "null"}]}
    if origin is Literal:
        return _enum_schema(list(args))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum_schema([member.value for member in annotation])
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if annotation in simple:
        return {"type": simple[annotation]}
    if annotation is tuple or origin is tuple:
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            items = json_schema(args[0]) if args else {}
            return {"type": "array", "items": items} if items else {"type": "array"}
        return {
            "type": "array",
            "prefixItems": [json_schema(a) for a in args],
            "minItems": len(args),
            "maxItems": len(args),
        }
    if annotation in _ARRAYS or origin in _ARRAYS:
        items = json_schema(args[0]) if args else {}
        return {"type": "array", "items": items} if items else {"type": "array"}
    if annotation in _OBJECTS or origin in _OBJECTS:
        values = json_schema(args[1]) if len(args) == 2 else {}
        return {"type": "object", "additionalProperties": values} if values else {"type": "object"}
    raise TypeError(f"cannot describe {annotation!r} as JSON Schema")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The description (first paragraph) and per-parameter descriptions of a docstring.

    Parameter descriptions come from a Google-style `Args:` section or reST `:param x:`
    lines.
    """
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    first: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line.strip()) or line.lstrip().startswith(":"):
            break
        first.append(line.strip())
    params: dict[str, str] = {}
    current: str | None = None
    in_section = False
    base_indent: int | None = None
    for line in lines:
        stripped = line.strip()
        rest = _REST_PARAM.match(stripped)
        if rest:
            current = rest.group(1)
            params[current] = rest.group(2).strip()
            in_section = False
            continue
        if _SECTION.match(line):
            in_section, current, base_indent = True, None, None
            continue
        if in_section:
            if not stripped:
                continue
            indent = len(line) - len(line.lstrip())
            if indent == 0:
                in_section = bool(_SECTION.match(line)) and not _OTHER_SECTION.match(line)
                current = None
                continue
            if base_indent is None:
                base_indent = indent
            entry = _ENTRY.match(stripped) if indent <= base_indent else None
            if entry:
                current = entry.group(1)
                params[current] = entry.group(2).strip()
            elif current is not None:
                params[current] = f"{params[current]} {stripped}".strip()
        elif current is not None and stripped and line.startswith((" ", "\t")):
            params[current] = f"{params[current]} {stripped}".strip()
        elif not stripped:
            current = None
    return " ".join(first), params


def _coerce(annotation: Any, value: Any) -> Any:
    """JSON values as the hinted Python types where they differ (enums, tuples, sets)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _coerce(args[0], value)
    if value is None:
        return None
    if origin is Union or origin is types.UnionType:
        options = [a for a in args if a is not type(None)]
        return _coerce(options[0], value) if len(options) == 1 else value
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation(value)
    if isinstance(value, list):
        if annotation is tuple or origin is tuple:
            return tuple(value)
        if annotation in (set, frozenset) or origin in (set, frozenset):
            return (origin or annotation)(value)
    return value


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
        hints = _hints(self.function)
        positional: list[Any] = []
        keywords: dict[str, Any] = {}
        remaining = dict(arguments)
        for name, parameter in signature.parameters.items():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            if name not in remaining:
                continue
            value = _coerce(hints.get(name, parameter.annotation), remaining.pop(name))
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


def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function, include_extras=True)
    except Exception:
        # Unresolvable forward references: fall back to the raw annotations.
        return dict(getattr(function, "__annotations__", {}))


def parameters_schema(
    function: Callable[..., Any], descriptions: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The object schema of a function's parameters; those without defaults are required."""
    signature = inspect.signature(function)
    hints = _hints(function)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, parameter in signature.parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        try:
            schema = json_schema(hints.get(name, parameter.annotation))
        except TypeError as error:
            raise TypeError(f"parameter {name!r} of {_qualname(function)}: {error}") from None
        if descriptions and name in descriptions and "description" not in schema:
            schema = {**schema, "description": descriptions[name]}
        if parameter.default is parameter.empty:
            required.append(name)
        else:
            default = parameter.default
            if isinstance(default, enum.Enum):
                default = default.value
            # As JSON has it (a tuple becomes a list); none for a value JSON cannot hold.
            with contextlib.suppress(TypeError, ValueError):
                schema = {**schema, "default": json.loads(json.dumps(default))}
        properties[name] = schema
    result: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        result["required"] = required
    return result


def _qualname(function: Callable[..., Any]) -> str:
    return str(getattr(function, "__qualname__", None) or getattr(function, "__name__", function))


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
