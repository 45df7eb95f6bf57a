"""ListUsage (issue 16): after a scripted set of runs (tools, an agent asked as a tool, a
failed run, a pipeline and a team), the tenant's usage equals the sum of its runs'
recorded usage, and the model calls equal the requests the model server received; bad
requests are precise errors; only admins may read it, and only their tenant's."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from access_helpers import auth_server, code_of, key_identity
from test_tools import ANSWER_WITH_TOOL_RESULTS

from helpers import LiveServer, error_info, field_violations, requests_of, start
from orchestrator.v1 import agent_pb2, collaboration_pb2, run_pb2, usage_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator_devmodel import DevModelAdmin, DevModelServer

HOUR = usage_pb2.USAGE_GRANULARITY_HOUR


async def make_agent(live: LiveServer, agent_id: str, **kwargs: object) -> None:
    await live.stub.CreateAgent(
        pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id=agent_id, **kwargs))  # type: ignore[arg-type]
    )


async def finish(call: object) -> None:
    try:
        async for _ in call:  # type: ignore[attr-defined]
            pass
    except grpc.aio.AioRpcError:
        pass  # a failed run's usage counts too


async def scripted_runs(live: LiveServer, admin: DevModelAdmin) -> None:
    await admin.set_rules(
        [
            ANSWER_WITH_TOOL_RESULTS,
            {"match": {"contains": "explode"}, "reply": {"error": {"status": 400}}},
            {
                "match": {"contains": "use tools"},
                "reply": {
                    "tool_calls": [
                        {"name": "calculator", "arguments": {"expression": "2+2"}},
                        {"name": "ask_helper", "arguments": {"message": "help"}},
                    ]
                },
            },
        ]
    )
    await make_agent(live, "helper")
    await make_agent(live, "worker", tools=["calculator"], callable_agents=["helper"])
    for message in ("hello", "use tools", "explode", "again"):
        await finish(live.stub.Run(requests_of(start(message, "worker")), timeout=30))
    await live.stub.CreateTeam(
        pb.CreateTeamRequest(
            team=collaboration_pb2.Team(team_id="crew", members=["helper", "worker"])
        )
    )
    await finish(live.stub.RunTeam(collaboration_pb2.RunTeamRequest(team_id="crew", task="T")))
    pipeline = collaboration_pb2.RunPipelineRequest(
        steps=[collaboration_pb2.PipelineStep(agent_id="helper")], input="piped"
    )
    await finish(live.stub.RunPipeline(pipeline))


async def all_records(live: LiveServer, **filters: object) -> list[usage_pb2.UsageRecord]:
    records: list[usage_pb2.UsageRecord] = []
    token = ""
    while True:
        page = await live.stub.ListUsage(
            usage_pb2.ListUsageRequest(page_size=1, page_token=token, **filters)  # type: ignore[arg-type]
        )
        records += page.records
        if not (token := page.next_page_token):
            return records


async def test_usage_equals_the_sum_of_the_runs_recorded_usage(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await scripted_runs(live, admin)
    runs = (await live.stub.ListRuns(pb.ListRunsRequest(page_size=100))).runs
    agent_runs = [run for run in runs if run.agent_id]
    # Four turns of the worker, its child run, two team members and one pipeline step;
    # completed and failed ones.
    assert len(agent_runs) == 8
    assert {run.status for run in agent_runs} == {
        run_pb2.RUN_STATUS_COMPLETED,
        run_pb2.RUN_STATUS_FAILED,
    }
    days = await all_records(live)
    by_agent = {record.agent_id: record for record in days}
    assert set(by_agent) == {"helper", "worker"}
    for agent_id, record in by_agent.items():
        own = [run for run in agent_runs if run.agent_id == agent_id]
        assert record.runs == len(own)
        assert record.model_calls == sum(run.usage.model_calls for run in own)
        assert record.prompt_tokens == sum(run.usage.prompt_tokens for run in own)
        assert record.completion_tokens == sum(run.usage.completion_tokens for run in own)
        assert record.total_tokens == record.prompt_tokens + record.completion_tokens
        start = record.period_start.ToSeconds()
        assert start % 86400 == 0 and record.period_end.ToSeconds() == start + 86400
    # Every request the model server received is a counted model call.
    assert sum(record.model_calls for record in days) == len(await admin.requests())
    hours = await all_records(live, granularity=HOUR)
    assert sum(r.runs for r in hours) == len(agent_runs)
    only = await all_records(live, agent_id="helper")
    assert [r.agent_id for r in only] == ["helper"]


async def test_bad_usage_requests_are_precise_errors(live: LiveServer) -> None:
    now = int(time.time())

    async def violations(**fields: object) -> list[str]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await live.stub.ListUsage(usage_pb2.ListUsageRequest(**fields))  # type: ignore[arg-type]
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        return field_violations(caught.value)

    assert await violations(granularity=7) == ["granularity"]
    assert await violations(start_time={"seconds": now}, end_time={"seconds": now - 86400}) == [
        "end_time"
    ]
    assert await violations(granularity=HOUR, start_time={"seconds": now - 40 * 86400}) == [
        "start_time"
    ]
    assert await violations(agent_id="no spaces allowed") == ["agent_id"]
    assert await violations(page_size=-1) == ["page_size"]
    page = await live.stub.ListUsage(usage_pb2.ListUsageRequest(page_size=1))
    assert list(page.records) == [] and page.next_page_token == ""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await live.stub.ListUsage(usage_pb2.ListUsageRequest(page_token="forged"))
    assert error_info(caught.value).reason == "INVALID_PAGE_TOKEN"


async def test_only_admins_read_usage_and_only_their_tenants(
    devmodel: DevModelServer, tmp_path: Path
) -> None:
    async with auth_server(tmp_path, devmodel.base_url) as live:
        admin = await key_identity(live, "acme", "admin")
        editor = await key_identity(live, "acme", "editor")
        other = await key_identity(live, "globex", "admin")
        await admin.stub.CreateAgent(
            pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id="a")), **admin.kw()
        )
        await finish(admin.stub.Run(requests_of(start("hi", "a")), **admin.kw()))
        mine = await admin.stub.ListUsage(usage_pb2.ListUsageRequest(), **admin.kw())
        assert [(r.agent_id, r.runs) for r in mine.records] == [("a", 1)]
        denied = editor.stub.ListUsage(usage_pb2.ListUsageRequest(), **editor.kw())
        assert await code_of(denied) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")
        theirs = await other.stub.ListUsage(usage_pb2.ListUsageRequest(), **other.kw())
        assert list(theirs.records) == []
