"""JSON Schemas of Python functions: what a client tool declares to the model.

`parameters_schema` describes a function's parameters from its type hints, with the
per-parameter descriptions `parse_docstring` finds; `coerce` turns the JSON arguments of a
call back into the hinted Python types.
"""

from __future__ import annotations

import collections.abc
import contextlib
import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, Union

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


def coerce(annotation: Any, value: Any) -> Any:
    """JSON values as the hinted Python types where they differ (enums, tuples, sets)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return coerce(args[0], value)
    if value is None:
        return None
    if origin is Union or origin is types.UnionType:
        options = [a for a in args if a is not type(None)]
        return coerce(options[0], value) if len(options) == 1 else value
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation(value)
    if isinstance(value, list):
        if annotation is tuple or origin is tuple:
            return tuple(value)
        if annotation in (set, frozenset) or origin in (set, frozenset):
            return (origin or annotation)(value)
    return value


def type_hints(function: Callable[..., Any]) -> dict[str, Any]:
    """A function's resolved type hints (its raw annotations where they do not resolve)."""
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
    hints = type_hints(function)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, parameter in signature.parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        try:
            schema = json_schema(hints.get(name, parameter.annotation))
        except TypeError as error:
            raise TypeError(f"parameter {name!r} of {qualname(function)}: {error}") from None
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


def qualname(function: Callable[..., Any]) -> str:
    """A function's name for error messages."""
    return str(getattr(function, "__qualname__", None) or getattr(function, "__name__", function))
