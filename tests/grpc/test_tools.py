"""Tools on the Run stream: server, plugin, client and agent tools (issue 4).

The development model server is scripted to call tools; what it received on the next
call shows what the orchestrator sent back to the model.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from helpers import (
    LiveServer,
    error_info,
    field_violations,
    final_of,
    run_turn,
    start,
    start_live_server,
)
from orchestrator.v1 import agent_pb2, run_pb2, tool_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator_devmodel import DevModelAdmin, DevModelServer

ANSWER_WITH_TOOL_RESULTS = {"match": {"last_role": "tool"}, "reply": {"echo_tool_results": True}}


async def make_agent(live: LiveServer, agent_id: str, **kwargs: Any) -> None:
    await live.stub.CreateAgent(
        pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id=agent_id, **kwargs))
    )


def of_kind(events: list[run_pb2.RunEvent], kind: str) -> list[run_pb2.RunEvent]:
    return [e for e in events if e.WhichOneof("event") == kind]


class Conversation:
    """A Run stream the test writes to as events arrive (for client tools)."""

    def __init__(
        self, live: LiveServer, timeout: float = 30, metadata: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self._queue: asyncio.Queue[run_pb2.RunRequest | None] = asyncio.Queue()
        self.call = live.stub.Run(self._requests(), timeout=timeout, metadata=metadata)

    async def _requests(self) -> AsyncIterator[run_pb2.RunRequest]:
        while (item := await self._queue.get()) is not None:
            yield item

    async def send(self, request: run_pb2.RunRequest) -> None:
        await self._queue.put(request)

    async def answer(self, call_id: str, output: str = "", error: str = "") -> None:
        await self.send(
            run_pb2.RunRequest(
                tool_result=run_pb2.ToolResult(call_id=call_id, output=output, error=error)
            )
        )

    async def next(self) -> run_pb2.RunEvent:
        event = await self.call.read()
        assert event is not grpc.aio.EOF, "stream ended early"
        return event

    async def until(self, kind: str) -> list[run_pb2.RunEvent]:
        events = [await self.next()]
        while events[-1].WhichOneof("event") != kind:
            events.append(await self.next())
        return events

    async def close(self) -> None:
        await self._queue.put(None)


def client_tool(name: str, schema: dict[str, Any] | None = None) -> run_pb2.ToolDefinition:
    return run_pb2.ToolDefinition(
        name=name,
        description=f"the client's {name}",
        parameters_json_schema=json.dumps(
            schema
            or {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}
        ),
    )


async def test_server_tool_round_trip(live: LiveServer, admin: DevModelAdmin) -> None:
    await admin.set_rules(
        [
            ANSWER_WITH_TOOL_RESULTS,
            {
                "match": {"contains": "compute"},
                "reply": {
                    "tool_calls": [{"name": "calculator", "arguments": {"expression": "2+3*4"}}]
                },
            },
        ]
    )
    await make_agent(live, "mathy", tools=["calculator"])
    events = await run_turn(live.stub, "compute it", "mathy")
    [call] = of_kind(events, "tool_call")
    assert call.tool_call.call.name == "calculator"
    assert json.loads(call.tool_call.call.arguments_json) == {"expression": "2+3*4"}
    assert call.tool_call.location == run_pb2.TOOL_LOCATION_SERVER
    [result] = of_kind(events, "tool_result")
    assert (result.tool_result.output, result.tool_result.error) == ("14", "")
    assert result.tool_result.call_id == call.tool_call.call.call_id
    assert final_of(events).output == "14"
    # The model was offered the tool and got the result back with its call id.
    first, second = [r["body"] for r in await admin.requests()]
    assert [t["function"]["name"] for t in first["tools"]] == ["calculator"]
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "calculator"
    assert second["messages"][-1] == {
        "role": "tool",
        "tool_call_id": call.tool_call.call.call_id,
        "content": "14",
    }


async def test_client_tool_round_trip_and_parallel_calls(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules(
        [
            ANSWER_WITH_TOOL_RESULTS,
            {
                "match": {"contains": "look"},
                "reply": {
                    "tool_calls": [
                        {"name": "lookup", "arguments": {"key": "a"}},
                        {"name": "lookup", "arguments": {"key": "b"}},
                    ]
                },
            },
        ]
    )
    await make_agent(live, "helper")
    talk = Conversation(live)
    await talk.send(start("look these up", "helper", client_tools=[client_tool("lookup")]))
    events = await talk.until("tool_call")
    first = events[-1].tool_call
    assert first.location == run_pb2.TOOL_LOCATION_CLIENT
    # Both calls of the response are asked for before either is answered: they run
    # concurrently, not one after the other.
    second = (await talk.next()).tool_call
    assert {
        json.loads(first.call.arguments_json)["key"],
        json.loads(second.call.arguments_json)["key"],
    } == {"a", "b"}
    await talk.answer(second.call.call_id, output="value-of-second")
    await talk.answer(first.call.call_id, output="value-of-first")
    events = await talk.until("run_completed")
    await talk.close()
    results = {e.tool_result.call_id: e.tool_result.output for e in of_kind(events, "tool_result")}
    assert results == {first.call.call_id: "value-of-first", second.call.call_id: "value-of-second"}
    # Tool messages go back in call order, whatever order the client answered in.
    assert final_of(events).output == "value-of-first\nvalue-of-second"


async def test_mixed_server_and_client_tools_in_one_turn(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules(
        [
            ANSWER_WITH_TOOL_RESULTS,
            {
                "match": {"contains": "both"},
                "reply": {
                    "tool_calls": [
                        {"name": "calculator", "arguments": {"expression": "6*7"}},
                        {"name": "lookup", "arguments": {"key": "k"}},
                    ]
                },
            },
        ]
    )
    await make_agent(live, "mixer", tools=["calculator"])
    talk = Conversation(live)
    await talk.send(start("use both", "mixer", client_tools=[client_tool("lookup")]))
    events = await talk.until("tool_call")
    events.append(await talk.next())
    calls = {e.tool_call.call.name: e.tool_call for e in of_kind(events, "tool_call")}
    assert calls["calculator"].location == run_pb2.TOOL_LOCATION_SERVER
    await talk.answer(calls["lookup"].call.call_id, output="from-client")
    events = await talk.until("run_completed")
    await talk.close()
    assert final_of(events).output == "42\nfrom-client"


async def test_turn_limit_stops_a_model_that_keeps_calling_tools(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules(
        [{"reply": {"tool_calls": [{"name": "calculator", "arguments": {"expression": "1+1"}}]}}]
    )
    await make_agent(live, "looper", tools=["calculator"], max_model_calls=5)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await run_turn(live.stub, "go", "looper", max_model_calls=3)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info = error_info(caught.value)
    assert info.reason == "MODEL_CALL_LIMIT"
    assert info.metadata["limit"] == "3"
    assert len(await admin.requests()) == 3
    runs = await live.stub.ListRuns(pb.ListRunsRequest(agent_id="looper"))
    assert runs.runs[0].error_reason == "MODEL_CALL_LIMIT"


async def test_agent_asks_agent_and_cycles_are_stopped(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules(
        [
            ANSWER_WITH_TOOL_RESULTS,
            {
                "match": {"system_contains": "agent A", "contains": "question"},
                "reply": {
                    "tool_calls": [{"name": "ask_b", "arguments": {"message": "sub question"}}]
                },
            },
            {
                "match": {"system_contains": "agent B", "contains": "loop"},
                "reply": {"tool_calls": [{"name": "ask_a", "arguments": {"message": "loop back"}}]},
            },
        ]
    )
    await make_agent(live, "a", system_message="agent A", callable_agents=["b"])
    await make_agent(live, "b", system_message="agent B", callable_agents=["a"])
    events = await run_turn(live.stub, "a question", "a")
    root = events[0].run_id
    [call] = of_kind(events, "tool_call")
    assert call.tool_call.location == run_pb2.TOOL_LOCATION_AGENT
    child = [e for e in events if e.agent_id == "b"]
    assert child, "the callee's events did not reach the client"
    assert {e.parent_run_id for e in child} == {root}
    assert final_of(child).output == "Echo: sub question"
    assert final_of(events[-1:]).output == "Echo: sub question"
    child_run = (await live.stub.GetRun(pb.GetRunRequest(run_id=child[0].run_id))).run
    assert child_run.parent_run_id == root

    # A -> B -> A: the second hop is refused with a clear reason the model sees.
    await admin.set_rules(
        [
            ANSWER_WITH_TOOL_RESULTS,
            {
                "match": {"system_contains": "agent A", "contains": "question"},
                "reply": {"tool_calls": [{"name": "ask_b", "arguments": {"message": "loop"}}]},
            },
            {
                "match": {"system_contains": "agent B", "contains": "loop"},
                "reply": {"tool_calls": [{"name": "ask_a", "arguments": {"message": "loop back"}}]},
            },
        ]
    )
    events = await run_turn(live.stub, "another question", "a", session_id="cycle")
    errors = [e.tool_result.error for e in of_kind(events, "tool_result") if e.tool_result.error]
    assert errors
    assert errors[0].startswith("AGENT_CALL_CYCLE")
    assert "a -> b -> a" in errors[0]
    assert final_of(events[-1:]).output.startswith("error: AGENT_CALL_CYCLE")


async def test_tool_history_survives_restart(
    devmodel: DevModelServer, admin: DevModelAdmin, tmp_path: Path
) -> None:
    await admin.set_rules(
        [
            ANSWER_WITH_TOOL_RESULTS,
            {
                "match": {"contains": "compute"},
                "reply": {
                    "tool_calls": [{"name": "calculator", "arguments": {"expression": "9*9"}}]
                },
            },
        ]
    )
    db = tmp_path / "tools.db"
    first = await start_live_server(db, devmodel.base_url)
    try:
        await make_agent(first, "keeper", tools=["calculator"])
        events = await run_turn(first.stub, "compute", "keeper")
        call_id = of_kind(events, "tool_call")[0].tool_call.call.call_id
    finally:
        await first.stop()
    second = await start_live_server(db, devmodel.base_url)
    try:
        await run_turn(second.stub, "and now?", "keeper")
    finally:
        await second.stop()
    last = (await admin.requests())[-1]["body"]["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "tool", "assistant", "user"]
    assert last[1]["tool_calls"][0]["id"] == call_id
    assert last[2] == {"role": "tool", "tool_call_id": call_id, "content": "81"}
    assert last[3] == {"role": "assistant", "content": "81"}


async def test_client_that_never_answers_or_leaves(live: LiveServer, admin: DevModelAdmin) -> None:
    await admin.set_rules(
        [{"reply": {"tool_calls": [{"name": "lookup", "arguments": {"key": "x"}}]}}]
    )
    await make_agent(live, "waiter")
    talk = Conversation(live)
    await talk.send(
        start(
            "ask", "waiter", client_tools=[client_tool("lookup")], client_tool_timeout_seconds=0.3
        )
    )
    await talk.until("tool_call")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await talk.until("run_completed")
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert error_info(caught.value).reason == "CLIENT_TOOL_TIMEOUT"

    talk = Conversation(live)
    await talk.send(start("ask", "waiter", session_id="gone", client_tools=[client_tool("lookup")]))
    events = await talk.until("tool_call")
    talk.call.cancel()
    runs = await live.stub.ListRuns(pb.ListRunsRequest(agent_id="waiter", session_id="gone"))
    run_id = events[0].run_id
    assert runs.runs[0].run_id == run_id
    for _ in range(200):
        run = (await live.stub.GetRun(pb.GetRunRequest(run_id=run_id))).run
        if run.status == run_pb2.RUN_STATUS_CANCELLED:
            break
        await asyncio.sleep(0.01)  # bounded poll: the record is written just after the cancel
    assert run.status == run_pb2.RUN_STATUS_CANCELLED


async def test_bad_tool_input_and_faults(live: LiveServer, admin: DevModelAdmin) -> None:
    await make_agent(live, "strict", tools=["calculator"])
    # An agent naming a tool the server does not have.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await make_agent(live, "dreamer", tools=["calculator", "teleport"])
    assert error_info(caught.value).reason == "UNKNOWN_TOOL"
    assert field_violations(caught.value) == ["agent.tools[1]"]
    # An invalid client tool schema.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await run_turn(
            live.stub,
            "x",
            "strict",
            client_tools=[
                run_pb2.ToolDefinition(
                    name="bad", parameters_json_schema='{"type": "object", "properties": 5}'
                )
            ],
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == ["start.client_tools[0].parameters_json_schema"]
    # A client tool that shadows a server tool.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await run_turn(live.stub, "x", "strict", client_tools=[client_tool("calculator")])
    assert field_violations(caught.value) == ["start.client_tools[0].name"]

    # Arguments that break the schema, and a tool that raises: the model sees errors and
    # the run completes.
    await admin.set_rules(
        [
            ANSWER_WITH_TOOL_RESULTS,
            {
                "reply": {
                    "tool_calls": [
                        {"name": "calculator", "arguments": {"expr": "1"}},
                        {"name": "calculator", "arguments": {"expression": "1/0"}},
                        {"name": "calculator", "arguments": "not json"},
                    ]
                }
            },
        ]
    )
    events = await run_turn(live.stub, "break it", "strict")
    # Results arrive as the calls finish; put them in call order.
    by_id = {e.tool_result.call_id: e.tool_result.error for e in of_kind(events, "tool_result")}
    errors = [by_id[e.tool_call.call.call_id] for e in of_kind(events, "tool_call")]
    assert errors[0].startswith("invalid arguments:")
    assert "division by zero" in errors[1]
    assert errors[2] == "invalid arguments: not a JSON object"
    assert final_of(events).output.count("error:") == 3


async def test_unexpected_tool_result_is_a_clear_error(live: LiveServer) -> None:
    await make_agent(live, "plain")
    talk = Conversation(live)
    await talk.send(start("hello", "plain"))
    await talk.until("run_completed")
    await talk.answer("call_that_never_was", output="?")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await talk.next()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(caught.value)
    assert info.reason == "UNEXPECTED_TOOL_RESULT"
    assert info.metadata["call_id"] == "call_that_never_was"


PLUGIN_MODULE = textwrap.dedent("""
    from orchestrator_server.core.tool_port import ServerTool

    async def _shout(args):
        return str(args["text"]).upper()

    async def _flood(args):
        return "x" * 100_000

    def _where(args):  # a plain function: it must not run on the event loop's thread
        import threading
        return threading.current_thread().name

    class _Echo:  # a callable object that is async
        async def __call__(self, args):
            return "echo"

    def tools():
        schema = {"type": "object", "properties": {"text": {"type": "string"}}}
        return [
            ServerTool("shout", "Upper-case a text.", schema, _shout),
            ServerTool("flood", "Returns too much.", {"type": "object"}, _flood),
            ServerTool("where", "Names its thread.", {"type": "object"}, _where),
            ServerTool("echo", "Says echo.", {"type": "object"}, _Echo()),
        ]
""")


async def test_plugins_and_list_tools(
    devmodel: DevModelServer,
    admin: DevModelAdmin,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An operator's plugin: a distribution on sys.path declaring an entry point.
    (tmp_path / "shout_plugin.py").write_text(PLUGIN_MODULE)
    dist = tmp_path / "shout_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[orchestrator.tools]\nshout = shout_plugin:tools\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    live = await start_live_server(tmp_path / "plugins.db", devmodel.base_url)
    try:
        listed = {t.name: t for t in (await live.stub.ListTools(pb.ListToolsRequest())).tools}
        assert listed["calculator"].source == tool_pb2.TOOL_SOURCE_BUILTIN
        assert json.loads(listed["calculator"].parameters_json_schema)["required"] == ["expression"]
        assert listed["current_time"].available
        assert listed["shout"].source == tool_pb2.TOOL_SOURCE_PLUGIN
        assert listed["shout"].source_name == "shout-plugin"

        await admin.set_rules(
            [
                ANSWER_WITH_TOOL_RESULTS,
                {
                    "reply": {
                        "tool_calls": [
                            {"name": "shout", "arguments": {"text": "hi"}},
                            {"name": "flood", "arguments": {}},
                            {"name": "where", "arguments": {}},
                            {"name": "echo", "arguments": {}},
                        ]
                    }
                },
            ]
        )
        await make_agent(live, "loud", tools=["shout", "flood", "where", "echo"])
        events = await run_turn(live.stub, "go", "loud")
        by_id = {
            e.tool_result.call_id: e.tool_result.output for e in of_kind(events, "tool_result")
        }
        outputs = [by_id[e.tool_call.call.call_id] for e in of_kind(events, "tool_call")]
        assert outputs[0] == "HI"
        assert len(outputs[1]) < 70_000
        assert outputs[1].endswith("...[truncated 34464 characters]")
        assert outputs[2].startswith("sync-tool")
        assert outputs[3] == "echo"
    finally:
        await live.stop()


MCP_SERVER = Path(__file__).resolve().parent.parent / "fixtures" / "mcp_echo_server.py"


async def test_mcp_server_and_client_tools_in_one_turn(
    devmodel: DevModelServer, admin: DevModelAdmin, tmp_path: Path
) -> None:
    import sys

    mcp = {"name": "fixture", "command": sys.executable, "args": [str(MCP_SERVER)]}
    live = await start_live_server(tmp_path / "mcp.db", devmodel.base_url, mcp_servers=(mcp,))
    try:
        listed = {t.name: t for t in (await live.stub.ListTools(pb.ListToolsRequest())).tools}
        stamp = listed["fixture__stamp"]
        assert stamp.source == tool_pb2.TOOL_SOURCE_MCP
        assert stamp.source_name == "fixture"
        assert stamp.available
        assert "label" in json.loads(stamp.parameters_json_schema)["properties"]

        await admin.set_rules(
            [
                ANSWER_WITH_TOOL_RESULTS,
                {
                    "match": {"contains": "all three"},
                    "reply": {
                        "tool_calls": [
                            {"name": "fixture__stamp", "arguments": {"label": "one"}},
                            {"name": "fixture__stamp", "arguments": {"label": "two"}},
                            {"name": "calculator", "arguments": {"expression": "2**10"}},
                            {"name": "lookup", "arguments": {"key": "k"}},
                        ]
                    },
                },
            ]
        )
        await make_agent(live, "everything", tools=["fixture__stamp", "calculator"])
        talk = Conversation(live)
        await talk.send(start("use all three", "everything", client_tools=[client_tool("lookup")]))
        events = await talk.until("tool_call")
        while len(of_kind(events, "tool_call")) < 4:
            events.append(await talk.next())
        calls = {e.tool_call.call.name: e.tool_call for e in of_kind(events, "tool_call")}
        assert calls["fixture__stamp"].location == run_pb2.TOOL_LOCATION_MCP
        assert calls["calculator"].location == run_pb2.TOOL_LOCATION_SERVER
        await talk.answer(calls["lookup"].call.call_id, output="client says hi")
        events += await talk.until("run_completed")
        await talk.close()
        outputs = {
            e.tool_result.call_id: e.tool_result.output for e in of_kind(events, "tool_result")
        }
        ordered = [outputs[e.tool_call.call.call_id] for e in of_kind(events, "tool_call")]
        one, two = json.loads(ordered[0]), json.loads(ordered[1])
        # The two 0.2 s MCP calls overlapped in time: they ran concurrently.
        assert one["start"] < two["end"]
        assert two["start"] < one["end"]
        assert ordered[2:] == ["1024", "client says hi"]
        assert final_of(events).output.endswith("1024\nclient says hi")
    finally:
        await live.stop()


async def test_a_late_result_for_a_cancelled_call_is_ignored(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules(
        [
            {
                "match": {"contains": "ask"},
                "reply": {"tool_calls": [{"name": "lookup", "arguments": {"key": "x"}}]},
            },
        ]
    )
    await make_agent(live, "patient")
    talk = Conversation(live)
    await talk.send(start("ask", "patient", client_tools=[client_tool("lookup")]))
    events = await talk.until("tool_call")
    call_id = events[-1].tool_call.call.call_id
    await live.new_stub().CancelRun(pb.CancelRunRequest(run_id=events[0].run_id))
    await talk.until("run_cancelled")
    # The client's answer crosses the cancel: dropped, and the stream goes on.
    await talk.answer(call_id, output="too late")
    await talk.send(start("hello again", "patient"))
    events = await talk.until("run_completed")
    await talk.close()
    assert final_of(events).output == "Echo: hello again"
