"""Requests that used to freeze the event loop for every tenant (issue 12): each gets its
documented answer while the loop never waits more than 100 ms."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from helpers import (
    LiveServer,
    error_info,
    field_violations,
    peak_memory,
    quota_subjects,
    requests_of,
    run_turn,
    start,
    start_live_server,
)
from orchestrator.v1 import agent_pb2, collaboration_pb2, run_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator_devmodel import DevModelAdmin, DevModelProcess

ANSWER_WITH_TOOL_RESULTS = {"match": {"last_role": "tool"}, "reply": {"echo_tool_results": True}}


async def make_agent(live: LiveServer, agent_id: str, **fields: object) -> None:
    agent = agent_pb2.Agent(agent_id=agent_id, **fields)  # type: ignore[arg-type]
    await live.stub.CreateAgent(pb.CreateAgentRequest(agent=agent))


def tool_error(events: list[run_pb2.RunEvent]) -> str:
    (result,) = [e.tool_result for e in events if e.WhichOneof("event") == "tool_result"]
    return result.error


async def test_a_calculator_bomb_is_refused_without_stalling_the_loop(
    watched: LiveServer, admin: DevModelAdmin
) -> None:
    bomb = {"name": "calculator", "arguments": {"expression": "((9**999)**999)**20"}}
    await admin.set_rules(
        [ANSWER_WITH_TOOL_RESULTS, {"match": {"contains": "bomb"}, "reply": {"tool_calls": [bomb]}}]
    )
    await make_agent(watched, "mathy", tools=["calculator"])
    events = await run_turn(watched.stub, "bomb", "mathy")
    assert "bits" in tool_error(events)
    assert events[-1].WhichOneof("event") == "run_completed"


async def test_a_catastrophic_pattern_in_a_client_schema_matches_in_linear_time(
    watched: LiveServer, admin: DevModelAdmin
) -> None:
    call = {"name": "lookup", "arguments": {"key": "a" * 40 + "!"}}
    await admin.set_rules(
        [ANSWER_WITH_TOOL_RESULTS, {"match": {"contains": "look"}, "reply": {"tool_calls": [call]}}]
    )
    await make_agent(watched, "looker")
    schema = {"type": "object", "properties": {"key": {"type": "string", "pattern": "^(a+)+$"}}}
    tool = run_pb2.ToolDefinition(name="lookup", parameters_json_schema=json.dumps(schema))
    events = await run_turn(watched.stub, "look it up", "looker", client_tools=[tool])
    # The arguments break the schema: the model is told so, and the client is never asked.
    assert "does not match" in tool_error(events)
    assert events[-1].WhichOneof("event") == "run_completed"


@pytest.mark.parametrize(
    ("tools", "violation"),
    [
        (
            [run_pb2.ToolDefinition(name=f"t{i}") for i in range(15_000)],
            "start.client_tools",
        ),
        (
            [run_pb2.ToolDefinition(name="deep", parameters_json_schema="[" * 30_000)],
            "start.client_tools[0].parameters_json_schema",
        ),
    ],
    ids=["15000 tools", "deeply nested schema"],
)
async def test_oversized_client_tool_declarations_are_invalid_arguments(
    watched: LiveServer, tools: list[run_pb2.ToolDefinition], violation: str
) -> None:
    await make_agent(watched, "plain")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await run_turn(watched.stub, "hi", "plain", client_tools=tools)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(refused.value) == [violation]


async def test_a_template_that_would_amplify_its_input_is_refused_before_rendering(
    watched: LiveServer,
) -> None:
    await make_agent(watched, "stepper")
    step = collaboration_pb2.PipelineStep(agent_id="stepper", message_template="{input}" * 200)
    request = collaboration_pb2.RunPipelineRequest(steps=[step], input="x" * 1_000_000)
    with peak_memory() as memory, pytest.raises(grpc.aio.AioRpcError) as refused:
        async for _ in watched.stub.RunPipeline(request):
            pass
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(refused.value).reason == "REQUEST_TOO_LARGE"
    # Rendering would have built 200 MB; the refusal costs about the request itself.
    assert memory.bytes < 50 * 1024 * 1024


async def test_one_tenant_cannot_hold_every_run_slot(
    devmodel: DevModelProcess, admin: DevModelAdmin, tmp_path: Path
) -> None:
    live = await start_live_server(tmp_path / "quota.db", devmodel.base_url, max_runs_per_tenant=2)
    try:
        await admin.set_rules([{"match": {"contains": "hold"}, "reply": {"stall": True}}])
        for tenant in ("default", "other"):
            agent = agent_pb2.Agent(agent_id="worker")
            await live.stub.CreateAgent(
                pb.CreateAgentRequest(agent=agent), metadata=(("x-tenant-id", tenant),)
            )
        held = []
        for i in range(2):
            call = live.stub.Run(requests_of(start("hold", "worker", session_id=f"s{i}")))
            await call.read()
            held.append(call)
        with pytest.raises(grpc.aio.AioRpcError) as full:
            await run_turn(live.stub, "one more", "worker", session_id="s9")
        assert full.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_info(full.value).reason == "QUOTA_EXCEEDED"
        assert quota_subjects(full.value) == ["tenant:default"]
        other = live.stub.Run(
            requests_of(start("hello", "worker")), metadata=(("x-tenant-id", "other"),)
        )
        events = [event async for event in other]
        assert events[-1].WhichOneof("event") == "run_completed"
        for call in held:
            call.cancel()
    finally:
        await live.stop()


async def test_a_client_schema_slow_to_check_does_not_stall_the_loop(
    watched: LiveServer,
) -> None:
    """Abuse: a schema of ~2,000 subschemas takes about a second to check against the
    metaschema; that happens in a validation thread (it froze the loop for seconds)."""
    await make_agent(watched, "schemer")
    properties = {f"p{i}": {} for i in range(1990)}
    schema = json.dumps({"type": "object", "properties": properties})
    tool = run_pb2.ToolDefinition(name="wide", parameters_json_schema=schema)
    events = await run_turn(watched.stub, "hello", "schemer", client_tools=[tool])
    assert events[-1].WhichOneof("event") == "run_completed"
