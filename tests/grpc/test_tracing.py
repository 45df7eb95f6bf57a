"""OpenTelemetry tracing (issue 16): the span tree of a turn with a server tool, a client
tool and an agent asked as a tool, and of a team run, recorded by an in-memory exporter
of a server in this process; the caller's trace continued on the server's spans and in
the `traceparent` the model server received."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_tools import ANSWER_WITH_TOOL_RESULTS, MCP_SERVER, Conversation, client_tool, of_kind

from helpers import LiveServer, final_of, free_port, requests_of, start, start_live_server
from orchestrator.v1 import agent_pb2, collaboration_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator_devmodel import DevModelAdmin, DevModelServer
from orchestrator_server.tracing import Tracing

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = (("traceparent", f"00-{TRACE}-{PARENT}-01"),)
SERVICE = "orchestrator.v1.OrchestratorService"


class Traced:
    """A traced server and the spans it finished."""

    def __init__(self, live: LiveServer, exporter: InMemorySpanExporter) -> None:
        self.live = live
        self.exporter = exporter

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans() if span.name == name]


async def traced_server(
    devmodel: DevModelServer, db: Path, record_content: bool = False
) -> tuple[LiveServer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    live = await start_live_server(db, devmodel.base_url, Tracing(provider, record_content))
    return live, exporter


@pytest.fixture
async def traced(devmodel: DevModelServer, tmp_path: Path) -> AsyncIterator[Traced]:
    live, exporter = await traced_server(devmodel, tmp_path / "traced.db")
    try:
        yield Traced(live, exporter)
    finally:
        await live.stop()


def parent_of(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    [parent] = [s for s in spans if s.context.span_id == span.parent.span_id]
    return parent


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def make_agent(live: LiveServer, agent_id: str, **kwargs: Any) -> None:
    await live.stub.CreateAgent(
        pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id=agent_id, **kwargs))
    )


async def turn_with_every_kind_of_tool(live: LiveServer, admin: DevModelAdmin) -> str:
    """A traced turn of "lead" calling a server tool, a client tool and the agent
    "helper"; its run id, once its stream (and so its server span) has ended."""
    await admin.set_rules(
        [
            ANSWER_WITH_TOOL_RESULTS,
            {
                "match": {"system_contains": "the lead", "contains": "all three"},
                "reply": {
                    "tool_calls": [
                        {"name": "calculator", "arguments": {"expression": "6*7"}},
                        {"name": "lookup", "arguments": {"key": "k"}},
                        {"name": "ask_helper", "arguments": {"message": "sub question"}},
                    ]
                },
            },
        ]
    )
    await make_agent(live, "helper", system_message="the helper")
    await make_agent(
        live, "lead", system_message="the lead", tools=["calculator"], callable_agents=["helper"]
    )
    talk = Conversation(live, metadata=TRACEPARENT)
    await talk.send(start("use all three", "lead", client_tools=[client_tool("lookup")]))
    events = await talk.until("tool_call")
    while len(of_kind(events, "tool_call")) < 3:
        events.append(await talk.next())
    calls = {e.tool_call.call.name: e.tool_call.call for e in of_kind(events, "tool_call")}
    await talk.answer(calls["lookup"].call_id, output="from-client")
    run_id = events[0].run_id
    while not (events[-1].run_id == run_id and events[-1].HasField("run_completed")):
        events.append(await talk.next())
    await talk.close()
    assert await talk.call.read() is grpc.aio.EOF  # the server span has ended
    own = [e for e in events if e.run_id == run_id]
    assert final_of(own).output == "42\nfrom-client\nEcho: sub question"
    return run_id


async def test_a_turn_with_every_kind_of_tool_makes_one_span_tree(
    traced: Traced, admin: DevModelAdmin
) -> None:
    run_id = await turn_with_every_kind_of_tool(traced.live, admin)
    spans = traced.spans()
    # Every span but the two CreateAgent calls' is in the caller's trace.
    other_traces = {s.context.trace_id for s in traced.named(f"{SERVICE}/CreateAgent")}
    assert len(other_traces) == 2
    spans = [s for s in spans if s.context.trace_id not in other_traces]
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACE}
    [server] = traced.named(f"{SERVICE}/Run")
    assert server.parent is not None and format(server.parent.span_id, "016x") == PARENT
    assert attrs(server)["rpc.grpc.status_code"] == 0
    [lead] = traced.named("invoke_agent lead")
    assert parent_of(lead, spans) is server
    assert (
        attrs(lead).items()
        >= {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.id": "lead",
            "gen_ai.conversation.id": "default",
            "gen_ai.provider.name": "",
            "orchestrator.tenant": "default",
            "orchestrator.run.id": run_id,
            "orchestrator.run.status": "completed",
        }.items()
    )
    chats = [s for s in spans if s.name.startswith("chat ")]
    lead_chats = [s for s in chats if parent_of(s, spans) is lead]
    assert len(lead_chats) == 2  # the call asking for tools, and the answer
    first = attrs(lead_chats[0])
    assert first["gen_ai.operation.name"] == "chat"
    assert first["gen_ai.provider.name"] == "dev"
    assert first["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert first["gen_ai.usage.input_tokens"] > 0 and first["gen_ai.usage.output_tokens"] > 0
    assert "gen_ai.input.messages" not in first  # contents only when the operator opts in
    tools = {attrs(s)["gen_ai.tool.name"]: s for s in spans if s.name.startswith("execute_tool")}
    assert {name: attrs(s)["orchestrator.tool.kind"] for name, s in tools.items()} == {
        "calculator": "server",
        "lookup": "client",
        "ask_helper": "agent",
    }
    assert all(parent_of(s, spans) is lead for s in tools.values())
    assert "gen_ai.tool.call.arguments" not in attrs(tools["calculator"])
    # The agent asked as a tool runs under its tool call.
    [helper] = traced.named("invoke_agent helper")
    assert parent_of(helper, spans) is tools["ask_helper"]
    assert [parent_of(s, spans) for s in chats if parent_of(s, spans) is helper] != []
    # Usage on the run's span is the sum of its model calls'.
    assert attrs(lead)["gen_ai.usage.output_tokens"] == sum(
        attrs(s)["gen_ai.usage.output_tokens"] for s in lead_chats
    )
    # The model server received the context of the model call's span.
    requests = await admin.requests()
    by_span = {format(s.context.span_id, "016x"): s for s in chats}
    for request in requests:
        _, trace_id, parent_id, _ = request["traceparent"].split("-")
        assert trace_id == TRACE and parent_id in by_span


async def test_a_failed_tool_and_a_failed_run_are_marked(
    traced: Traced, admin: DevModelAdmin
) -> None:
    live = traced.live
    await admin.set_rules(
        [
            {"match": {"last_role": "tool"}, "reply": {"error": {"status": 400, "message": "no"}}},
            {"reply": {"tool_calls": [{"name": "calculator", "arguments": {"expression": "1/"}}]}},
        ]
    )
    await make_agent(live, "clumsy", tools=["calculator"])
    call = live.stub.Run(requests_of(start("go", "clumsy")), timeout=30)
    with pytest.raises(Exception):  # noqa: B017, PT011 - the run's failure, tested below
        _ = [event async for event in call]
    [tool] = traced.named("execute_tool calculator")
    assert attrs(tool)["error.type"] == "tool_error"
    assert tool.status.status_code.name == "ERROR"
    [run] = traced.named("invoke_agent clumsy")
    assert attrs(run)["orchestrator.run.status"] == "failed"
    assert attrs(run)["error.type"] == "MODEL_REQUEST_REJECTED"
    [server] = traced.named(f"{SERVICE}/Run")
    assert attrs(server)["rpc.grpc.status_code"] != 0
    assert server.status.status_code.name == "ERROR"


async def test_a_team_run_nests_its_members_under_the_workflow(
    traced: Traced,
) -> None:
    live = traced.live
    for agent_id in ("m1", "m2", "boss"):
        await make_agent(live, agent_id)
    await live.stub.CreateTeam(
        pb.CreateTeamRequest(
            team=collaboration_pb2.Team(team_id="crew", members=["m1", "m2"], coordinator="boss")
        )
    )
    events = [
        event
        async for event in live.stub.RunTeam(
            collaboration_pb2.RunTeamRequest(team_id="crew", task="T"), timeout=30
        )
    ]
    assert events[-1].WhichOneof("event") == "completed"
    spans = traced.spans()
    [server] = traced.named(f"{SERVICE}/RunTeam")
    [workflow] = traced.named("invoke_workflow crew")
    assert parent_of(workflow, spans) is server
    assert attrs(workflow)["orchestrator.workflow.kind"] == "team"
    assert attrs(workflow)["orchestrator.run.status"] == "completed"
    runs = {s.name: s for s in spans if s.name.startswith("invoke_agent")}
    assert set(runs) == {"invoke_agent m1", "invoke_agent m2", "invoke_agent boss"}
    assert all(parent_of(s, spans) is workflow for s in runs.values())
    tokens = sum(attrs(s)["gen_ai.usage.output_tokens"] for s in runs.values())
    assert attrs(workflow)["gen_ai.usage.output_tokens"] == tokens > 0


async def test_contents_are_recorded_only_when_the_operator_opts_in(
    devmodel: DevModelServer, admin: DevModelAdmin, tmp_path: Path
) -> None:
    live, exporter = await traced_server(devmodel, tmp_path / "content.db", record_content=True)
    try:
        await make_agent(live, "open")
        call = live.stub.Run(requests_of(start("the secret word", "open")), timeout=30)
        _ = [event async for event in call]
    finally:
        await live.stop()
    [chat] = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    assert "the secret word" in attrs(chat)["gen_ai.input.messages"]
    assert "Echo: the secret word" in attrs(chat)["gen_ai.output.messages"]


async def test_health_checks_make_no_spans(traced: Traced) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(traced.live.channel)
    await health.Check(health_pb2.HealthCheckRequest())
    await traced.live.stub.ListAgents(pb.ListAgentsRequest())
    assert [s.name for s in traced.spans()] == [f"{SERVICE}/ListAgents"]


async def test_log_lines_of_a_traced_run_carry_its_span(traced: Traced) -> None:
    from test_logs import json_lines

    await make_agent(traced.live, "logged")
    with json_lines() as lines:
        call = traced.live.stub.Run(requests_of(start("hi", "logged")), metadata=TRACEPARENT)
        events = [event async for event in call]
    [ended] = [line for line in lines if line.get("run_id") == events[0].run_id]
    [run] = traced.named("invoke_agent logged")
    assert ended["trace_id"] == TRACE
    assert ended["span_id"] == format(run.context.span_id, "016x")


async def test_an_mcp_call_over_http_carries_the_tool_calls_context(
    devmodel: DevModelServer, admin: DevModelAdmin, tmp_path: Path
) -> None:
    port = free_port()
    quiet = asyncio.subprocess.DEVNULL
    mcp_server = await asyncio.create_subprocess_exec(
        sys.executable, str(MCP_SERVER), "--http", str(port), stdout=quiet, stderr=quiet
    )
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    web = {"name": "web", "url": f"http://127.0.0.1:{port}/mcp"}
    live = await start_live_server(
        tmp_path / "mcp.db", devmodel.base_url, Tracing(provider), mcp_servers=(web,)
    )
    try:
        assert live.app.mcp is not None
        await live.app.mcp.wait_available("web", within=20)
        live.app.tools.add_missing(live.app.mcp.tools())
        await admin.set_rules(
            [
                ANSWER_WITH_TOOL_RESULTS,
                {"reply": {"tool_calls": [{"name": "web__traceparent", "arguments": {}}]}},
            ]
        )
        await make_agent(live, "webby", tools=["web__traceparent"])
        call = live.stub.Run(requests_of(start("go", "webby")), metadata=TRACEPARENT, timeout=30)
        events = [event async for event in call]
    finally:
        await live.stop()
        mcp_server.terminate()
        await mcp_server.wait()
    received = final_of(events).output
    [tool] = [s for s in exporter.get_finished_spans() if s.name == "execute_tool web__traceparent"]
    assert attrs(tool)["orchestrator.tool.kind"] == "mcp"
    assert attrs(tool)["gen_ai.tool.type"] == "extension"
    assert received == f"00-{TRACE}-{format(tool.context.span_id, '016x')}-01"


async def test_a_made_up_tool_name_stays_out_of_span_names(
    traced: Traced, admin: DevModelAdmin
) -> None:
    invented = "x" * 5000
    await admin.set_rules(
        [
            ANSWER_WITH_TOOL_RESULTS,
            {"reply": {"tool_calls": [{"name": invented, "arguments": {}}]}},
        ]
    )
    await make_agent(traced.live, "dreamer")
    call = traced.live.stub.Run(requests_of(start("go", "dreamer")), timeout=30)
    _ = [event async for event in call]
    [tool] = [s for s in traced.spans() if s.name.startswith("execute_tool")]
    assert tool.name == "execute_tool unknown"
    assert attrs(tool)["gen_ai.tool.name"] == invented[:256]
    assert attrs(tool)["error.type"] == "tool_error"
