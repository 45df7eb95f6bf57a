"""Per-tenant quotas seen through the API: queued starts, model tokens per minute (with
RetryInfo), stored bytes and agents. Each is RESOURCE_EXHAUSTED / QUOTA_EXCEEDED with a
QuotaFailure naming the tenant, and another tenant is not affected."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from helpers import (
    LiveServer,
    error_info,
    quota_subjects,
    requests_of,
    retry_delay,
    run_turn,
    start,
    start_live_server,
)
from orchestrator.v1 import agent_pb2, run_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator_devmodel import DevModelAdmin, DevModelProcess

OTHER = (("x-tenant-id", "other"),)


async def server_with(devmodel: DevModelProcess, path: Path, **quotas: int) -> LiveServer:
    """A server with these quotas, an agent `worker` in tenants `default` and `other`."""
    live = await start_live_server(path, devmodel.base_url, **quotas)
    for metadata in ((), OTHER):
        agent = agent_pb2.Agent(agent_id="worker")
        await live.stub.CreateAgent(pb.CreateAgentRequest(agent=agent), metadata=metadata)
    return live


@pytest.fixture
async def small(devmodel: DevModelProcess, tmp_path: Path) -> AsyncIterator[LiveServer]:
    """Small storage and queue quotas."""
    live = await server_with(
        devmodel,
        tmp_path / "small.db",
        max_queued_runs_per_tenant=2,
        max_stored_bytes_per_tenant=50_000,
        max_agents_per_tenant=2,
    )
    try:
        yield live
    finally:
        await live.stop()


@pytest.fixture
async def frugal(devmodel: DevModelProcess, tmp_path: Path) -> AsyncIterator[LiveServer]:
    """30 model tokens per minute per tenant."""
    live = await server_with(
        devmodel, tmp_path / "frugal.db", model_tokens_per_minute_per_tenant=30
    )
    try:
        yield live
    finally:
        await live.stop()


def assert_quota(error: grpc.aio.AioRpcError, quota: str) -> None:
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info = error_info(error)
    assert (info.reason, info.metadata["quota"]) == ("QUOTA_EXCEEDED", quota)
    assert quota_subjects(error) == ["tenant:default"]


async def test_a_tenant_queues_at_most_its_quota_of_starts(
    small: LiveServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules([{"match": {"contains": "hold"}, "reply": {"stall": True}}])
    holding = small.stub.Run(requests_of(start("hold", "worker")))
    await holding.read()
    enqueue = {"busy_policy": run_pb2.BUSY_POLICY_ENQUEUE}
    queued = [small.stub.Run(requests_of(start("next", "worker", **enqueue))) for _ in range(2)]
    for call in queued:
        assert (await call.read()).run_started.status == run_pb2.RUN_STATUS_QUEUED
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await run_turn(small.stub, "one more", "worker", **enqueue)
    assert_quota(refused.value, "max_queued_runs_per_tenant")
    # A start on a free session is not queued.
    events = await run_turn(small.stub, "free", "worker", session_id="free")
    assert events[-1].WhichOneof("event") == "run_completed"
    for call in (holding, *queued):
        call.cancel()


async def test_a_tenant_past_its_model_tokens_is_told_when_to_retry(frugal: LiveServer) -> None:
    small = frugal
    used = 0
    while used < 30:  # each echo turn reports its prompt and completion tokens
        events = await run_turn(small.stub, "count my tokens please", "worker")
        usage = events[-1].run_completed.usage
        used += usage.prompt_tokens + usage.completion_tokens
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await run_turn(small.stub, "more", "worker")
    assert_quota(refused.value, "model_tokens_per_minute_per_tenant")
    delay = retry_delay(refused.value)
    assert delay is not None and 1 <= delay <= 60
    other = small.stub.Run(requests_of(start("mine", "worker")), metadata=OTHER)
    events = [event async for event in other]
    assert events[-1].WhichOneof("event") == "run_completed"


async def test_a_tenant_cannot_store_past_its_bytes(small: LiveServer) -> None:
    big = "x" * 20_000
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        for session in range(3):  # each turn stores its input and the echoed answer
            await run_turn(small.stub, big, "worker", session_id=f"s{session}")
    assert_quota(refused.value, "max_stored_bytes_per_tenant")
    await small.stub.DeleteSession(pb.DeleteSessionRequest(agent_id="worker", session_id="s0"))
    events = await run_turn(small.stub, big, "worker", session_id="s3")
    assert events[-1].WhichOneof("event") == "run_completed"


async def test_a_tenant_has_at_most_its_agents(small: LiveServer) -> None:
    await small.stub.CreateAgent(pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id="second")))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await small.stub.CreateAgent(pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id="third")))
    assert_quota(refused.value, "max_agents_per_tenant")


async def test_a_cancelled_call_still_costs_its_prompt(
    frugal: LiveServer, admin: DevModelAdmin
) -> None:
    small = frugal
    """Abuse: cancelling after the first delta, before the provider reports usage, used to
    cost nothing; the prompt's estimate is charged when the call is sent."""
    await admin.set_rules(
        [{"match": {"contains": "burn"}, "reply": {"text": "a " * 200, "tokens_per_second": 50}}]
    )
    call = small.stub.Run(requests_of(start("burn " + "word " * 100, "worker")))
    async for event in call:
        if event.WhichOneof("event") == "text_delta":
            call.cancel()
            break
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await run_turn(small.stub, "hi", "worker", session_id="after")
    assert_quota(refused.value, "model_tokens_per_minute_per_tenant")


async def test_a_start_refused_for_stored_bytes_never_reaches_the_model(
    small: LiveServer, admin: DevModelAdmin
) -> None:
    """The run's first write goes out together with the model request; a tenant already
    at its stored bytes is refused before the model is asked."""
    await run_turn(small.stub, "x" * 20_000, "worker", session_id="full")  # ~80 KB stored
    await admin.clear_requests()
    for attempt in range(3):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await run_turn(small.stub, "y" * 5_000, "worker", session_id=f"more{attempt}")
        assert_quota(refused.value, "max_stored_bytes_per_tenant")
    assert await admin.requests() == []
