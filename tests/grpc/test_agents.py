"""Agent management through the real server and generated stubs (issue 2)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import field_mask_pb2

from helpers import LiveServer, error_info, field_violations
from orchestrator.v1 import agent_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb


def agent(agent_id: str, **kwargs: object) -> agent_pb2.Agent:
    return agent_pb2.Agent(agent_id=agent_id, **kwargs)  # type: ignore[arg-type]


async def expect_error(call: object, code: grpc.StatusCode, reason: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code, caught.value
    info = error_info(caught.value)
    assert info.reason == reason
    assert info.domain == "orchestrator.v1"
    return caught.value


async def test_create_get_list_update_delete(live: LiveServer) -> None:
    stub = live.stub
    created = await stub.CreateAgent(
        pb.CreateAgentRequest(
            agent=agent(
                "research_agent",
                system_message="You are a research assistant.",
                model=agent_pb2.ModelSpec(provider="dev", model="dev-echo", temperature=0.2),
                memory=agent_pb2.MemoryConfig(max_messages=10),
                labels={"team": "research"},
            ),
            set_as_default=True,
        )
    )
    assert created.created
    assert created.agent.is_default
    assert created.agent.model.temperature == pytest.approx(0.2)
    assert not created.agent.model.HasField("max_tokens")
    assert created.agent.create_time.seconds > 0
    assert created.agent.etag

    got = await stub.GetAgent(pb.GetAgentRequest(agent_id="research_agent"))
    assert got.agent == created.agent

    await stub.CreateAgent(pb.CreateAgentRequest(agent=agent("coding_agent")))
    listed = await stub.ListAgents(pb.ListAgentsRequest())
    assert [a.agent_id for a in listed.agents] == ["coding_agent", "research_agent"]
    assert listed.next_page_token == ""
    filtered = await stub.ListAgents(pb.ListAgentsRequest(label_filter={"team": "research"}))
    assert [a.agent_id for a in filtered.agents] == ["research_agent"]

    updated = await stub.UpdateAgent(
        pb.UpdateAgentRequest(
            agent=agent(
                "research_agent",
                system_message="Be brief.",
                model=agent_pb2.ModelSpec(max_tokens=50),
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["system_message", "model.max_tokens"]),
        )
    )
    assert updated.agent.system_message == "Be brief."
    assert updated.agent.model.max_tokens == 50
    # Fields outside the mask are untouched.
    assert updated.agent.model.temperature == pytest.approx(0.2)
    assert updated.agent.labels == {"team": "research"}
    assert updated.agent.etag != created.agent.etag
    assert updated.agent.update_time.ToNanoseconds() >= created.agent.update_time.ToNanoseconds()

    await stub.DeleteAgent(pb.DeleteAgentRequest(agent_id="coding_agent"))
    listed = await stub.ListAgents(pb.ListAgentsRequest())
    assert [a.agent_id for a in listed.agents] == ["research_agent"]


async def test_default_agent(live: LiveServer) -> None:
    stub = live.stub
    await expect_error(
        stub.GetDefaultAgent(pb.GetDefaultAgentRequest()),
        grpc.StatusCode.FAILED_PRECONDITION,
        "NO_DEFAULT_AGENT",
    )
    await stub.CreateAgent(pb.CreateAgentRequest(agent=agent("a1"), set_as_default=True))
    await stub.CreateAgent(pb.CreateAgentRequest(agent=agent("a2")))
    assert (await stub.GetDefaultAgent(pb.GetDefaultAgentRequest())).agent.agent_id == "a1"
    reply = await stub.SetDefaultAgent(pb.SetDefaultAgentRequest(agent_id="a2"))
    assert reply.agent.is_default
    assert not (await stub.GetAgent(pb.GetAgentRequest(agent_id="a1"))).agent.is_default
    await expect_error(
        stub.SetDefaultAgent(pb.SetDefaultAgentRequest(agent_id="missing")),
        grpc.StatusCode.NOT_FOUND,
        "AGENT_NOT_FOUND",
    )
    # Deleting the default agent clears the default.
    await stub.DeleteAgent(pb.DeleteAgentRequest(agent_id="a2"))
    await expect_error(
        stub.GetDefaultAgent(pb.GetDefaultAgentRequest()),
        grpc.StatusCode.FAILED_PRECONDITION,
        "NO_DEFAULT_AGENT",
    )


async def test_error_paths(live: LiveServer) -> None:
    stub = live.stub
    await stub.CreateAgent(pb.CreateAgentRequest(agent=agent("dup")))
    await expect_error(
        stub.CreateAgent(pb.CreateAgentRequest(agent=agent("dup"))),
        grpc.StatusCode.ALREADY_EXISTS,
        "AGENT_ALREADY_EXISTS",
    )
    await expect_error(
        stub.GetAgent(pb.GetAgentRequest(agent_id="nobody")),
        grpc.StatusCode.NOT_FOUND,
        "AGENT_NOT_FOUND",
    )
    await expect_error(
        stub.DeleteAgent(pb.DeleteAgentRequest(agent_id="nobody")),
        grpc.StatusCode.NOT_FOUND,
        "AGENT_NOT_FOUND",
    )
    for bad_id in ["Upper", "1starts-with-digit", "has space", "x" * 64, "dots.not.allowed"]:
        error = await expect_error(
            stub.CreateAgent(pb.CreateAgentRequest(agent=agent(bad_id))),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_AGENT_ID",
        )
        assert field_violations(error) == ["agent.agent_id"]
    # Missing required field.
    error = await expect_error(
        stub.CreateAgent(pb.CreateAgentRequest()),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_AGENT_ID",
    )
    assert field_violations(error) == ["agent.agent_id"]
    error = await expect_error(
        stub.CreateAgent(
            pb.CreateAgentRequest(agent=agent("hot", model=agent_pb2.ModelSpec(temperature=7.0)))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    assert field_violations(error) == ["agent.model.temperature"]
    for size in (-1, 1001):
        await expect_error(
            stub.ListAgents(pb.ListAgentsRequest(page_size=size)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_PAGE_SIZE",
        )
    for token in ["garbage", "eyJzIjoiYWdlbnRzOmRlZmF1bHQ6IiwiayI6WyJ6Il19.AAAA"]:
        await expect_error(
            stub.ListAgents(pb.ListAgentsRequest(page_token=token)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_PAGE_TOKEN",
        )
    for paths in (["no_such_field"], ["agent_id"], ["create_time"], []):
        await expect_error(
            stub.UpdateAgent(
                pb.UpdateAgentRequest(
                    agent=agent("dup"), update_mask=field_mask_pb2.FieldMask(paths=paths)
                )
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_UPDATE_MASK",
        )


async def test_page_token_is_bound_to_its_listing(live: LiveServer) -> None:
    stub = live.stub
    for i in range(3):
        await stub.CreateAgent(pb.CreateAgentRequest(agent=agent(f"p{i}", labels={"g": "x"})))
    page = await stub.ListAgents(pb.ListAgentsRequest(page_size=1))
    assert page.next_page_token
    # A token from the unfiltered listing is not valid for a filtered one.
    await expect_error(
        stub.ListAgents(
            pb.ListAgentsRequest(
                page_size=1, page_token=page.next_page_token, label_filter={"g": "x"}
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_PAGE_TOKEN",
    )
    # Nor for another tenant.
    await expect_error(
        stub.ListAgents(
            pb.ListAgentsRequest(page_size=1, page_token=page.next_page_token),
            metadata=(("x-tenant-id", "other"),),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_PAGE_TOKEN",
    )


async def test_etag_checks(live: LiveServer) -> None:
    stub = live.stub
    first = (await stub.CreateAgent(pb.CreateAgentRequest(agent=agent("e1")))).agent
    mask = field_mask_pb2.FieldMask(paths=["description"])
    second = (
        await stub.UpdateAgent(
            pb.UpdateAgentRequest(
                agent=agent("e1", description="v2", etag=first.etag), update_mask=mask
            )
        )
    ).agent
    error = await expect_error(
        stub.UpdateAgent(
            pb.UpdateAgentRequest(
                agent=agent("e1", description="v3", etag=first.etag), update_mask=mask
            )
        ),
        grpc.StatusCode.ABORTED,
        "ETAG_MISMATCH",
    )
    assert error_info(error).metadata["current_etag"] == second.etag
    await expect_error(
        stub.DeleteAgent(pb.DeleteAgentRequest(agent_id="e1", etag=first.etag)),
        grpc.StatusCode.ABORTED,
        "ETAG_MISMATCH",
    )
    assert (await stub.GetAgent(pb.GetAgentRequest(agent_id="e1"))).agent.description == "v2"
    await stub.DeleteAgent(pb.DeleteAgentRequest(agent_id="e1", etag=second.etag))
    await expect_error(
        stub.GetAgent(pb.GetAgentRequest(agent_id="e1")),
        grpc.StatusCode.NOT_FOUND,
        "AGENT_NOT_FOUND",
    )


async def test_concurrent_get_or_create_creates_exactly_one(live: LiveServer) -> None:
    stubs = [live.new_stub() for _ in range(5)]

    async def get_or_create(i: int) -> pb.CreateAgentResponse:
        return await stubs[i % 5].CreateAgent(
            pb.CreateAgentRequest(
                agent=agent("physics_specialist", system_message=f"caller {i}"),
                if_not_exists=True,
            )
        )

    replies = await asyncio.gather(*(get_or_create(i) for i in range(50)))
    assert sum(r.created for r in replies) == 1
    winner = next(r.agent for r in replies if r.created)
    # Everybody sees the same, unchanged agent.
    assert all(r.agent == winner for r in replies)
    listed = await live.stub.ListAgents(pb.ListAgentsRequest())
    assert [a.agent_id for a in listed.agents] == ["physics_specialist"]


async def test_pagination_over_1000_agents(live: LiveServer) -> None:
    stub = live.stub
    ids = [f"agent-{i:04d}" for i in range(1000)]
    for chunk in range(0, 1000, 100):
        await asyncio.gather(
            *(
                stub.CreateAgent(pb.CreateAgentRequest(agent=agent(i)))
                for i in ids[chunk : chunk + 100]
            )
        )
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await stub.ListAgents(pb.ListAgentsRequest(page_size=37, page_token=token))
        seen += [a.agent_id for a in page.agents]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(ids)
    assert pages == 28  # 27 full pages of 37 and one of 1


async def test_tenants_are_isolated(live: LiveServer) -> None:
    stub = live.stub
    alice = (("x-tenant-id", "alice"),)
    bob = (("x-tenant-id", "bob"),)
    await stub.CreateAgent(pb.CreateAgentRequest(agent=agent("shared-name")), metadata=alice)
    await stub.CreateAgent(pb.CreateAgentRequest(agent=agent("shared-name")), metadata=bob)
    await stub.CreateAgent(pb.CreateAgentRequest(agent=agent("only-alice")), metadata=alice)
    bob_list = await stub.ListAgents(pb.ListAgentsRequest(), metadata=bob)
    assert [a.agent_id for a in bob_list.agents] == ["shared-name"]
    await expect_error(
        stub.GetAgent(pb.GetAgentRequest(agent_id="only-alice"), metadata=bob),
        grpc.StatusCode.NOT_FOUND,
        "AGENT_NOT_FOUND",
    )
    await expect_error(
        stub.ListAgents(pb.ListAgentsRequest(), metadata=(("x-tenant-id", "Bad Tenant"),)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_TENANT",
    )
    # A proxy that appends its header leaves the client's first: two are refused.
    await expect_error(
        stub.ListAgents(pb.ListAgentsRequest(), metadata=(*alice, *bob)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_TENANT",
    )
