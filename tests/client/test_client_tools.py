"""Client-side tools: Python functions the model calls, run by the client during a turn."""

from __future__ import annotations

import asyncio
import enum
import json
import threading
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import pytest

from helpers import LiveServer
from orchestrator import (
    AsyncOrchestrator,
    ClientTool,
    Orchestrator,
    RunCompleted,
    ToolCallFinished,
    ToolCallStarted,
    ToolLocation,
    json_schema,
    tool,
)
from orchestrator._tools import client_tools, parse_docstring, render_output, to_client_tool
from orchestrator_devmodel import DevModelAdmin

ANSWER_WITH_TOOL_RESULTS = {"match": {"last_role": "tool"}, "reply": {"echo_tool_results": True}}


def calls(trigger: str, *tool_calls: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """A rule: a user message containing `trigger` makes the model call these tools."""
    return {
        "match": {"contains": trigger},
        "reply": {"tool_calls": [{"name": n, "arguments": a} for n, a in tool_calls]},
    }


class Unit(enum.Enum):
    CELSIUS = "C"
    FAHRENHEIT = "F"


# -- schema -------------------------------------------------------------------------------


def test_schema_from_type_hints_and_docstring() -> None:
    def search(
        query: str,
        tags: list[str],
        limit: int = 10,
        score: float | None = None,
        exact: bool = False,
        mode: Literal["fast", "deep"] = "fast",
        unit: Unit = Unit.CELSIUS,
        weights: dict[str, float] | None = None,
        pair: tuple[int, int] = (0, 0),
        note: Annotated[str, "free text"] = "",
        anything: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> str:
        """Search the catalogue
        for items.

        Longer explanation that is not part of the description.

        Args:
            query: What to look for.
            tags (list[str]): Tags that must all match,
                in any order.
            limit: Most results.

        Returns:
            The results.
        """
        return ""

    converted = to_client_tool(search)
    assert converted.name == "search"
    assert converted.description == "Search the catalogue for items."
    assert converted.parameters == {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "What to look for."},
            "tags": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Tags that must all match, in any order.",
            },
            "limit": {"type": "integer", "description": "Most results.", "default": 10},
            "score": {"type": ["number", "null"], "default": None},
            "exact": {"type": "boolean", "default": False},
            "mode": {"enum": ["fast", "deep"], "type": "string", "default": "fast"},
            "unit": {"enum": ["C", "F"], "type": "string", "default": "C"},
            "weights": {
                "anyOf": [
                    {"type": "object", "additionalProperties": {"type": "number"}},
                    {"type": "null"},
                ],
                "default": None,
            },
            "pair": {
                "type": "array",
                "prefixItems": [{"type": "integer"}, {"type": "integer"}],
                "minItems": 2,
                "maxItems": 2,
                "default": [0, 0],
            },
            "note": {"type": "string", "description": "free text", "default": ""},
            "anything": {"default": None},
        },
        "required": ["query", "tags"],
    }
    definition = converted.definition()
    assert definition.name == "search"
    assert json.loads(definition.parameters_json_schema) == converted.parameters


def test_schema_of_single_types_and_errors() -> None:
    assert json_schema(int | str) == {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert json_schema(Sequence[int]) == {"type": "array", "items": {"type": "integer"}}
    assert json_schema(list) == {"type": "array"}
    assert json_schema(dict) == {"type": "object"}
    assert json_schema(Literal[1, "a"]) == {"enum": [1, "a"]}
    assert json_schema(tuple[str, ...]) == {"type": "array", "items": {"type": "string"}}

    class Opaque:
        pass

    with pytest.raises(TypeError, match="cannot describe"):
        json_schema(Opaque)

    def bad(thing: Opaque) -> None:
        pass

    with pytest.raises(TypeError, match="parameter 'thing'"):
        to_client_tool(bad)
    with pytest.raises(ValueError, match="tool name"):
        to_client_tool(lambda: None)
    with pytest.raises(ValueError, match="two client tools"):
        client_tools([tool(name="x")(lambda: 1), tool(lambda: 2, name="x")])
    with pytest.raises(TypeError, match="server tools"):
        client_tools(["calculator"])  # type: ignore[list-item]


def test_docstring_styles_and_the_tool_decorator() -> None:
    assert parse_docstring(None) == ("", {})
    description, params = parse_docstring(
        """Add two numbers.

        :param a: the first
        :param int b: the second
        """
    )
    assert (description, params) == ("Add two numbers.", {"a": "the first", "b": "the second"})

    @tool(name="get_weather", description="Weather now.")
    async def weather(city: str) -> str:
        """Ignored."""
        return city

    assert isinstance(weather, ClientTool)
    assert (weather.name, weather.description) == ("get_weather", "Weather now.")

    @tool
    def plain(x: int) -> int:
        """Double it."""
        return 2 * x

    assert plain(4) == 8  # still callable
    assert plain.description == "Double it."
    assert render_output({"a": [1, 2]}) == '{"a": [1, 2]}'
    assert render_output("as is") == "as is"
    assert render_output(None) == "null"


async def test_invoke_binds_and_reports_argument_errors() -> None:
    def pick(unit: Unit, pair: tuple[int, int], /, flag: bool = False) -> str:
        return f"{unit.name} {pair!r} {flag}"

    converted = to_client_tool(pick)
    assert await converted.invoke('{"unit": "F", "pair": [1, 2]}') == (
        "FAHRENHEIT (1, 2) False",
        "",
    )
    output, error = await converted.invoke('{"unit": "C"}')
    assert output == "" and error.startswith("TypeError: missing a required argument")
    _, error = await converted.invoke('{"unit": "C", "pair": [1, 2], "extra": 1}')
    assert error == "TypeError: unexpected arguments: extra"
    _, error = await converted.invoke("[1]")
    assert error.startswith("TypeError: arguments must be a JSON object")


# -- against the live server --------------------------------------------------------------


async def test_sync_and_async_tools_in_run(client: AsyncOrchestrator, admin: DevModelAdmin) -> None:
    await admin.set_rules(
        [
            ANSWER_WITH_TOOL_RESULTS,
            calls("weather", ("get_weather", {"city": "Paris", "unit": "F"})),
            calls("stock", ("stock_price", {"symbol": "ACME"})),
        ]
    )
    await client.create_agent("assistant")
    threads: list[str] = []

    def get_weather(city: str, unit: Unit = Unit.CELSIUS) -> str:
        """The current weather in a city.

        Args:
            city: The city's name.
            unit: Temperature unit.
        """
        threads.append(threading.current_thread().name)
        return f"{city}: 21 degrees {unit.value}"

    async def stock_price(symbol: str) -> dict[str, Any]:
        """The latest price of a stock."""
        await asyncio.sleep(0)
        return {"symbol": symbol, "price": 12.5}

    tools = [get_weather, stock_price]
    answer = await client.run("what's the weather?", "assistant", tools=tools)
    assert answer == "Paris: 21 degrees F"
    assert threads and threads[0] != threading.current_thread().name  # ran in a worker
    answer = await client.run("stock please", "assistant", tools=tools)
    assert json.loads(answer) == {"symbol": "ACME", "price": 12.5}

    # The model was offered both tools, with their schemas and descriptions.
    offered = (await admin.requests())[0]["body"]["tools"]
    by_name = {t["function"]["name"]: t["function"] for t in offered}
    assert by_name["get_weather"]["description"] == "The current weather in a city."
    assert by_name["get_weather"]["parameters"]["properties"]["city"] == {
        "type": "string",
        "description": "The city's name.",
    }
    assert by_name["get_weather"]["parameters"]["required"] == ["city"]
    assert by_name["stock_price"]["parameters"]["required"] == ["symbol"]


async def test_parallel_calls_run_concurrently_and_stream_shows_them(
    client: AsyncOrchestrator, admin: DevModelAdmin
) -> None:
    await admin.set_rules(
        [
            ANSWER_WITH_TOOL_RESULTS,
            calls("both", ("lookup", {"key": "a"}), ("lookup", {"key": "b"})),
            calls("mixed", ("slow_sync", {"key": "x"}), ("lookup", {"key": "y"})),
        ]
    )
    await client.create_agent("helper")
    started: list[str] = []
    both_started = asyncio.Event()

    async def lookup(key: str) -> str:
        """Look a key up."""
        started.append(key)
        if len(started) == 2:
            both_started.set()
        # Neither call can finish before the other has started: they run concurrently.
        await asyncio.wait_for(both_started.wait(), 5)
        return f"value-of-{key}"

    async with client.stream("look both up", "helper", tools=[lookup]) as stream:
        events = [event async for event in stream]
    tool_calls = [e for e in events if isinstance(e, ToolCallStarted)]
    assert [e.location for e in tool_calls] == [ToolLocation.CLIENT] * 2
    assert [json.loads(e.call.arguments_json) for e in tool_calls] == [{"key": "a"}, {"key": "b"}]
    finished = {e.call_id: e for e in events if isinstance(e, ToolCallFinished)}
    assert [finished[c.call.call_id].output for c in tool_calls] == ["value-of-a", "value-of-b"]
    assert isinstance(events[-1], RunCompleted)
    assert events[-1].output == "value-of-a\nvalue-of-b"

    # A sync function (in a thread) and an async one of the same response overlap too.
    barrier = threading.Barrier(2, timeout=5)
    started.clear()
    both_started.clear()

    def slow_sync(key: str) -> str:
        barrier.wait()
        return f"sync-{key}"

    async def lookup_with_barrier(key: str) -> str:
        await asyncio.to_thread(barrier.wait)
        return f"async-{key}"

    answer = await client.run(
        "mixed", "helper", tools=[slow_sync, tool(lookup_with_barrier, name="lookup")]
    )
    assert answer == "sync-x\nasync-y"


async def test_a_failing_tool_is_reported_to_the_model(
    client: AsyncOrchestrator, admin: DevModelAdmin
) -> None:
    await admin.set_rules(
        [
            ANSWER_WITH_TOOL_RESULTS,
            calls("divide", ("divide", {"a": 1, "b": 0}), ("divide", {"a": 6, "b": 3})),
        ]
    )
    await client.create_agent("math")

    def divide(a: float, b: float) -> float:
        """Divide a by b."""
        if b == 0:
            raise ZeroDivisionError("cannot divide by zero")
        return a / b

    async with client.stream("divide please", "math", tools=[divide]) as stream:
        events = [event async for event in stream]
    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert [(e.output, e.error) for e in finished] == [
        ("", "ZeroDivisionError: cannot divide by zero"),
        ("2.0", ""),
    ]
    # The model saw the error text as that call's result.
    tool_messages = [
        m["content"]
        for m in (await admin.requests())[-1]["body"]["messages"]
        if m["role"] == "tool"
    ]
    assert tool_messages == ["error: ZeroDivisionError: cannot divide by zero", "2.0"]
    assert isinstance(events[-1], RunCompleted)


async def test_tools_in_a_chat_and_with_the_blocking_client(
    live: LiveServer, client: AsyncOrchestrator, admin: DevModelAdmin
) -> None:
    await admin.set_rules([ANSWER_WITH_TOOL_RESULTS, calls("count", ("counter", {}))])
    await client.create_agent("chatty")
    count = 0

    def counter() -> int:
        """Count calls."""
        nonlocal count
        count += 1
        return count

    async with client.chat("chatty", tools=[counter]) as chat:
        for expected in ("1", "2"):
            events = [e async for e in chat.send("count")]
            assert isinstance(events[-1], RunCompleted)
            assert events[-1].output == expected
        plain = [e async for e in chat.send("no tools needed")]
        assert isinstance(plain[-1], RunCompleted)
        assert plain[-1].output == "Echo: no tools needed"

    def blocking() -> tuple[str, list[type]]:
        with Orchestrator(live.address, timeout=30) as sync_client:
            answer = sync_client.run("count", "chatty", tools=[counter])
            with sync_client.stream("count again", "chatty", tools=[counter]) as stream:
                kinds = [type(e) for e in stream]
            return answer, kinds

    answer, kinds = await asyncio.to_thread(blocking)
    assert answer == "3"
    assert ToolCallStarted in kinds and ToolCallFinished in kinds
    assert count == 4
