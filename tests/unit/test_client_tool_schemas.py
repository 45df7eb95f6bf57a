"""Client tool schemas are bounded before use, and their patterns match in linear time
(abuse: a catastrophic regular expression, deep nesting, thousands of tools)."""

from __future__ import annotations

import json

import pytest

from orchestrator_server.core.argument_validation import validate_arguments
from orchestrator_server.core.client_tools import (
    MAX_CLIENT_TOOLS,
    MAX_SCHEMA_CHARS,
    MAX_SCHEMA_DEPTH,
    ToolError,
    parse_client_tools,
)
from orchestrator_server.core.errors import InvalidArgumentError


def schema(**properties: object) -> str:
    return json.dumps({"type": "object", "properties": properties})


def test_a_catastrophic_pattern_is_matched_in_linear_time() -> None:
    (tool,) = parse_client_tools(
        [("t", "", schema(s={"type": "string", "pattern": "^(a+)+$"}))], set()
    )
    # With Python's re this argument takes seconds (doubling with every extra "a").
    with pytest.raises(ToolError, match="does not match"):
        validate_arguments({"s": "a" * 5000 + "!"}, tool.parameters, client=True)
    validate_arguments({"s": "a" * 5000}, tool.parameters, client=True)


def test_pattern_properties_match_with_re2_too() -> None:
    text = json.dumps({"type": "object", "patternProperties": {"^x(a+)+$": {"type": "integer"}}})
    (tool,) = parse_client_tools([("t", "", text)], set())
    with pytest.raises(ToolError):
        validate_arguments({"xaaa": "not a number"}, tool.parameters, client=True)
    validate_arguments({"xaaa": 3, "other": "free"}, tool.parameters, client=True)


@pytest.mark.parametrize("pattern", ["(?=a)b", "(a)\\1"])
def test_patterns_re2_cannot_match_linearly_are_refused(pattern: str) -> None:
    with pytest.raises(InvalidArgumentError, match="not supported"):
        parse_client_tools([("t", "", schema(s={"type": "string", "pattern": pattern}))], set())


def test_deep_schemas_are_invalid_arguments_not_internal_errors() -> None:
    nested: dict[str, object] = {"type": "string"}
    for _ in range(300):
        nested = {"type": "object", "properties": {"x": nested}}
    with pytest.raises(InvalidArgumentError, match="deeper"):
        parse_client_tools([("t", "", json.dumps(nested))], set())
    deep_array = "[" * 30_000 + "]" * 30_000
    with pytest.raises(InvalidArgumentError):
        parse_client_tools([("t", "", deep_array)], set())


def test_limits_on_count_and_size() -> None:
    assert (MAX_CLIENT_TOOLS, MAX_SCHEMA_CHARS, MAX_SCHEMA_DEPTH) == (128, 65536, 32)
    many = [(f"tool_{i}", "", "") for i in range(MAX_CLIENT_TOOLS + 1)]
    with pytest.raises(InvalidArgumentError, match="at most 128"):
        parse_client_tools(many, set())
    assert len(parse_client_tools(many[:MAX_CLIENT_TOOLS], set())) == MAX_CLIENT_TOOLS
    big = schema(s={"type": "string", "description": "x" * MAX_SCHEMA_CHARS})
    with pytest.raises(InvalidArgumentError, match="characters"):
        parse_client_tools([("t", "", big)], set())


def test_callable_agents_are_bounded() -> None:
    from orchestrator_server.core.types import AgentSpec
    from orchestrator_server.core.validation import MAX_CALLABLE_AGENTS, check_agent_spec

    callees = tuple(f"agent_{i}" for i in range(MAX_CALLABLE_AGENTS + 1))
    with pytest.raises(InvalidArgumentError, match="callable_agents"):
        check_agent_spec(AgentSpec(callable_agents=callees))
    check_agent_spec(AgentSpec(callable_agents=callees[:MAX_CALLABLE_AGENTS]))


def test_additional_properties_match_pattern_properties_with_re2() -> None:
    text = json.dumps(
        {
            "type": "object",
            "patternProperties": {"^(a+)+$": {"type": "integer"}},
            "additionalProperties": False,
        }
    )
    (tool,) = parse_client_tools([("t", "", text)], set())
    # With Python's re, jsonschema's own check of this key takes seconds.
    with pytest.raises(ToolError, match="additional properties"):
        validate_arguments({"a" * 40 + "!": 1}, tool.parameters, client=True)
    validate_arguments({"a" * 40: 1}, tool.parameters, client=True)


def test_unevaluated_properties_with_pattern_properties_are_refused() -> None:
    text = json.dumps(
        {
            "type": "object",
            "patternProperties": {"^x": {}},
            "unevaluatedProperties": False,
        }
    )
    with pytest.raises(InvalidArgumentError, match="not supported"):
        parse_client_tools([("t", "", text)], set())


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        (r"^[\u0041-\u005A]+$", "ABC", "abc"),  # \u escapes (RE2 alone refuses them)
        (r"^\u{1F600}$", "\U0001f600", "x"),
        (r"^\s$", "\u00a0", "x"),  # ECMA white space includes no-break and Unicode spaces
        (r"^[^\s]+$", "ab", "a\u2003b"),
        (r"^\S+$", "ab", "a\ufeffb"),
        (r"^a.b$", "a-b", "a\rb"),  # `.` excludes every ECMA line terminator
        (r"^[.]$", ".", "x"),
        (r"^\cJ$", "\n", "J"),
        (r"^\\u0041$", "\\u0041", "A"),  # an escaped backslash is not an escape
        (r"^[[]\s$", "[ ", "[x"),  # "[" in a class is a character
        (r"^[[].$", "[a", "[\u2028"),
        (r"^[[:digit:]]$", ":]", "5"),  # not a POSIX class in ECMA: "[:digit:" then "]"
        (r"^b$|^[]a]$", "b", "a"),  # [] matches nothing
        (r"^[^]]$", "a]", "a"),  # [^] matches any character
        (r"^\uD83D\uDE00$", "\U0001f600", "x"),  # a surrogate pair is one character
    ],
)
def test_patterns_keep_their_ecma_meaning_under_re2(
    pattern: str, matching: str, not_matching: str
) -> None:
    (tool,) = parse_client_tools(
        [("t", "", schema(s={"type": "string", "pattern": pattern}))], set()
    )
    validate_arguments({"s": matching}, tool.parameters, client=True)
    with pytest.raises(ToolError, match="does not match"):
        validate_arguments({"s": not_matching}, tool.parameters, client=True)


@pytest.mark.parametrize("pattern", [r"[\s-\uFFFF]", r"[\t-\s]", r"[a-\S]"])
def test_a_class_escape_as_a_range_endpoint_is_refused(pattern: str) -> None:
    declared = schema(s={"type": "string", "pattern": pattern})
    with pytest.raises(InvalidArgumentError, match="range endpoint"):
        parse_client_tools([("t", "", declared)], set())
