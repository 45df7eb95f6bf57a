"""Tool-call arguments are bounded before and while they are checked (abuse: a schema
whose validation doubles per level, a quadratic uniqueItems, oversized or deeply nested
arguments): each ends with a tool error for the model, never a stuck worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest

from orchestrator_server.core import argument_validation
from orchestrator_server.core.argument_validation import (
    MAX_ARGUMENT_CHARS,
    checked_arguments,
    validate_arguments,
)
from orchestrator_server.core.client_tools import ToolError, parse_client_tools
from orchestrator_server.core.errors import InvalidArgumentError


def doubling_schema(levels: int) -> dict[str, Any]:
    """Each level is anyOf two references to the next: 2**levels paths to a failure."""
    defs: dict[str, Any] = {
        f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(levels)
    }
    defs[f"d{levels}"] = {"type": "string"}
    return {"type": "object", "properties": {"x": {"$ref": "#/$defs/d0"}}, "$defs": defs}


@pytest.mark.parametrize("client", [True, False])
def test_a_validation_that_would_take_hours_stops_at_its_time_limit(
    client: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(argument_validation, "VALIDATION_SECONDS", 0.2)
    schema = doubling_schema(40)  # 1.6 KB; unbounded, 2**40 evaluations
    assert len(json.dumps(schema)) < 4096
    with pytest.raises(ToolError, match=r"took over 0\.2 s"):
        validate_arguments({"x": 1}, schema, client=client)
    # The same schema on matching arguments takes the first path and passes.
    validate_arguments({"x": "ok"}, schema, client=client)


def test_unique_items_is_checked_in_linear_time_with_json_equality() -> None:
    schema = {"type": "object", "properties": {"xs": {"type": "array", "uniqueItems": True}}}
    # Quadratic comparison would take minutes for 100,000 objects.
    many = [{"i": i} for i in range(100_000)]
    validate_arguments({"xs": many}, schema, client=True)
    with pytest.raises(ToolError, match="more than once"):
        validate_arguments({"xs": [*many, {"i": 5.0}]}, schema, client=True)
    validate_arguments({"xs": [1, True, "1", [1], {"1": 1}]}, schema, client=False)


async def test_oversized_and_deeply_nested_arguments_are_tool_errors() -> None:
    schema: dict[str, Any] = {"type": "object"}
    with pytest.raises(ToolError, match="at most"):
        await checked_arguments(
            "t", '{"x": "' + "a" * MAX_ARGUMENT_CHARS + '"}', schema, client=True
        )
    with pytest.raises(ToolError, match="not a JSON object"):
        await checked_arguments(
            "t", '{"x": ' + "[" * 200_000 + "]" * 200_000 + "}", schema, client=True
        )
    with pytest.raises(ToolError, match="not a JSON object"):
        await checked_arguments("t", "[1, 2]", schema, client=False)
    assert await checked_arguments("t", '{"x": [1]}', schema, client=False) == {"x": [1]}


@pytest.mark.parametrize(
    ("schema", "refused"),
    [
        ({"type": "object", "unevaluatedProperties": False}, "unevaluatedProperties"),
        ({"type": "object", "properties": {"x": {"unevaluatedItems": {}}}}, "unevaluatedItems"),
        (
            {
                "type": "object",
                "properties": {
                    "x": {
                        "$schema": "https://json-schema.org/draft/2020-12/schema",
                        "pattern": "^(a+)+$",
                    }
                },
            },
            "$schema (below the root)",
        ),
        (
            {
                "type": "object",
                "properties": {"x": {"$ref": "https://json-schema.org/draft/2020-12/schema"}},
            },
            "$ref outside the schema",
        ),
        ({"type": "object", "$id": "https://json-schema.org/draft/2020-12/schema"}, "$id"),
    ],
)
def test_keywords_that_escape_the_bounds_are_refused_in_client_schemas(
    schema: dict[str, Any], refused: str
) -> None:
    with pytest.raises(InvalidArgumentError) as error:
        parse_client_tools([("t", "", json.dumps(schema))], set())
    assert refused in error.value.violations[0].description


def test_the_client_schemas_of_a_turn_are_bounded_together() -> None:
    many = json.dumps({"type": "object", "properties": {f"p{i}": {} for i in range(600)}})
    with pytest.raises(InvalidArgumentError) as error:
        parse_client_tools([(f"t{i}", "", many) for i in range(4)], set())
    assert "subschemas" in error.value.violations[0].description
    big = json.dumps({"type": "object", "description": "x" * 60_000})
    with pytest.raises(InvalidArgumentError) as error:
        parse_client_tools([(f"t{i}", "", big) for i in range(5)], set())
    assert "characters" in error.value.violations[0].description


async def test_checks_are_shared_fairly_among_tenants(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tenant with many slow checks queued does not delay another tenant's check behind
    all of them: the validation threads are handed out like a provider's calls."""
    monkeypatch.setattr(argument_validation, "VALIDATION_SECONDS", 0.3)
    slow = doubling_schema(40)
    order: list[str] = []

    async def check(tenant: str, arguments: str, schema: dict[str, Any]) -> None:
        with contextlib.suppress(ToolError):
            await checked_arguments(tenant, arguments, schema, client=True)
        order.append(tenant)

    hog = [asyncio.create_task(check("hog", '{"x": 1}', slow)) for _ in range(8)]
    await asyncio.sleep(0)  # the hog's checks are queued first
    await check("other", '{"x": "quick"}', {"type": "object"})
    assert order.index("other") <= argument_validation.VALIDATION_THREADS
    await asyncio.gather(*hog)
