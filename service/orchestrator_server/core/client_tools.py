"""Tools a client declares for one turn (their arguments are validated by
argument_validation).

A client's schemas are untrusted input that the server runs code over, so they are
bounded before anything else is done with them: at most MAX_CLIENT_TOOLS tools, each
schema at most MAX_SCHEMA_CHARS characters and MAX_SCHEMA_DEPTH levels deep, and every
regular expression in it (`pattern`, `patternProperties`) is compiled and later matched
with RE2, whose matching time is linear in the input: Python's `re` takes time
exponential in the argument's length on patterns like `^(a+)+$`, which would freeze the
event loop for every tenant. A pattern RE2 cannot express (look-around, back-references)
is refused with the schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .ecma_regex import ecma_to_re2
from .errors import InvalidArgumentError
from .tool_port import TOOL_NAME

MAX_CLIENT_TOOLS = 128
MAX_SCHEMA_CHARS = 64 * 1024
MAX_SCHEMA_DEPTH = 32
MAX_TOOL_DESCRIPTION_CHARS = 4096
# All client schemas of one turn together: their characters, and their subschemas
# (checking a schema against the metaschema costs ~0.5 ms per subschema).
MAX_SCHEMAS_CHARS_PER_TURN = 256 * 1024
MAX_SUBSCHEMAS_PER_TURN = 2000
# Keywords refused in a client schema: `$schema` below the root would make jsonschema
# validate that part with its stock validator (Python `re`, no deadline), and the
# unevaluated* keywords make it walk subschemas (quadratically, and through `$ref` and
# `dependentSchemas`) without evaluating a keyword where the deadline is checked.
REFUSED_KEYWORDS = frozenset({"unevaluatedProperties", "unevaluatedItems", "$id"})
# References must stay inside the schema ("#..."): a reference to a schema jsonschema
# bundles (the metaschemas) would be validated by its stock validator, outside the bounds;
# `$id` (refused above) would move what "#" means.
_REFERENCES = ("$ref", "$dynamicRef")
_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


class ToolError(Exception):
    """A tool failed; its text is what the model is told."""


@dataclass(frozen=True, slots=True)
class ClientTool:
    """A tool the calling client declared for one turn."""

    name: str
    description: str
    parameters: dict[str, Any]


def parse_client_tools(
    definitions: Sequence[tuple[str, str, str]], taken: set[str]
) -> tuple[ClientTool, ...]:
    """Validate (name, description, JSON schema text) triples from a StartTurn."""
    if len(definitions) > MAX_CLIENT_TOOLS:
        raise InvalidArgumentError.for_field(
            "start.client_tools", f"at most {MAX_CLIENT_TOOLS} client tools per turn"
        )
    total = sum(len(text) for _, _, text in definitions)
    if total > MAX_SCHEMAS_CHARS_PER_TURN:
        raise InvalidArgumentError.for_field(
            "start.client_tools",
            f"the schemas total {total:,} characters, at most {MAX_SCHEMAS_CHARS_PER_TURN:,}",
        )
    tools: list[ClientTool] = []
    seen: set[str] = set(taken)
    subschemas = 0
    for i, (name, description, schema_text) in enumerate(definitions):
        where = f"start.client_tools[{i}]"
        if not TOOL_NAME.fullmatch(name):
            raise InvalidArgumentError.for_field(
                f"{where}.name", "must be 1-64 letters, digits, '_' or '-'"
            )
        if name in seen:
            raise InvalidArgumentError.for_field(
                f"{where}.name", f"'{name}' is already a tool of this turn"
            )
        seen.add(name)
        if len(description) > MAX_TOOL_DESCRIPTION_CHARS:
            raise InvalidArgumentError.for_field(
                f"{where}.description", f"at most {MAX_TOOL_DESCRIPTION_CHARS} characters"
            )
        schema, count = _parse_schema(schema_text, f"{where}.parameters_json_schema")
        subschemas += count
        if subschemas > MAX_SUBSCHEMAS_PER_TURN:
            raise InvalidArgumentError.for_field(
                "start.client_tools",
                f"the schemas have over {MAX_SUBSCHEMAS_PER_TURN:,} subschemas together",
            )
        tools.append(ClientTool(name, description, schema))
    return tuple(tools)


def _parse_schema(text: str, field: str) -> tuple[dict[str, Any], int]:
    """A client's JSON schema for an object, within the limits, with RE2 patterns; and
    how many subschemas it has."""
    if len(text) > MAX_SCHEMA_CHARS:
        raise InvalidArgumentError.for_field(field, f"at most {MAX_SCHEMA_CHARS} characters")
    try:
        return _checked_schema(text)
    except ValueError as error:
        raise InvalidArgumentError.for_field(
            field, f"is not a valid JSON Schema: {str(error)[:200]}"
        ) from None


@lru_cache(maxsize=256)
def _checked_schema(text: str) -> tuple[dict[str, Any], int]:
    """The parsed, checked schema (cached: clients send the same tools every turn; the
    validators never change a schema); ValueError if it is not acceptable."""
    import jsonschema  # ~90 ms to import: only turns with client tools need it here

    try:
        # The character limit bounds the nesting json.loads could recurse into (a
        # 64 KiB array nests at most 32k deep), so RecursionError is caught, not feared.
        schema = json.loads(text) if text else dict(_EMPTY_SCHEMA)
        if not isinstance(schema, dict) or schema.get("type", "object") != "object":
            raise ValueError("the schema must describe a JSON object")
        count = _check_shape(schema)
        jsonschema.Draft202012Validator.check_schema(schema, format_checker=_format_checker())
    except (ValueError, RecursionError, jsonschema.SchemaError) as error:
        message = getattr(error, "message", None) or str(error) or type(error).__name__
        raise ValueError(message) from None
    return schema, count


def _nodes(value: Any) -> Iterator[tuple[Any, int]]:
    """Every value of a parsed JSON document with its depth (iteratively: no recursion
    to exhaust)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        yield item, depth
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def _check_shape(schema: dict[str, Any]) -> int:
    """ValueError for a schema too deep, with a pattern RE2 cannot run or a refused
    keyword; how many objects (subschemas, at most) it has."""
    nodes = list(_nodes(schema))
    if max(depth for _, depth in nodes) > MAX_SCHEMA_DEPTH:
        raise ValueError(f"the schema nests deeper than {MAX_SCHEMA_DEPTH} levels")
    objects = [node for node, _ in nodes if isinstance(node, dict)]
    refused: set[str] = set()
    for node in objects:
        refused |= REFUSED_KEYWORDS & node.keys()
        if node is not schema and "$schema" in node:
            refused.add("$schema (below the root)")
        for keyword in _REFERENCES:
            target = node.get(keyword)
            if isinstance(target, str) and not target.startswith("#"):
                refused.add(f"{keyword} outside the schema ({target[:60]!r})")
    if refused:
        raise ValueError(f"not supported in a client tool's schema: {', '.join(sorted(refused))}")
    for node in objects:
        if isinstance(node.get("pattern"), str):
            compiled_pattern(node["pattern"])
        keyed = node.get("patternProperties")
        if isinstance(keyed, dict):
            for pattern in keyed:
                compiled_pattern(pattern)
    return len(objects)


@lru_cache(maxsize=1)
def _format_checker() -> Any:
    """The metaschema's format checks, with `regex` meaning what the validator will run
    (ECMA-262 through RE2) rather than what Python's `re` compiles."""
    import jsonschema

    checker = jsonschema.FormatChecker()
    checker.checks("regex", raises=ValueError)(lambda pattern: bool(compiled_pattern(pattern)))
    return checker


# A compiled program can take ~0.3 MB (`\S{1000}`): the cache is kept small.
@lru_cache(maxsize=128)
def compiled_pattern(pattern: str) -> Any:
    """The RE2 program of an ECMA-262 pattern; ValueError if RE2 cannot express it."""
    import re2

    options = re2.Options()
    options.log_errors = False  # a client's bad pattern is its error, not a server log line
    try:
        return re2.compile(ecma_to_re2(pattern), options)
    except re2.error as error:
        raise ValueError(
            f"pattern {pattern[:60]!r} is not supported (linear-time regular expressions "
            f"only: no look-around or back-references): {error!s}"
        ) from None
